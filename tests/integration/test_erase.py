"""DELETE /v1/users/{userId} under moto: every store that held the user is cleared (the
profile and the anonymous profile merged into it, the inbox, the delivery log, the armed
timers, push devices, the suppressed address kept as a keyed hash only, the archived
events hidden from every query), an event still in flight does not bring the user back,
and other users are untouched."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from nudge import constants as C
from nudge.adapters.dead_letters import DynamoDeadLetterLog
from nudge.adapters.delivery import HASHED_PREFIX, DynamoSuppressions
from nudge.adapters.query import query_engine
from nudge.adapters.queues import SqsActionQueue
from nudge.adapters.tables import DeadLetterRow, DeliveryRow, InboxRow, TimerRow
from nudge.domain.clock import to_ms
from nudge.local.emulation import Resources
from nudge.settings import QuerySettings

from tests.fakes import a_dead_letter, an_action
from tests.integration.conftest import Fn, basic, bearer, drain, http, stored_state


def send(ingest: Fn, items: list[dict[str, Any]]) -> None:
    resp = ingest(http("POST", "/v1/batch", {"batch": items}, headers={"authorization": basic()}))
    assert resp["statusCode"] == 200, resp


def call(api: Fn, method: str, path: str) -> tuple[int, Any]:
    resp = api(http(method, path, headers={"authorization": bearer()}))
    return resp["statusCode"], json.loads(resp["body"]) if resp.get("body") else None


def archived_ids(res: Resources, tmp_path: Any, sql: str) -> list[Any]:
    engine = query_engine(
        QuerySettings.model_validate(
            {
                C.ENV_ARCHIVE_BUCKET: res.archive_bucket,
                C.ENV_ARCHIVE_CACHE_DIR: str(tmp_path / "q"),
            }
        )
    )
    return [r[0] for r in engine.query(sql).rows]


def raw_archive_lines(res: Resources) -> list[str]:
    """Every line of the archive bucket's objects, as stored (no query filter)."""
    s3 = boto3.client("s3")
    lines: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=res.archive_bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=res.archive_bucket, Key=obj["Key"])["Body"].read()
            lines += body.decode("utf-8", "replace").splitlines()
    return lines


