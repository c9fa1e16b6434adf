"""Issue 3's scenarios through local mode over HTTP: events sent with the local clock at
a daytime hour, the clock moved with /_local/clock, the trigger states read from
GET /v1/users/{id} (before any delivery exists)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests
from nudge import constants as C
from nudge.domain.events import normalize_event
from nudge.domain.triggers.backtest import backtest
from nudge.domain.triggers.loader import load_triggers

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def daytime(client: Client) -> datetime:
    """Moves the local clock to the next 10:00 UTC and returns it."""
    now = datetime.fromisoformat(client.clock(advance_seconds=0)["now"].replace("Z", "+00:00"))
    target = (now + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    client.clock(set=target.isoformat())
    return target


def advance(client: Client, seconds: float) -> None:
    client.clock(advance_seconds=seconds)


def state(client: Client, uid: str, trigger: str) -> dict:
    return client.user(uid)["triggers"].get(
        trigger, {"fired": 0, "last_fired_at": None, "armed_until": None}
    )


def test_cart_abandonment_fires_once_after_15_minutes(client: Client, uid: str) -> None:
    daytime(client)
    client.track(uid, "Product Added", {"product_id": "p1", "name": "Trail Shoe", "price": 89})
    client.settle()
    armed = state(client, uid, "cart_abandonment")
    assert armed["fired"] == 0 and armed["armed_until"] is not None
    advance(client, 16 * 60)
    fired = state(client, uid, "cart_abandonment")
    assert (
        fired["fired"] == 1 and fired["last_fired_at"] is not None and fired["armed_until"] is None
    )
    advance(client, 3600)
    assert state(client, uid, "cart_abandonment")["fired"] == 1  # the same cart: one episode


def test_an_order_within_15_minutes_cancels_the_cart_abandonment(client: Client, uid: str) -> None:
    daytime(client)
    client.track(uid, "Product Added", {"product_id": "p1"})
    advance(client, 5 * 60)
    client.track(uid, "Order Completed", {"revenue": 89, "products": [{"product_id": "p1"}]})
    advance(client, 11 * 60 + 30)
    assert state(client, uid, "cart_abandonment")["fired"] == 0


def test_a_second_add_restarts_the_wait(client: Client, uid: str) -> None:
    daytime(client)
    client.track(uid, "Product Added", {"product_id": "p1"})
    advance(client, 60)
    client.track(uid, "Product Added", {"product_id": "p2"})
    advance(client, 14 * 60 + 30)  # T+15m30s: the first deadline passed, the cart changed at T+1m
    assert state(client, uid, "cart_abandonment")["fired"] == 0
    advance(client, 90)  # T+17m
    assert state(client, uid, "cart_abandonment")["fired"] == 1


def test_the_same_event_sent_twice_changes_nothing(client: Client, uid: str) -> None:
    daytime(client)
    mid = str(uuid.uuid4())
    for _ in range(2):
        client.track(uid, "Product Added", {"product_id": "p1"}, messageId=mid)
    client.settle()
    assert client.user(uid)["event_counts"] == {"Product Added": 1}
    advance(client, 16 * 60)
    assert state(client, uid, "cart_abandonment")["fired"] == 1


def test_inactivity_fires_after_48_hours_and_activity_moves_it(client: Client, uid: str) -> None:
    daytime(client)
    assert (
        client.send(
            "identify", {"userId": uid, "traits": {"email": f"{uid}@example.com"}}
        ).status_code
        == 200
    )
    client.track(uid, "Page Viewed")
    advance(client, 47 * 3600)
    assert state(client, uid, "inactivity_winback")["fired"] == 0
    advance(client, 2 * 3600)
    assert state(client, uid, "inactivity_winback")["fired"] == 1
    advance(client, 72 * 3600)
    assert state(client, uid, "inactivity_winback")["fired"] == 1  # still the same inactive stretch


def test_activity_at_24h_moves_inactivity_to_72h(client: Client, uid: str) -> None:
    daytime(client)
    client.send("identify", {"userId": uid, "traits": {"email": f"{uid}@example.com"}})
    client.track(uid, "Page Viewed")
    advance(client, 24 * 3600)
    client.track(uid, "Page Viewed")
    advance(client, 25 * 3600)  # T+49h
    assert state(client, uid, "inactivity_winback")["fired"] == 0
    advance(client, 22 * 3600)  # T+71h
    assert state(client, uid, "inactivity_winback")["fired"] == 0
    advance(client, 2 * 3600)  # T+73h
    assert state(client, uid, "inactivity_winback")["fired"] == 1


def test_repeat_product_view_fires_at_the_third_view_of_the_same_product(client: Client) -> None:
    daytime(client)
    same, different, bought = (f"rv-{uuid.uuid4().hex[:8]}" for _ in range(3))
    for i in range(3):
        client.track(same, "Product Viewed", {"product_id": "p9"})
        client.track(different, "Product Viewed", {"product_id": f"p{i}"})
    client.track(bought, "Order Completed", {"revenue": 10, "products": [{"product_id": "p9"}]})
    for _ in range(3):
        client.track(bought, "Product Viewed", {"product_id": "p9"})
    client.settle()
    assert state(client, same, "repeat_product_view")["fired"] == 1
    assert state(client, different, "repeat_product_view")["fired"] == 0
    assert state(client, bought, "repeat_product_view")["fired"] == 0


def test_dwell_on_a_product_page(client: Client) -> None:
    daytime(client)
    stays, adds, leaves = (f"dw-{uuid.uuid4().hex[:8]}" for _ in range(3))
    for u in (stays, adds, leaves):
        client.track(u, "Product Viewed", {"product_id": "p5"})
    advance(client, 60)
    client.send("page", {"userId": leaves, "name": "Home"})
    advance(client, 60)
    client.track(adds, "Product Added", {"product_id": "p5"})
    advance(client, 4 * 60)  # T+6m
    assert state(client, stays, "product_dwell_upsell")["fired"] == 1
    assert state(client, adds, "product_dwell_upsell")["fired"] == 0
    assert state(client, leaves, "product_dwell_upsell")["fired"] == 0


def test_import_updates_state_but_never_fires(client: Client, uid: str) -> None:
    start = daytime(client)
    batch = [
        {
            "type": "track",
            "userId": uid,
            "event": "Product Viewed",
            "properties": {"product_id": "p1"},
            "timestamp": (start - timedelta(minutes=10 - i)).isoformat(),
        }
        for i in range(3)
    ]
    r = requests.post(
        f"{client.url}/v1/import", json={"batch": batch}, auth=(client.local.write_key, "")
    )
    assert r.status_code == 200
    advance(client, 16 * 60)
    profile = client.user(uid)
    assert profile["event_counts"] == {"Product Viewed": 3}
    assert all(t["fired"] == 0 for t in profile["triggers"].values())


def test_timers_wake_up_through_the_one_recurring_sweep(client: Client, uid: str) -> None:
    """No schedule per timer or minute (D49): the group holds the sweep, a cron schedule
    of every minute whose Input asks Scheduler for its scheduled time; the cart's timer is
    a wake-up index entry in the bucket of its minute, and it fires when the clock passes
    that minute."""
    start = daytime(client)
    client.track(uid, "Product Added", {"product_id": "p1"})
    client.settle()
    info = requests.get(f"{client.url}/_local/aws").json()
    kw = {"endpoint_url": info["endpoint_url"], "region_name": info["region"]}
    sched = boto3.client("scheduler", **kw)
    group = info["schedule_groups"][0]
    listed = sched.list_schedules(GroupName=group)["Schedules"]
    assert [s["Name"] for s in listed] == [C.WAKE_UP_SWEEP_SCHEDULE]
    sweep = sched.get_schedule(Name=C.WAKE_UP_SWEEP_SCHEDULE, GroupName=group)
    assert sweep["ScheduleExpression"] == "cron(* * * * ? *)"
    assert json.loads(sweep["Target"]["Input"]) == {
        "scheduled_time": "<aws.scheduler.scheduled-time>"
    }
    # the cart's deadline (T+15m, rounded up to the minute) is an entry in its bucket
    bucket = (start + timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M")
    timers = boto3.client("dynamodb", **kw).query(
        TableName=C.local_table_name(C.TIMERS),
        KeyConditionExpression="#b = :b",
        ExpressionAttributeNames={"#b": "bucket"},
        ExpressionAttributeValues={":b": {"S": bucket}},
    )["Items"]
    assert [t["user_id"]["S"] for t in timers] == [uid]
    assert state(client, uid, "cart_abandonment")["fired"] == 0
    advance(client, 14 * 60)  # not before its deadline
    assert state(client, uid, "cart_abandonment")["fired"] == 0
    advance(client, 2 * 60 + 30)
    assert state(client, uid, "cart_abandonment")["fired"] == 1
    # the sweep is still there for the next minute
    assert sched.get_schedule(Name=C.WAKE_UP_SWEEP_SCHEDULE, GroupName=group)["State"] == "ENABLED"


def test_backtest_equals_the_live_path(client: Client, tmp_path: Path) -> None:
    # given a synthetic history of mixed behaviour for a few users
    start = daytime(client)
    run = uuid.uuid4().hex[:6]
    raw = []
    t = start
    import random

    rng = random.Random(3)
    for i in range(60):
        t += timedelta(minutes=rng.choice([1, 2, 3, 7, 20, 60, 600]))
        user = f"bt-{run}-{rng.randrange(4)}"
        name = rng.choice(
            ["Product Viewed", "Product Viewed", "Product Added", "Order Completed", "Page Viewed"]
        )
        ev = {
            "type": "track",
            "userId": user,
            "event": name,
            "messageId": f"{run}-{i}",
            "timestamp": t.isoformat(),
            "properties": {"product_id": f"p{rng.randrange(3)}"},
        }
        if name == "Order Completed":
            ev["properties"] = {"revenue": 5, "products": [{"product_id": f"p{rng.randrange(3)}"}]}
        if i % 17 == 0:
            raw.append(
                {
                    "type": "identify",
                    "userId": user,
                    "traits": {"email": f"{user}@example.com"},
                    "messageId": f"{run}-id-{i}",
                    "timestamp": t.isoformat(),
                }
            )
        raw.append(ev)
    end = t + timedelta(days=3)
    # when the live path receives each event at its time, the clock moving in between
    for ev in raw:
        now = client.clock(advance_seconds=0)["now"]
        if datetime.fromisoformat(ev["timestamp"]) > datetime.fromisoformat(
            now.replace("Z", "+00:00")
        ):
            client.clock(set=ev["timestamp"])
        kind = ev["type"]
        body = {k: v for k, v in ev.items() if k != "type"}
        assert client.send(kind, body).status_code == 200
    client.clock(set=end.isoformat())
    live = {}
    for user in {e["userId"] for e in raw}:
        for tid, st in client.user(user)["triggers"].items():
            if st["fired"]:
                live[(user, tid)] = st["fired"]
    # and the backtest replays the same file
    events = [
        normalize_event(e, kind=None, received_at=datetime.fromisoformat(e["timestamp"]))
        for e in raw
    ]
    report = backtest(events, load_triggers(ROOT / "triggers"))
    offline = {(f.user_id, f.fire.trigger_id): 0 for f in report.fires}
    for f in report.fires:
        offline[(f.user_id, f.fire.trigger_id)] += 1
    # then both fired the same episodes
    assert live, "the synthetic history should fire something"
    assert offline == live, json.dumps(
        {
            "live": {str(k): v for k, v in live.items()},
            "offline": {str(k): v for k, v in offline.items()},
        },
        indent=1,
    )
