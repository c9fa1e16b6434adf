"""Training in local mode: events → `POST /_local/train` → the profile shows `segment`
and `rfm.score`, a trigger with a segment filter fires for a user in that segment and not
for others, and the recurring schedule fires as the local clock passes it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from nudge.domain.triggers.compiler import segment_family

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e

PROBE = "segment_vip_probe"  # tests/e2e/fixtures/train_triggers.yaml


def now_of(client: Client) -> datetime:
    r = client.s.get(f"{client.url}/_local/clock")
    return datetime.fromisoformat(r.json()["now"].replace("Z", "+00:00"))


def history(
    user: str, kind: str, now: datetime, orders: int = 0, price: float = 300.0
) -> list[dict[str, Any]]:
    """A buyer (`orders` orders of `price`, a day apart) or a one-view visitor."""
    out: list[dict[str, Any]] = []

    def track(event: str, at: datetime, props: dict[str, Any]) -> None:
        out.append({"type": "track", "userId": user, "event": event, "properties": props,
                    "timestamp": at.isoformat(), "messageId": str(uuid.uuid4())})  # fmt: skip

    if kind == "buyer":
        for visit in range(orders):
            at = now - timedelta(days=visit + 1, minutes=30)
            item = {"product_id": f"train-p{visit % 3}", "name": f"Train {visit % 3}",
                    "price": price, "category": "boots"}  # fmt: skip
            track("Product Viewed", at, item)
            track("Product Added", at + timedelta(minutes=1), item)
            track("Order Completed", at + timedelta(minutes=2),
                  {"revenue": price, "products": [item]})  # fmt: skip
    else:
        track("Product Viewed", now - timedelta(hours=2), {"product_id": "train-p9"})
    return out


def train(client: Client) -> dict[str, Any]:
    r = client.s.post(f"{client.url}/_local/train", timeout=600)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_training_shows_segments_and_scores_and_a_segment_filter_fires(client: Client) -> None:
    # given: heavy buyers and one-view visitors, imported (history fires nothing)
    run = uuid.uuid4().hex[:8]
    now = now_of(client)
    buyers = [f"train-buyer-{run}-{i}" for i in range(24)]  # enough for a cluster of their own
    visitors = [f"train-visitor-{run}-{i}" for i in range(6)]
    batch = [ev for i, u in enumerate(buyers) for ev in history(u, "buyer", now, 6 + i)]
    batch += [ev for u in visitors for ev in history(u, "visitor", now)]
    light = f"train-light-{run}"  # one order of 1: below the heavy buyers whoever else is here
    batch += history(light, "buyer", now, 1, price=1.0)
    r = requests.post(
        f"{client.url}/v1/import", json={"batch": batch}, auth=(client.local.write_key, "")
    )
    assert r.status_code == 200, r.text
    client.settle()
    assert client.user(buyers[0])["segment"] is None  # not trained yet

    # when
    summary = train(client)

    # then: the profile shows them
    assert summary["ok"] and summary["users"] >= 12 and summary["errors"] == []
    assert "frequent buyers" in summary["segments"]
    buyer = client.user(buyers[0])
    # one of the frequent-buyer clusters (with other tests' shoppers in this local mode,
    # training may find two: "frequent buyers 2")
    assert segment_family(buyer["segment"]) == "frequent buyers", summary
    assert buyer["rfm"]["frequency"] == 6 and buyer["rfm"]["recency_days"] == 1
    scores = [client.user(u)["rfm"]["score"] for u in buyers]
    assert all(len(s) == 3 and set(s) <= set("12345") for s in scores), scores
    # more orders and more revenue never score lower (same recency: the same R)
    assert [s[1:] for s in scores] == sorted(s[1:] for s in scores)
    assert len({s[0] for s in scores}) == 1
    # the quintiles are among every user with orders in this local mode (other tests'
    # shoppers too, who may put all 24 in the top fifth): against a light buyer of its own
    assert client.user(light)["rfm"]["score"][1:] < scores[-1][1:]
    visitor = client.user(visitors[0])
    assert visitor["segment"] is not None
    assert segment_family(visitor["segment"]) != "frequent buyers"
    assert visitor["rfm"]["score"] is None  # no order: no RFM score

    # and a trigger filtered on the segment fires for the buyer only
    for user in (buyers[0], visitors[0]):
        client.track(user, "Segment Probe")
    client.settle()
    assert client.user(buyers[0])["triggers"][PROBE]["fired"] == 1
    assert client.user(visitors[0])["triggers"].get(PROBE, {"fired": 0})["fired"] == 0

    # a second run with nothing new writes no profile of these users again
    again = train(client)
    assert again["ok"]
    assert client.user(buyers[0])["segment"] == buyer["segment"]


def test_the_recurring_schedule_is_listed_and_fires_as_the_clock_passes(client: Client) -> None:
    info = client.s.get(f"{client.url}/_local/aws").json()
    assert "nudge-training" in info["schedule_groups"]
    (schedule,) = info["recurring_schedules"]
    assert schedule["name"] == "nudge-train" and schedule["expression"] == "rate(1 hour)"
    before = schedule["last_fired_at"]
    client.clock(advance_seconds=2 * 3600)
    after = client.s.get(f"{client.url}/_local/aws").json()["recurring_schedules"][0]
    assert after["last_fired_at"] is not None and after["last_fired_at"] != before
    # the occurrences passed ran once, at the last of them: within the last hour
    fired_at = datetime.fromisoformat(after["last_fired_at"].replace("Z", "+00:00"))
    now = now_of(client)
    assert now - timedelta(hours=1) < fired_at <= now


def test_messages_describe_recommendations_from_the_catalog_once_trained(
    client: Client, uid: str
) -> None:
    # given a user with an address who viewed a product at 10:00 UTC (outside quiet hours)
    now = now_of(client)
    client.clock(set=(now + timedelta(days=1)).replace(hour=10, minute=0, second=0).isoformat())
    r = client.send("identify", {"userId": uid, "traits": {"email": f"{uid}@example.com"}})
    assert r.status_code == 200
    name = f"Catalog boot {uuid.uuid4().hex[:6]}"
    item = {"product_id": f"cat-{uid}", "name": name, "price": 75, "url": "https://shop.example/b"}
    # and shoppers who went from that product to another (named in their events)
    nxt = {"product_id": f"cat-{uid}-next", "name": f"{name} laces", "price": 9}
    for n in range(4):
        client.track(f"{uid}-peer-{n}", "Product Viewed", item)
        client.track(f"{uid}-peer-{n}", "Product Viewed", nxt)
    client.track(uid, "Product Viewed", item)
    # when training has built the catalog and the item model, and the user has been away
    # for two days
    assert train(client)["ok"]
    client.clock(advance_seconds=49 * 3600)
    # then the win-back email recommends what the peers viewed next, by its catalog name
    (email,) = [m for m in client.outbox(uid) if m["trigger"] == "inactivity_winback"]
    assert "Picked for you" in email["text"] and f"{name} laces" in email["text"], email["text"]