def test_erase_clears_every_store_and_in_flight_events_do_not_bring_the_user_back(
    aws: Resources, clock: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(C.ENV_PUBLIC_URL, "https://nudge.example.test")  # the deliver function's
    ingest, process, api = Fn(C.FN_INGEST), Fn(C.FN_PROCESS), Fn(C.FN_API)
    at = clock.now()
    stamp = (at - timedelta(minutes=1)).isoformat()
    send(
        ingest,
        [
            {
                "type": "track",
                "anonymousId": "anon-9",
                "event": "Product Viewed",
                "properties": {"product_id": "p1"},
                "messageId": "e1",
                "timestamp": stamp,
            },
            {
                "type": "identify",
                "userId": "erin",
                "anonymousId": "anon-9",
                "messageId": "e2",
                "traits": {"email": "Erin@Example.com"},
                "timestamp": stamp,
            },
            {
                "type": "track",
                "userId": "erin",
                "event": "Product Added",
                "messageId": "e3",
                "properties": {"product_id": "p1", "price": 5},
                "timestamp": stamp,
            },
            {
                "type": "track",
                "userId": "other",
                "event": "Product Added",
                "messageId": "o1",
                "properties": {"product_id": "p2", "price": 5},
                "timestamp": stamp,
            },
        ],
    )
    drain(aws, process)
    assert call(api, "GET", "/v1/users/erin")[0] == 200
    state = stored_state(aws, "erin")
    assert state is not None and state["triggers"]  # the cart timer is armed
    timers_before = [r for r in TimerRow.scan() if r.user_id == "erin"]
    assert timers_before
    # an inbox message, a delivery log entry and a suppressed address of hers
    InboxRow(
        "erin", "m1", trigger_id="t", action_id="a1", title="Hi", body="b", created_at=to_ms(at)
    ).save()
    DeliveryRow(
        "erin",
        "a1",
        trigger_id="t",
        channel="email",
        status="sent",
        at=to_ms(at),
        to="erin@example.com",
        subject="S",
        body="B",
    ).save()
    suppressions = DynamoSuppressions(secret=lambda: b"k")
    suppressions.suppress("erin@example.com", "bounce:General", at=at)
    hers = "select count(*) from events where user_id in ('erin', 'anon-9')"
    assert archived_ids(aws, tmp_path, hers) == [3]
    # dead-letter entries of a message of hers and of another user's
    letters = DynamoDeadLetterLog()
    letters.record(
        [a_dead_letter("erin", "m-erin", at=at), a_dead_letter("other", "m-other", at=at)]
    )
    # and an action fired for her, still in the actions queue when she is erased
    SqsActionQueue(aws.queue_urls[C.ACTIONS_QUEUE]).send([an_action("erin", at=at)])

    status, body = call(api, "DELETE", "/v1/users/erin")
    assert status == 202, body
    erased = body["erased"]
    assert set(erased["ids"]) >= {"erin", "anon-9"}
    assert (erased["inbox_messages"], erased["deliveries"]) == (1, 1)
    assert erased["suppressions_hashed"] == 1 and erased["timers"] >= 1
    assert erased["dead_letter_entries"] == 1

    # then: nothing of hers is readable
    assert call(api, "GET", "/v1/users/erin")[0] == 404
    assert call(api, "GET", "/v1/users/anon-9")[0] == 404
    assert call(api, "DELETE", "/v1/users/erin")[0] == 404
    assert list(InboxRow.query("erin")) == [] and list(DeliveryRow.query("erin")) == []
    assert [r for r in TimerRow.scan() if r.user_id == "erin"] == []
    assert [r.message_id for r in DeadLetterRow.scan() if r.bucket.startswith("dead-")] == [
        "m-other"
    ]
    # the action queued before the erase is dropped: no send, no log entry, no outcome
    drain(aws, Fn(C.FN_DELIVER), queue=C.ACTIONS_QUEUE)
    assert list(DeliveryRow.query("erin")) == []
    assert not [
        line for line in raw_archive_lines(aws) if '"Message Outcome"' in line and "erin" in line
    ]
    assert (
        boto3.client("sqs").get_queue_attributes(
            QueueUrl=aws.queue_urls[C.ACTIONS_QUEUE], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    rows = {
        r["address"]["S"]
        for r in boto3.client("dynamodb").scan(TableName=aws.env()[C.ENV_SUPPRESSIONS_TABLE])[
            "Items"
        ]
    }
    assert "erin@example.com" not in rows
    assert any(r.startswith(HASHED_PREFIX) for r in rows)  # still suppressed, by hash only
    # the deliver function's suppressions (the same signing key) still refuse the address
    key = boto3.client("secretsmanager").get_secret_value(
        SecretId=aws.env()[C.ENV_UNSUBSCRIBE_SECRET_ARN]
    )
    secret = key.get("SecretBinary") or key["SecretString"].encode()
    assert DynamoSuppressions(secret=lambda: secret).is_suppressed("erin@example.com")
    assert archived_ids(aws, tmp_path, hers) == [0]
    assert archived_ids(
        aws, tmp_path, "select count(*) from events where anonymous_id = 'anon-9'"
    ) == [0]
    state = stored_state(aws, "erin")
    assert state is not None and state.get("traits") in ({}, None)  # a tombstone

    # an event still in flight (a retry, a late SDK flush) changes nothing
    send(
        ingest,
        [
            {
                "type": "track",
                "userId": "erin",
                "event": "Order Completed",
                "messageId": "late-1",
                "timestamp": stamp,
            }
        ],
    )
    drain(aws, process)
    assert call(api, "GET", "/v1/users/erin")[0] == 404
    assert archived_ids(aws, tmp_path, "select count(*) from events where user_id = 'erin'") == [0]
    assert archived_ids(
        aws, tmp_path, "select count(*) from events where message_id = 'late-1'"
    ) == [0]
    # the others are untouched
    assert call(api, "GET", "/v1/users/other")[0] == 200
    assert archived_ids(aws, tmp_path, "select count(*) from events where user_id = 'other'") == [1]


def test_erasing_an_unknown_user_is_a_404_and_needs_the_admin_key(aws: Resources) -> None:
    api = Fn(C.FN_API)
    assert call(api, "DELETE", "/v1/users/nobody")[0] == 404
    resp = api(http("DELETE", "/v1/users/nobody", headers={"authorization": basic()}))
    assert resp["statusCode"] == 403
