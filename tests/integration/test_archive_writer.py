"""The process function archives what it accepted (issue "Event history", part 1): every
accepted event reaches the archive bucket through Firehose with the resolved user id,
one PutRecordBatch per SQS batch, lines packed into few records; duplicates and
redeliveries add no message_id the view would count twice; a Firehose failure loses
neither the events' effect on state nor their place in the archive."""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import pytest
from nudge import constants as C
from nudge.domain.archive import COLUMN_NAMES
from nudge.local.emulation import Resources

from tests.integration.conftest import AwsCalls, Fn, drain, queue_messages, stored_state
from tests.integration.test_process_handler import (
    batch_event,
    counts,
    failed_ids,
    ingest,
    track,
    with_new_message_ids,
)


def archived(res: Resources) -> list[dict[str, Any]]:
    """Every line of every object in the archive bucket (gzip or plain)."""
    s3 = boto3.client("s3")
    rows: list[dict[str, Any]] = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=res.archive_bucket, Prefix=C.ARCHIVE_PREFIX
    )
    for page in pages:
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=res.archive_bucket, Key=obj["Key"])["Body"].read()
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            rows.extend(json.loads(line) for line in body.splitlines() if line)
    return rows


def test_accepted_events_are_archived_once_each_with_every_column(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, aws_calls: AwsCalls
) -> None:
    # given: 3 users, 12 events, and the SDK retrying the whole batch
    items = [track(f"u{i % 3}", "Product Viewed", f"m{i}", product_id=f"p{i}") for i in range(12)]
    ingest(ingest_fn, items)
    ingest(ingest_fn, items[:5])
    # when
    aws_calls.clear()
    drain(aws, process_fn)
    # then: each message id archived, with the user it folded into
    rows = archived(aws)
    assert {r["message_id"] for r in rows} == {f"m{i}" for i in range(12)}
    assert all(tuple(r) == COLUMN_NAMES for r in rows)
    by_id = {r["message_id"]: r for r in rows}
    assert by_id["m4"]["user_id"] == "u1" and by_id["m4"]["event"] == "Product Viewed"
    assert by_id["m4"]["properties"] == {"product_id": "p4"}
    assert by_id["m4"]["timestamp"] == "2026-03-02T10:00:00.000Z"
    assert by_id["m4"]["historical"] is False
    # one call per SQS batch, whole lines packed into one record each
    batches = aws_calls.count("ReceiveMessage") - 1  # the last receive finds nothing
    assert aws_calls.count("PutRecordBatch") == batches
    assert all(
        len(params["Records"]) == 1 for svc, op, params in aws_calls.calls if op == "PutRecordBatch"
    )


def test_imported_events_are_archived_as_historical(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    from tests.integration.conftest import basic, http

    resp = ingest_fn(
        http(
            "POST",
            "/v1/import",
            {"batch": [track("old", "Order Completed", "h1", at="2025-01-05T08:00:00Z")]},
            headers={"authorization": basic()},
        )
    )
    assert resp["statusCode"] == 200
    drain(aws, process_fn)
    [row] = archived(aws)
    assert row["historical"] is True and row["timestamp"] == "2025-01-05T08:00:00.000Z"


def test_events_of_an_anonymous_visitor_are_archived_under_the_user_they_merged_into(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    ingest(
        ingest_fn,
        [
            {"type": "identify", "userId": "alice", "anonymousId": "anon-1", "messageId": "i1"},
        ],
    )
    drain(aws, process_fn)
    ingest(
        ingest_fn,
        [{"type": "page", "anonymousId": "anon-1", "messageId": "p1", "name": "Home"}],
    )
    drain(aws, process_fn)
    by_id = {r["message_id"]: r for r in archived(aws)}
    assert by_id["p1"]["user_id"] == "alice"
    assert by_id["p1"]["anonymous_id"] == "anon-1"
    assert by_id["p1"]["event"] == "Page Viewed"
    assert by_id["p1"]["properties"] == {"name": "Home"}


def test_a_firehose_failure_keeps_the_state_and_the_retry_archives_the_events(
    aws: Resources,
    clock: Any,
    ingest_fn: Fn,
    process_fn: Fn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: the events of one batch, and Firehose refusing every record
    ingest(ingest_fn, [track("u1", "Product Viewed", f"m{i}") for i in range(4)])
    messages = queue_messages(aws, C.EVENTS_QUEUE)
    import botocore.client

    original = botocore.client.BaseClient._make_api_call

    def refusing(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "PutRecordBatch":
            n = len(params["Records"])
            return {
                "FailedPutCount": n,
                "RequestResponses": [
                    {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}
                ]
                * n,
            }
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refusing)
    monkeypatch.setattr("nudge.adapters.archive.time.sleep", lambda s: None)
    # when
    resp = process_fn(batch_event(aws, messages))
    # then: the records come back, the state is already there
    assert failed_ids(resp) == {m["MessageId"] for m in messages}
    assert counts(aws, "u1") == {"Product Viewed": 4}
    assert archived(aws) == []
    # when Firehose is back, the redelivered batch folds as duplicates and is archived
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", original)
    resp = process_fn(batch_event(aws, with_new_message_ids(messages)))
    assert failed_ids(resp) == set()
    assert counts(aws, "u1") == {"Product Viewed": 4}
    assert sorted(r["message_id"] for r in archived(aws)) == [f"m{i}" for i in range(4)]
    assert stored_state(aws, "u1") is not None


def test_a_user_whose_fold_fails_is_not_archived_and_the_others_are(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nudge.adapters.profiles import DynamoProfileStore

    ingest(ingest_fn, [track("good", "Product Viewed", "g1"), track("bad", "Product Viewed", "b1")])
    messages = queue_messages(aws, C.EVENTS_QUEUE)
    original = DynamoProfileStore.save

    def save(self: Any, stored: Any) -> None:
        if stored.profile.user_id == "bad":
            raise RuntimeError("throttled")
        original(self, stored)

    monkeypatch.setattr(DynamoProfileStore, "save", save)
    resp = process_fn(batch_event(aws, messages))
    assert len(failed_ids(resp)) == 1
    assert [r["message_id"] for r in archived(aws)] == ["g1"]
