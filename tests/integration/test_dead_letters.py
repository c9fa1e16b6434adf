"""Dead-letter entries under moto (docs/decisions.md D40): the process and deliver
functions, fed through the real FIFO queues the way the event source mapping feeds them,
record a record that fails on its last allowed receive (and not on the earlier ones),
then SQS's redrive policy moves it to the DLQ; a body moved at once is recorded at once;
`GET /v1/reports/dead-letters` answers the entries and each DLQ's size from
GetQueueAttributes, and nothing is received from a DLQ."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from nudge import constants as C
from nudge.adapters.queues import SqsActionQueue
from nudge.domain.clock import SettableClock
from nudge.local.emulation import Resources

from tests.fakes import NOW, an_action
from tests.integration.conftest import AwsCalls, Fn, basic, bearer, body_of, drain, http
from tests.integration.test_openapi import assert_conforms

ROUTE = "GET /v1/reports/dead-letters"


def stored_entries(res: Resources, queue: str) -> list[dict[str, Any]]:
    """The dead-letter items of the queue's partition of the timers table, as stored."""
    return boto3.client("dynamodb").query(
        TableName=res.tables[C.TIMERS],
        KeyConditionExpression="#b = :p",
        ExpressionAttributeNames={"#b": "bucket"},
        ExpressionAttributeValues={":p": {"S": f"dead-letters/{queue}"}},
    )["Items"]


def dlq_depth(res: Resources, queue: str) -> int:
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=res.queue_urls[queue + "-dlq"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def report(api_fn: Fn, query: str = "") -> dict[str, Any]:
    resp = api_fn(
        http("GET", "/v1/reports/dead-letters", headers={"authorization": bearer()}, query=query)
    )
    assert resp["statusCode"] == 200, resp
    return assert_conforms(ROUTE, resp)  # type: ignore[no-any-return]


def test_process_records_an_event_failing_on_its_last_receive_only_then_sqs_moves_it(
    aws: Resources, clock: SettableClock, ingest_fn: Fn, process_fn: Fn, api_fn: Fn
) -> None:
    # given an event accepted by ingest, and an archive stream that is gone (every
    # attempt to process the event fails at the archive write)
    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=aws.archive_stream)
    body = {"userId": "u-lost", "event": "Product Viewed", "messageId": "e-lost"}
    assert (
        ingest_fn(http("POST", "/v1/track", body, headers={"authorization": basic()}))["statusCode"]
        == 200
    )

    # when the event source hands the record over up to maxReceiveCount times
    for attempt in range(1, C.EVENTS_MAX_RECEIVE_COUNT + 1):
        [resp] = drain(aws, process_fn, max_rounds=1)
        assert len(resp["batchItemFailures"]) == 1
        # then nothing is recorded before the last attempt, one entry on it
        expected = 1 if attempt == C.EVENTS_MAX_RECEIVE_COUNT else 0
        assert len(stored_entries(aws, C.EVENTS_QUEUE)) == expected, attempt

    # and SQS moves it to the DLQ instead of a sixth delivery
    assert drain(aws, process_fn) == []
    assert dlq_depth(aws, C.EVENTS_QUEUE) == 1

    # and the report names it with its reason, beside the DLQ's size
    got = report(api_fn)
    assert got["queues"] == [
        {"queue": "events", "messages": 1},
        {"queue": "actions", "messages": 0},
    ]
    [entry] = got["dead_letters"]
    assert entry["queue"] == "events" and entry["group"] == "u-lost"
    assert entry["receive_count"] == C.EVENTS_MAX_RECEIVE_COUNT
    assert entry["moved_by"] == "redrive"
    assert "e-lost" in entry["body"] and entry["at"] == "2026-03-02T12:00:00.000Z"
    assert entry["error_type"] and entry["error"]
    [item] = stored_entries(aws, C.EVENTS_QUEUE)
    assert int(item["expires_at"]["N"]) == int(NOW.timestamp()) + 14 * 86400  # the DLQ's


