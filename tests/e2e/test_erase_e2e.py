"""Erase through local mode: a user with a cart, an in-app message and archived events is
erased with one DELETE; the profile, inbox and deliveries are gone, `nudge sql` no longer
sees their events, and an event sent afterwards (an SDK flushing late) does not bring
them back. Their export (API and `nudge users export`) before; after, the experiment's
report keeps their share, and a day later the archive's objects hold nothing of them."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import boto3
import pytest
from nudge import constants as C

from tests.e2e.conftest import Client
from tests.e2e.test_archive_e2e import nudge, sql
from tests.e2e.test_dead_letters_e2e import Aws, action_body

pytestmark = pytest.mark.e2e


def test_a_user_erased_over_http_is_gone_everywhere_and_stays_gone(client: Client) -> None:
    user = f"erase-{uuid.uuid4().hex[:10]}"
    client.send("identify", {"userId": user, "traits": {"email": f"{user}@example.com"}})
    client.track(user, "Product Viewed", {"product_id": "p-1", "name": "Shoe"})
    client.track(user, "Product Added", {"product_id": "p-1", "price": 30})
    client.settle()
    assert client.user(user)["event_counts"]["Product Added"] == 1
    before = sql(client, f"select count(*) from events where user_id = '{user}'")
    assert before["rows"] == [[3]]

    headers = {"Authorization": f"Bearer {client.local.admin_key}"}
    r = client.s.delete(f"{client.url}/v1/users/{user}", headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    assert user in r.json()["erased"]["ids"]

    assert client.admin_get(f"/v1/users/{user}").status_code == 404
    assert client.admin_get(f"/v1/users/{user}/messages").json().get("messages", []) == []
    assert client.admin_get(f"/v1/users/{user}/deliveries").json().get("deliveries", []) == []
    after = sql(client, f"select count(*) from events where user_id = '{user}'")
    assert after["rows"] == [[0]]

    client.track(user, "Order Completed", {"revenue": 30})  # in flight when erased
    client.settle()
    assert client.admin_get(f"/v1/users/{user}").status_code == 404
    late = sql(client, f"select count(*) from events where user_id = '{user}'")
    assert late["rows"] == [[0]]
    r = client.s.delete(f"{client.url}/v1/users/{user}", headers=headers, timeout=30)
    assert r.status_code == 404


def test_after_the_erase_no_table_holds_the_user_not_even_through_the_dlq_or_an_action(
    client: Client,
) -> None:
    """The issue's check as a user would run it: boto3 on the emulation scans every table
    and finds the user only as their tombstone, after a dead-lettered message of theirs
    (listed by the dead-letter report) and an action queued for them before the erase."""
    user = f"erase-dl-{uuid.uuid4().hex[:10]}"
    aws = Aws(client)
    client.send("identify", {"userId": user, "traits": {"email": f"{user}@example.com"}})
    client.track(user, "Product Added", {"product_id": "p-1", "price": 30})
    # a message processing refuses for good: a dead-letter entry of theirs
    aws.enqueue(
        C.EVENTS_QUEUE,
        {"kind": "events", "v": 99, "user_id": user, "events": []},
        group=user,
        dedup=f"v99-{user}",
    )
    client.settle()
    assert _mentioned_in_tables(aws, user)["dead-letters"], "the entry names them before"
    # an action fired for them, still queued when they are erased (delivered after it)
    now = client.clock(advance_seconds=0)["now"]
    action = action_body(user, f"a-{user}", at=now)
    headers = {"Authorization": f"Bearer {client.local.admin_key}"}
    r = client.s.delete(f"{client.url}/v1/users/{user}", headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["erased"]["dead_letter_entries"] == 1
    aws.enqueue(C.ACTIONS_QUEUE, action, group=user, dedup=f"a-{user}")
    client.settle()

    found = _mentioned_in_tables(aws, user)
    assert found.pop("profiles") == [{"user_id": user, "erased": True}]  # the tombstone
    assert {t: items for t, items in found.items() if items} == {}
    outbox = client.s.get(f"{client.url}/_local/outbox", timeout=30).json()["messages"]
    assert [m for m in outbox if m.get("user_id") == user] == []


def _mentioned_in_tables(aws: Aws, user: str) -> dict[str, list[Any]]:
    """Per table (by its name's last part), the items whose attributes mention the id
    anywhere; a tombstone profile is shown as {user_id, erased} when that is all it holds."""
    ddb = aws.client("dynamodb")
    found: dict[str, list[Any]] = {}
    for name in ddb.list_tables()["TableNames"]:
        items: list[Any] = []
        for page in ddb.get_paginator("scan").paginate(TableName=name):
            for item in page["Items"]:
                text = json.dumps(item, default=str)
                if user not in text:
                    continue
                bucket = item.get("bucket", {}).get("S", "")
                if bucket.startswith("dead-letters/"):
                    found.setdefault("dead-letters", []).append(item)
                    continue
                items.append(_tombstone_or(item, user))
        found[name.rsplit("-", 1)[-1] if name.startswith("nudge-") else name] = items
    return found


def _tombstone_or(item: dict[str, Any], user: str) -> Any:
    """A profile item that holds only the id and the erase's time reads as a tombstone."""
    from nudge.adapters.profiles import _to_domain
    from nudge.adapters.tables import ProfileRow

    if item.get("user_id", {}).get("S") != user or "version" not in item:
        return item
    try:
        profile = _to_domain(ProfileRow.from_raw_data(item)).profile
    except Exception:
        return item
    if profile.erased and not profile.traits and not profile.event_counts and not profile.cart:
        return {"user_id": user, "erased": True}
    return item


def _archived_lines(client: Client) -> list[bytes]:
    """Every line of the archive's objects, read straight from the emulated S3."""
    res = client.local.resources
    s3 = boto3.client("s3", endpoint_url=res.endpoint_url, region_name=res.region)
    out: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=res.archive_bucket, Prefix="events/"
    ):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=res.archive_bucket, Key=o["Key"])["Body"].read()
            out += (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).splitlines()
    return out


