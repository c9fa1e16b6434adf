"""The spine through local mode over HTTP, as a user drives it."""

from __future__ import annotations

import gzip
import json
import time
import uuid

import boto3
import pytest
import requests
from nudge.adapters.profiles import decode_item
from segment.analytics import Client as SegmentClient

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


def test_identify_and_track_show_in_the_profile(client: Client, uid: str) -> None:
    # given an identify and two tracks sent with curl-like requests
    assert client.send(
        "identify", {"userId": uid, "traits": {"email": "ada@example.com", "plan": "pro"}}
    ).json() == {"success": True}
    client.track(uid, "Product Viewed", {"product_id": "p1"})
    client.track(uid, "Product Viewed", {"product_id": "p1"})
    # when the queues drain
    client.settle()
    # then the profile has the traits and the counts
    profile = client.user(uid)
    assert profile["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert profile["event_counts"] == {"Product Viewed": 2}
    assert profile["first_seen"] and profile["last_seen"]
    assert set(profile) >= {
        "user_id",
        "traits",
        "first_seen",
        "last_seen",
        "event_counts",
        "segment",
        "rfm",
        "triggers",
    }


def test_segment_sdk_1000_events_for_50_users_are_counted_exactly_once(client: Client) -> None:
    # given Segment's own Python SDK pointed at local mode
    run = uuid.uuid4().hex[:6]
    users = [f"sdk-{run}-{i}" for i in range(50)]
    sent: dict[str, int] = {u: 0 for u in users}
    ids = []
    errors: list[object] = []
    sdk = SegmentClient(
        write_key=client.local.write_key,
        host=client.url,
        on_error=lambda e, b: errors.append(e),
        upload_size=100,
        max_retries=3,
        gzip=True,
    )
    started = time.perf_counter()
    for i in range(1000):
        u = users[i % 50]
        mid = f"{run}-{i}"
        ids.append((u, mid))
        sdk.track(
            user_id=u,
            event="Song Played" if i % 3 else "Product Viewed",
            properties={"n": i, "product_id": f"p{i % 7}"},
            message_id=mid,
        )
        sent[u] += 1
    sdk.flush()
    accepted_s = time.perf_counter() - started
    assert not errors
    client.settle()
    # then every profile's counts are exact
    for u in users:
        counts = client.user(u)["event_counts"]
        assert sum(counts.values()) == sent[u] == 20
    # and the same events sent again (same messageIds) change nothing
    sdk2 = SegmentClient(
        write_key=client.local.write_key, host=client.url, upload_size=100, max_retries=3
    )
    for i, (u, mid) in enumerate(ids):
        sdk2.track(
            user_id=u,
            event="Song Played" if i % 3 else "Product Viewed",
            properties={"n": i, "product_id": f"p{i % 7}"},
            message_id=mid,
        )
    sdk2.flush()
    client.settle()
    for u in users:
        assert sum(client.user(u)["event_counts"].values()) == 20
    print(
        f"\nSegment SDK: 1000 events accepted in {accepted_s:.2f} s ({1000 / accepted_s:.0f} events/s)"
    )


def test_bad_requests_get_clear_4xx_errors(client: Client, uid: str) -> None:
    url = client.url
    wk = client.local.write_key
    # no key / wrong key
    assert requests.post(f"{url}/v1/track", json={"userId": uid, "event": "X"}).status_code == 401
    assert (
        requests.post(
            f"{url}/v1/track", json={"userId": uid, "event": "X"}, auth=("nope", "")
        ).status_code
        == 401
    )
    # writeKey in the body is accepted, as Segment does
    assert (
        requests.post(
            f"{url}/v1/track", json={"userId": uid, "event": "X", "writeKey": wk}
        ).status_code
        == 200
    )
    # malformed JSON
    r = requests.post(f"{url}/v1/track", data=b"{not json", auth=(wk, ""))
    assert r.status_code == 400 and r.json()["error"] == "invalid_json" and r.json()["message"]
    # oversized event and batch
    big = {"userId": uid, "event": "X", "properties": {"blob": "x" * 33_000}}
    assert requests.post(f"{url}/v1/track", json=big, auth=(wk, "")).status_code == 413
    batch = {
        "batch": [{"type": "track", "userId": uid, "event": "X", "properties": {"b": "y" * 30_000}}]
        * 20
    }
    assert requests.post(f"{url}/v1/batch", json=batch, auth=(wk, "")).status_code == 413
    # one invalid event of ten: nine stored, the index reported
    items = [
        {"type": "track", "userId": uid, "event": "Ten", "messageId": f"{uid}-{i}"}
        for i in range(10)
    ]
    items[4] = {"type": "track", "userId": uid}  # no event name
    r = requests.post(f"{url}/v1/batch", json={"batch": items}, auth=(wk, ""))
    assert r.status_code == 200
    assert r.json()["success"] is True and [d["index"] for d in r.json()["details"]] == [4]
    client.settle()
    assert client.user(uid)["event_counts"]["Ten"] == 9


def test_gzip_bodies_are_accepted(client: Client, uid: str) -> None:
    body = gzip.compress(
        json.dumps({"batch": [{"type": "track", "userId": uid, "event": "Zipped"}]}).encode()
    )
    r = requests.post(
        f"{client.url}/v1/batch",
        data=body,
        auth=(client.local.write_key, ""),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    client.settle()
    assert client.user(uid)["event_counts"] == {"Zipped": 1}


def test_local_aws_names_the_emulation_where_boto3_finds_the_profile_and_queues(
    client: Client, uid: str
) -> None:
    client.track(uid, "Seen")
    client.settle()
    info = requests.get(f"{client.url}/_local/aws").json()
    assert set(info) >= {"endpoint_url", "region", "tables", "queues", "schedule_groups"}
    ddb = boto3.client("dynamodb", endpoint_url=info["endpoint_url"], region_name=info["region"])
    table = next(t for t in info["tables"] if "profiles" in t)
    item = ddb.get_item(TableName=table, Key={"user_id": {"S": uid}})["Item"]
    doc = decode_item(item)
    assert doc is not None and doc["event_counts"] == {"Seen": 1}
    sqs = boto3.client("sqs", endpoint_url=info["endpoint_url"], region_name=info["region"])
    events_url = sqs.get_queue_url(
        QueueName=next(q for q in info["queues"] if q.startswith("nudge-events."))
    )["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    dlq_arn = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
    assert dlq_arn.endswith("nudge-events-dlq.fifo")


def test_admin_routes_need_the_admin_key(client: Client, uid: str) -> None:
    client.track(uid, "X")
    client.settle()
    url = f"{client.url}/v1/users/{uid}"
    assert requests.get(url).status_code == 401
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {client.local.write_key}"}).status_code
        == 403
    )
    assert client.admin_get("/v1/users/nobody-here").status_code == 404
    assert requests.get(f"{client.url}/health").status_code == 200


def test_clock_moves_forward_only(client: Client) -> None:
    now = client.clock(advance_seconds=0)["now"]
    r = requests.post(f"{client.url}/_local/clock", json={"set": "2001-01-01T00:00:00Z"})
    assert r.status_code == 409
    assert client.clock(advance_seconds=60)["now"] > now


def test_nudge_replay_sends_a_jsonl_file_in_batches(client: Client, tmp_path) -> None:
    # given a file of Segment-format events, one of them invalid
    run = uuid.uuid4().hex[:6]
    lines = [
        {"type": "track", "userId": f"rp-{run}", "event": "Replayed", "messageId": f"{run}-{i}"}
        for i in range(250)
    ]
    lines.append({"type": "track", "userId": f"rp-{run}"})  # no event name
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    # when nudge replay sends it to local mode
    from nudge.cli import main

    rc = main(["replay", str(path), "--url", client.url, "--write-key", client.local.write_key])
    client.settle()
    # then the valid events are all there, once, and the rejected one makes the exit code 1
    assert rc == 1
    assert client.user(f"rp-{run}")["event_counts"] == {"Replayed": 250}
    # and replaying again changes nothing (same messageIds)
    main(["replay", str(path), "--url", client.url, "--write-key", client.local.write_key])
    client.settle()
    assert client.user(f"rp-{run}")["event_counts"] == {"Replayed": 250}