def test_process_records_a_message_of_an_unknown_version_when_it_moves_it(
    aws: Resources, clock: SettableClock, process_fn: Fn, api_fn: Fn
) -> None:
    # given a message a newer producer sent (a version this consumer does not know)
    body = json.dumps({"kind": "events", "v": 99, "user_id": "u-new", "events": []})
    boto3.client("sqs").send_message(
        QueueUrl=aws.queue_urls[C.EVENTS_QUEUE],
        MessageBody=body,
        MessageGroupId="u-new",
        MessageDeduplicationId="v99",
    )

    # when it is handed over once
    [resp] = drain(aws, process_fn, max_rounds=1)

    # then it is moved to the DLQ at once, and recorded with the reason
    assert resp["batchItemFailures"] == []
    assert dlq_depth(aws, C.EVENTS_QUEUE) == 1
    [entry] = report(api_fn)["dead_letters"]
    assert (entry["moved_by"], entry["receive_count"], entry["error_type"]) == (
        "function",
        1,
        "ValueError",
    )
    assert "unknown events message version 99" in entry["error"]
    assert entry["body"] == body and entry["truncated"] is False


def test_deliver_records_an_action_whose_profile_never_comes_on_its_last_receive(
    aws: Resources, clock: SettableClock, api_fn: Fn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an action enqueued now for a user whose profile write never lands: deliver
    # waits for it (ProfileNotReadyError) by failing the record
    monkeypatch.setenv(C.ENV_PUBLIC_URL, "https://nudge.example.test")
    deliver = Fn(C.FN_DELIVER)
    SqsActionQueue(aws.queue_urls[C.ACTIONS_QUEUE]).send([an_action("u-never", at=NOW)])

    for attempt in range(1, C.ACTIONS_MAX_RECEIVE_COUNT + 1):
        [resp] = drain(aws, deliver, queue=C.ACTIONS_QUEUE, max_rounds=1)
        assert len(resp["batchItemFailures"]) == 1
        expected = 1 if attempt == C.ACTIONS_MAX_RECEIVE_COUNT else 0
        assert len(stored_entries(aws, C.ACTIONS_QUEUE)) == expected, attempt
    assert drain(aws, deliver, queue=C.ACTIONS_QUEUE) == []

    got = report(api_fn)
    assert got["queues"][1] == {"queue": "actions", "messages": 1}
    [entry] = got["dead_letters"]
    assert (entry["queue"], entry["group"], entry["error_type"]) == (
        "actions",
        "u-never",
        "ProfileNotReadyError",
    )
    assert "no profile for 'u-never' yet" in entry["error"]


def test_the_report_receives_nothing_from_the_dlqs_and_limits_the_entries(
    aws: Resources, clock: SettableClock, process_fn: Fn, api_fn: Fn, aws_calls: AwsCalls
) -> None:
    sqs = boto3.client("sqs")
    for i in range(3):
        sqs.send_message(
            QueueUrl=aws.queue_urls[C.EVENTS_QUEUE],
            MessageBody=json.dumps({"kind": "events", "v": 99, "user_id": f"u{i}"}),
            MessageGroupId=f"u{i}",
            MessageDeduplicationId=f"d{i}",
        )
        clock.set(clock.now().replace(second=i + 1))  # each recorded a second later
        drain(aws, process_fn, max_rounds=1)
    aws_calls.clear()

    got = report(api_fn, "limit=2")

    assert [e["group"] for e in got["dead_letters"]] == ["u2", "u1"]  # newest first
    assert got["queues"][0]["messages"] == 3
    assert aws_calls.count("ReceiveMessage") == 0
    assert aws_calls.count("GetQueueAttributes", "sqs") == 2  # one per DLQ
    # a bad limit names the parameter
    resp = api_fn(
        http(
            "GET", "/v1/reports/dead-letters", headers={"authorization": bearer()}, query="limit=x"
        )
    )
    assert resp["statusCode"] == 400 and body_of(resp)["details"][0]["field"] == "limit"