def _mentions(lines: list[bytes], user: str) -> int:
    needle = json.dumps(user).encode()
    return sum(1 for x in lines if needle in x)


def test_export_then_erase_keeps_the_experiment_and_a_day_later_rewrites_the_archive(
    client: Client, uid: str
) -> None:
    # given a shopper (first anonymous) whose abandoned cart exposed them to the shipped
    # experiment, and another shopper
    anon, other = f"anon-{uid}", f"other-{uid}"
    client.send("page", {"anonymousId": anon, "name": "Home"})
    client.send(
        "identify", {"userId": uid, "anonymousId": anon, "traits": {"email": f"{uid}@x.io"}}
    )
    client.track(uid, "Product Added", {"product_id": "p-9", "price": 12})
    client.track(other, "Product Viewed", {"product_id": "p-9"})
    client.settle()
    client.clock(advance_seconds=16 * 60)  # the cart abandonment fires: an exposure
    assert [d["trigger"] for d in client.deliveries(uid)] == ["cart_abandonment"]

    # the export, over the API and through the CLI: one document of every store
    code, out, err = nudge("users", "export", uid, "--url", client.url,
                           "--admin-key", client.local.admin_key)  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["user_id"] == uid and set(doc["ids"]) == {uid, anon}
    assert doc["profile"]["traits"]["email"] == f"{uid}@x.io"
    assert [d["trigger"] for d in doc["deliveries"]] == ["cart_abandonment"]
    names = [e["event"] for e in doc["events"]]
    assert {"Page Viewed", "Product Added", "Experiment Viewed"} <= set(names), names
    assert doc["events_next"] is None and other not in out

    # when erased, the experiment's report keeps their share (anonymous)
    def report() -> dict[str, Any]:
        r = client.admin_get("/v1/experiments/cart_abandonment_holdout")
        assert r.status_code == 200, r.text
        return {v["name"]: (v["users"], v["conversions"]) for v in r.json()["variants"]}

    before = report()
    headers = {"Authorization": f"Bearer {client.local.admin_key}"}
    r = client.s.delete(f"{client.url}/v1/users/{uid}", headers=headers, timeout=60)
    assert r.status_code == 202, r.text
    assert r.json()["erased"]["experiment_shares_anonymized"] == 1
    client.settle()
    assert report() == before
    assert client.admin_get(f"/v1/users/{uid}/export").status_code == 404
    # their events are hidden from queries at once, and still in the objects
    assert sql(client, f"select count(*) from events where user_id = '{uid}'")["rows"] == [[0]]
    archived = _archived_lines(client)
    assert _mentions(archived, uid) > 0

    # a day later the train run's purge step rewrites the objects without them
    client.clock(advance_seconds=26 * 3600)
    r = client.s.post(f"{client.url}/_local/train", timeout=600)
    assert r.status_code == 200, r.text
    lines = _archived_lines(client)
    assert _mentions(lines, uid) == 0 and _mentions(lines, anon) == 0
    assert _mentions(lines, other) == _mentions(archived, other) > 0  # untouched
    assert report() == before  # and the experiment still counts them, anonymously
