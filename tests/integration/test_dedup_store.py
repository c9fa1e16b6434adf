"""Dedup past the profile's bound under moto (docs/decisions.md D42): the process
function moves a heavy user's older fingerprints to the dedup table (one TTL'd item
each) and looks a fold's up there, so that a messageId resent within the window counts
once at any rate; a user under the bound costs no dedup request; erase deletes them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
from nudge import constants as C
from nudge.adapters.profiles import DynamoDedup
from nudge.domain.events import message_fingerprint
from nudge.domain.profile import MAX_SEEN
from nudge.local.emulation import Resources

from tests.integration.conftest import AwsCalls, Fn, basic, bearer, drain, http, stored_state


def send(ingest: Fn, user: str, ids: range, at: str) -> None:
    """The events as requests of 100 (as Segment's SDKs batch them)."""
    for lo in range(ids.start, ids.stop, 100):
        batch = [
            {
                "type": "track",
                "userId": user,
                "event": "Product Viewed",
                "messageId": f"{user}-{i}",
                "timestamp": at,
                "properties": {"product_id": f"p{i % 5}"},
            }
            for i in range(lo, min(lo + 100, ids.stop))
        ]
        resp = ingest(
            http("POST", "/v1/batch", {"batch": batch}, headers={"authorization": basic()})
        )
        assert resp["statusCode"] == 200, resp


def viewed(res: Resources, user: str) -> int:
    state = stored_state(res, user)
    assert state is not None
    return int(state["event_counts"]["Product Viewed"])


def dedup_items(res: Resources, user: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb")
    return ddb.query(
        TableName=res.tables[C.DEDUP],
        KeyConditionExpression="user_id = :u",
        ExpressionAttributeValues={":u": {"S": user}},
        ConsistentRead=True,
    )["Items"]


def profile_item_bytes(res: Resources, user: str) -> int:
    item = boto3.client("dynamodb").get_item(
        TableName=res.tables[C.PROFILES], Key={"user_id": {"S": user}}, ConsistentRead=True
    )["Item"]
    return len(item["packed"]["B"])


def test_a_heavy_users_old_message_ids_resent_within_the_day_count_once(
    aws: Resources, clock: Any
) -> None:
    ingest, process = Fn(C.FN_INGEST), Fn(C.FN_PROCESS)
    n = MAX_SEEN * 8
    at = clock.now().isoformat()
    # given a user with 8x the profile's bound of events
    send(ingest, "heavy", range(n), at)
    drain(aws, process)
    assert viewed(aws, "heavy") == n
    items = dedup_items(aws, "heavy")
    state = stored_state(aws, "heavy")
    assert state is not None
    # the profile keeps its last fold's fingerprints, the dedup table the others, each
    # expiring with the window
    assert len(items) >= n - MAX_SEEN
    assert {i["fp"]["S"] for i in items} <= {message_fingerprint(f"heavy-{i}") for i in range(n)}
    window_end = int(clock.now().timestamp()) // 60 * 60 + C.DEDUP_WINDOW_SECONDS
    assert {int(i["expires_at"]["N"]) for i in items} == {window_end}
    assert profile_item_bytes(aws, "heavy") < 6 * 1024
    # when the first and the last 100 are sent again 20 hours later
    clock.set(clock.now() + timedelta(hours=20))
    send(ingest, "heavy", range(100), at)
    send(ingest, "heavy", range(n - 100, n), at)
    drain(aws, process)
    # then none counts again
    assert viewed(aws, "heavy") == n


def test_a_user_under_the_bound_makes_no_dedup_request(
    aws: Resources, clock: Any, aws_calls: AwsCalls
) -> None:
    ingest, process = Fn(C.FN_INGEST), Fn(C.FN_PROCESS)
    at = clock.now().isoformat()
    send(ingest, "light", range(MAX_SEEN), at)
    send(ingest, "light", range(MAX_SEEN), at)  # every event twice
    aws_calls.clear()
    drain(aws, process)
    assert viewed(aws, "light") == MAX_SEEN
    table = aws.tables[C.DEDUP]
    touching = [op for _, op, params in aws_calls.calls if table in json.dumps(params, default=str)]
    assert touching == []
    assert dedup_items(aws, "light") == []


def test_the_dedup_table_finds_only_what_it_holds_and_erase_deletes_a_users_items(
    aws: Resources,
) -> None:
    dedup = DynamoDedup()
    dedup.put("u1", {"00000000000000aa": 100, "00000000000000bb": 101})
    dedup.put("u2", {"00000000000000cc": 102})
    found = dedup.find(["u1", "u2"], ["00000000000000aa", "00000000000000cc", "00000000000000dd"])
    assert found == {"00000000000000aa": 100, "00000000000000cc": 102}
    assert dedup.find(["u2"], ["00000000000000aa"]) == {}
    assert dedup.erase_user("u1") == 2
    assert dedup_items(aws, "u1") == [] and len(dedup_items(aws, "u2")) == 1


def test_erasing_a_heavy_user_deletes_their_fingerprints(aws: Resources, clock: Any) -> None:
    ingest, process, api = Fn(C.FN_INGEST), Fn(C.FN_PROCESS), Fn(C.FN_API)
    for lo in range(0, MAX_SEEN * 3, MAX_SEEN):  # three folds of MAX_SEEN events
        send(ingest, "heavy", range(lo, lo + MAX_SEEN), clock.now().isoformat())
        drain(aws, process)
    held = len(dedup_items(aws, "heavy"))
    assert held > 0
    resp = api(http("DELETE", "/v1/users/heavy", headers={"authorization": bearer()}))
    assert resp["statusCode"] == 202, resp
    assert json.loads(resp["body"])["erased"]["dedup_fingerprints"] == held
    assert dedup_items(aws, "heavy") == []
