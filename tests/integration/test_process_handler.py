"""The process function under mock_aws, fed SQS batches as Lambda's event source builds
them: exactly-once effects under duplicates and redelivery, order independence, a poison
message, a failing user, racing writers, and one profile write per user per batch
(docs/decisions.md D2-D5, issue 2 parts 3 and 8)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from nudge import constants as C
from nudge.adapters.profiles import DynamoProfileStore
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile, unpack_seen
from nudge.local.emulation import Resources
from nudge.local.lambdas import sqs_event

from tests.integration.conftest import (
    AwsCalls,
    Fn,
    basic,
    drain,
    http,
    queue_arn,
    queue_messages,
    stored_state,
)


def ingest(fn: Fn, items: list[dict[str, Any]]) -> None:
    resp = fn(http("POST", "/v1/batch", {"batch": items}, headers={"authorization": basic()}))
    assert resp["statusCode"] == 200, resp


def track(
    user: str, name: str, mid: str, at: str = "2026-03-02T10:00:00Z", **props: Any
) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "messageId": mid,
        "timestamp": at,
        "properties": props,
    }


def counts(res: Resources, user: str) -> dict[str, int]:
    state = stored_state(res, user)
    assert state is not None, f"no profile for {user}"
    return dict(state.get("event_counts", {}))


def batch_event(res: Resources, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return sqs_event(messages, queue_arn(res, C.EVENTS_QUEUE))


def with_new_message_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same bodies as new SQS messages (a client retry after SQS's 5-minute dedup)."""
    return [
        {**m, "MessageId": str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex} for m in messages
    ]


def failed_ids(resp: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in resp["batchItemFailures"]}


# ---- the basic path ---------------------------------------------------------------------------------


def test_profile_appears_once_the_queue_is_drained(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    # given
    ingest(
        ingest_fn,
        [
            {
                "type": "identify",
                "userId": "u1",
                "messageId": "i1",
                "traits": {"email": "a@example.com"},
            },
            track("u1", "Product Viewed", "t1", product_id="p1"),
            track("u1", "Product Viewed", "t2", product_id="p2"),
            {"type": "page", "userId": "u1", "messageId": "p1", "name": "Home"},
        ],
    )
    assert stored_state(aws, "u1") is None
    # when
    responses = drain(aws, process_fn)
    # then
    assert all(r["batchItemFailures"] == [] for r in responses)
    state = stored_state(aws, "u1")
    assert state is not None
    assert state["traits"] == {"email": "a@example.com"}
    assert state["event_counts"] == {"Product Viewed": 2, "Page Viewed": 1}


# ---- duplicates and redelivery ----------------------------------------------------------------------


def test_the_same_batch_sent_twice_counts_once(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    items = [track("u1", "Product Viewed", f"m{i}") for i in range(5)] + [
        track("u2", "Signed Up", "s1")
    ]
    ingest(ingest_fn, items)
    drain(aws, process_fn)
    ingest(ingest_fn, items)
    drain(aws, process_fn)
    assert counts(aws, "u1") == {"Product Viewed": 5}
    assert counts(aws, "u2") == {"Signed Up": 1}


def test_overlapping_requests_packed_per_user_count_each_event_once(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    # a retried request beside new events: each message holds new and seen events alike
    ingest(ingest_fn, [track("u1", "A", "a"), track("u1", "B", "b"), track("u2", "A", "x")])
    ingest(ingest_fn, [track("u1", "B", "b"), track("u1", "C", "c"), track("u2", "A", "x")])
    responses = drain(aws, process_fn)  # a message per user and request
    assert all(r["batchItemFailures"] == [] for r in responses)
    assert counts(aws, "u1") == {"A": 1, "B": 1, "C": 1}
    assert counts(aws, "u2") == {"A": 1}


def test_a_packed_message_of_an_unknown_version_goes_to_the_dlq(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    ingest(ingest_fn, [track("u1", "A", "a")])
    [good] = queue_messages(aws, C.EVENTS_QUEUE)
    body = json.loads(good["Body"])
    future = {**good, "MessageId": "future", "Body": json.dumps({**body, "v": 99})}
    resp = process_fn(batch_event(aws, [future, good]))
    assert resp["batchItemFailures"] == []
    [dead] = queue_messages(aws, C.EVENTS_QUEUE + "-dlq")
    assert "version 99" in dead["MessageAttributes"]["reason"]["StringValue"]
    assert counts(aws, "u1") == {"A": 1}


def test_the_same_events_after_the_sqs_dedup_window_count_once(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    # given a batch processed once
    ingest(ingest_fn, [track("u1", "Product Viewed", f"m{i}") for i in range(3)])
    messages = queue_messages(aws, C.EVENTS_QUEUE)
    assert process_fn(batch_event(aws, messages))["batchItemFailures"] == []
    before = stored_state(aws, "u1")
    # when the client retries it later: same bodies, new SQS messages
    resp = process_fn(batch_event(aws, with_new_message_ids(messages)))
    # then nothing changes
    assert resp["batchItemFailures"] == []
    assert stored_state(aws, "u1") == before
    assert counts(aws, "u1") == {"Product Viewed": 3}


def test_a_redelivered_sqs_batch_changes_nothing(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    # given a batch whose processing committed but whose deletion was lost
    ingest(
        ingest_fn,
        [track("u1", "Order Completed", "o1", revenue=30), track("u1", "Product Viewed", "v1")],
    )
    event = batch_event(aws, queue_messages(aws, C.EVENTS_QUEUE))
    process_fn(event)
    before = stored_state(aws, "u1")
    # when SQS delivers the very same messages again
    resp = process_fn(event)
    # then
    assert resp["batchItemFailures"] == []
    assert stored_state(aws, "u1") == before
    assert before is not None and before["orders"] == 1 and before["revenue"] == 30


# ---- order -----------------------------------------------------------------------------------------

FIRST = [
    {
        "type": "identify",
        "messageId": "a1",
        "timestamp": "2026-03-02T10:00:00Z",
        "traits": {"plan": "free", "tz": "UTC"},
    },
    {
        "type": "track",
        "messageId": "a2",
        "event": "Product Viewed",
        "timestamp": "2026-03-02T10:01:00Z",
        "properties": {"product_id": "p1"},
    },
    {
        "type": "track",
        "messageId": "a3",
        "event": "Product Added",
        "timestamp": "2026-03-02T10:02:00Z",
        "properties": {"product_id": "p1", "price": 10, "name": "Old name"},
    },
    {
        "type": "track",
        "messageId": "a4",
        "event": "Product Added",
        "timestamp": "2026-03-02T10:03:00Z",
        "properties": {"product_id": "p2", "price": 4},
    },
]
SECOND = [
    {
        "type": "identify",
        "messageId": "b1",
        "timestamp": "2026-03-02T11:00:00Z",
        "traits": {"plan": "pro"},
    },
    {
        "type": "track",
        "messageId": "b2",
        "event": "Product Removed",
        "timestamp": "2026-03-02T11:01:00Z",
        "properties": {"product_id": "p2"},
    },
    {
        "type": "track",
        "messageId": "b3",
        "event": "Order Completed",
        "timestamp": "2026-03-02T11:02:00Z",
        "properties": {"revenue": 10, "products": [{"product_id": "p1"}]},
    },
    {
        "type": "track",
        "messageId": "b4",
        "event": "Product Added",
        "timestamp": "2026-03-02T11:05:00Z",
        "properties": {"product_id": "p1", "price": 12, "name": "New name"},
    },
    {"type": "page", "messageId": "b5", "timestamp": "2026-03-02T11:06:00Z", "name": "Cart"},
]


def _in_order_and_reversed(
    ingest_fn: Fn, process_fn: Fn, aws: Resources
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same two batches, in order for one user and reversed for another."""
    for user, batches in (("in-order", (FIRST, SECOND)), ("reversed", (SECOND, FIRST))):
        for batch in batches:
            ingest(ingest_fn, [{**e, "userId": user} for e in batch])
            drain(aws, process_fn)
    forward, backward = stored_state(aws, "in-order"), stored_state(aws, "reversed")
    assert forward is not None and backward is not None
    for state in (forward, backward):
        state.pop("user_id")
        if "seen" in state:  # kept in the order remembered: the set is what must agree
            state["seen"] = unpack_seen(state["seen"])  # dicts compare as sets of items
    return forward, backward


def test_batches_arriving_out_of_order_give_the_same_profile(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    forward, backward = _in_order_and_reversed(ingest_fn, process_fn, aws)
    # the trigger engine's state is compared in the next test
    for state in (forward, backward):
        state.pop("triggers", None)
        for entry in state.get("cart", {}).values():
            entry.pop("qty", None)  # documented as approximate under reordering
    assert backward == forward
    profile = Profile.from_dict({"user_id": "x", **forward})
    assert profile.traits["plan"] == "pro"
    assert [(i["product_id"], i["name"], i["price"]) for i in profile.cart_items()] == [
        ("p1", "New name", 12)
    ]
    assert profile.orders == 1


def test_batches_arriving_out_of_order_give_the_same_trigger_state(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    forward, backward = _in_order_and_reversed(ingest_fn, process_fn, aws)
    assert backward.get("triggers") == forward.get("triggers")


# ---- bad input and failures ---------------------------------------------------------------------------


def test_a_poison_message_goes_to_the_dlq_and_the_rest_of_its_batch_is_processed(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    # given 9 valid events and one message that can never be parsed, in one batch
    ingest(ingest_fn, [track(f"u{i}", "Signed Up", f"m{i}") for i in range(9)])
    sqs = boto3.client("sqs")
    sqs.send_message(
        QueueUrl=aws.queue_urls[C.EVENTS_QUEUE],
        MessageBody="{this is not json",
        MessageGroupId="mallory",
        MessageDeduplicationId="poison-1",
    )
    messages = queue_messages(aws, C.EVENTS_QUEUE)
    assert len(messages) == 10
    poison = next(m for m in messages if m["Body"].startswith("{this"))
    # when
    resp = process_fn(batch_event(aws, messages))
    # then nothing is retried: the 9 are stored, the poison is in the dead-letter queue
    assert resp["batchItemFailures"] == []
    assert all(counts(aws, f"u{i}") == {"Signed Up": 1} for i in range(9))
    dead = queue_messages(aws, C.EVENTS_QUEUE + "-dlq")
    assert [m["Body"] for m in dead] == [poison["Body"]]
    assert dead[0]["MessageAttributes"]["reason"]["StringValue"]
    assert dead[0]["Attributes"]["MessageGroupId"] == "mallory"


def test_a_message_that_is_json_but_not_an_event_goes_to_the_dlq(
    aws: Resources, clock: Any, process_fn: Fn
) -> None:
    sqs = boto3.client("sqs")
    for i, body in enumerate(['{"type": "track"}', "[1, 2]", '"text"']):
        sqs.send_message(
            QueueUrl=aws.queue_urls[C.EVENTS_QUEUE],
            MessageBody=body,
            MessageGroupId=f"g{i}",
            MessageDeduplicationId=f"d{i}",
        )
    resp = process_fn(batch_event(aws, queue_messages(aws, C.EVENTS_QUEUE)))
    assert resp["batchItemFailures"] == []
    assert len(queue_messages(aws, C.EVENTS_QUEUE + "-dlq")) == 3


def test_a_store_failure_for_one_user_fails_only_that_users_records(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a batch for three users, and DynamoDB refusing writes for one of them
    ingest(
        ingest_fn,
        [
            track("ok-1", "A", "k1"),
            track("bad", "A", "b1"),
            track("ok-2", "A", "k2"),
            track("bad", "B", "b2"),
        ],
    )
    messages = queue_messages(aws, C.EVENTS_QUEUE)
    original = DynamoProfileStore.save

    def throttled_for_bad(self: DynamoProfileStore, stored: StoredProfile) -> None:
        if stored.profile.user_id == "bad":
            raise ClientError(
                {
                    "Error": {
                        "Code": "ProvisionedThroughputExceededException",
                        "Message": "slow down",
                    }
                },
                "PutItem",
            )
        original(self, stored)

    monkeypatch.setattr(DynamoProfileStore, "save", throttled_for_bad)
    # when
    resp = process_fn(batch_event(aws, messages))
    # then only the failing user's records are reported, and the others are stored
    bad_ids = {m["MessageId"] for m in messages if '"bad"' in m["Body"]}
    assert failed_ids(resp) == bad_ids
    assert counts(aws, "ok-1") == {"A": 1} and counts(aws, "ok-2") == {"A": 1}
    assert stored_state(aws, "bad") is None
    # and the retry of just those records succeeds once DynamoDB recovers
    monkeypatch.setattr(DynamoProfileStore, "save", original)
    retry = process_fn(batch_event(aws, [m for m in messages if m["MessageId"] in bad_ids]))
    assert retry["batchItemFailures"] == []
    assert counts(aws, "bad") == {"A": 1, "B": 1}
    assert counts(aws, "ok-1") == {"A": 1}


# ---- concurrency ----------------------------------------------------------------------------------------


def test_a_writer_that_lost_a_race_rereads_and_refolds(
    aws: Resources,
    clock: Any,
    ingest_fn: Fn,
    process_fn: Fn,
    aws_calls: AwsCalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given two batches for one user, A and B, and a user that already exists
    ingest(ingest_fn, [track("u1", "Signed Up", "s0")])
    drain(aws, process_fn)
    ingest(ingest_fn, [track("u1", "A", f"a{i}") for i in range(3)])
    batch_a = batch_event(aws, queue_messages(aws, C.EVENTS_QUEUE))
    ingest(ingest_fn, [track("u1", "B", f"b{i}") for i in range(4)] + [track("u1", "A", "a0")])
    batch_b = batch_event(aws, queue_messages(aws, C.EVENTS_QUEUE))
    # B commits between A's read and A's write
    original = DynamoProfileStore.save
    raced: list[dict[str, Any]] = []

    def b_commits_first(self: DynamoProfileStore, stored: StoredProfile) -> None:
        if not raced:
            raced.append({})
            worker = threading.Thread(target=lambda: raced.append(process_fn(batch_b)))
            worker.start()
            worker.join()
        original(self, stored)

    monkeypatch.setattr(DynamoProfileStore, "save", b_commits_first)
    aws_calls.clear()
    # when
    resp_a = process_fn(batch_a)
    # then A's first write was refused, it re-read, and every event counts exactly once
    assert resp_a["batchItemFailures"] == [] and raced[1]["batchItemFailures"] == []
    profiles = aws.tables[C.PROFILES]
    assert aws_calls.count("PutItem", "dynamodb", TableName=profiles) == 3  # B, A refused, A again
    assert counts(aws, "u1") == {"Signed Up": 1, "A": 3, "B": 4}


def test_concurrent_invocations_on_one_user_lose_nothing(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    # given 4 batches of 5 events for one hot user, processed at the same time
    batches = []
    for b in range(4):
        ingest(ingest_fn, [track("hot", "Viewed", f"h{b}-{i}") for i in range(5)])
        batches.append(queue_messages(aws, C.EVENTS_QUEUE))
    start = threading.Barrier(len(batches))
    failed: list[list[dict[str, Any]]] = []

    def invoke(messages: list[dict[str, Any]]) -> None:
        start.wait()
        resp = process_fn(batch_event(aws, messages))
        failed.append([m for m in messages if m["MessageId"] in failed_ids(resp)])

    workers = [threading.Thread(target=invoke, args=(m,)) for m in batches]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    # the event source retries whatever a writer gave up on
    for retry in (m for m in failed if m):
        assert process_fn(batch_event(aws, retry))["batchItemFailures"] == []
    # then
    assert counts(aws, "hot") == {"Viewed": 20}


# ---- cost -------------------------------------------------------------------------------------------------


def test_one_profile_write_per_user_per_batch(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, aws_calls: AwsCalls
) -> None:
    profiles = aws.tables[C.PROFILES]

    def writes() -> int:
        return sum(
            aws_calls.count(op, "dynamodb", TableName=profiles) for op in ("PutItem", "UpdateItem")
        )

    # one user, 10 events in one batch: one read, one write
    ingest(ingest_fn, [track("solo", "Viewed", f"s{i}", product_id=f"p{i}") for i in range(10)])
    solo = batch_event(aws, queue_messages(aws, C.EVENTS_QUEUE))
    aws_calls.clear()
    process_fn(solo)
    assert writes() == 1
    assert aws_calls.count("TransactWriteItems") == 0
    assert (
        aws_calls.count("GetItem", "dynamodb", TableName=profiles) + aws_calls.count("BatchGetItem")
        == 1
    )
    # ten users, one event each: ten writes, one batched read
    ingest(ingest_fn, [track(f"user-{i}", "Viewed", f"t{i}") for i in range(10)])
    many = batch_event(aws, queue_messages(aws, C.EVENTS_QUEUE))
    assert len(many["Records"]) == 10
    aws_calls.clear()
    process_fn(many)
    assert writes() == 10
    assert aws_calls.count("BatchGetItem", "dynamodb") == 1
    # a redelivered batch: reads, no write
    aws_calls.clear()
    process_fn(many)
    assert writes() == 0


def test_timers_armed_for_many_users_make_no_scheduler_call(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, aws_calls: AwsCalls
) -> None:
    """The event path's Scheduler cost is nil (D49): the cart timers of ten users are
    wake-up index writes, one BatchWriteItem, swept by the one recurring schedule."""
    ingest(
        ingest_fn,
        [track(f"cart-{i}", "Product Added", f"c{i}", product_id=f"p{i}") for i in range(10)],
    )
    batch = batch_event(aws, queue_messages(aws, C.EVENTS_QUEUE))
    aws_calls.clear()

    process_fn(batch)

    timers = aws.tables[C.TIMERS]
    written = [p for svc, op, p in aws_calls.calls if op == "BatchWriteItem"]
    assert sum(len(p["RequestItems"].get(timers, [])) for p in written) >= 10
    assert [op for svc, op, _ in aws_calls.calls if svc == "scheduler"] == []
    scheduler = boto3.client("scheduler", region_name=aws.region)
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=C.SCHEDULE_GROUP)["Schedules"]]
    assert names == [C.WAKE_UP_SWEEP_SCHEDULE]


# ---- identity through the real store ----------------------------------------------------------------------


def test_identify_merges_the_anonymous_profile_in_one_transaction(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, aws_calls: AwsCalls
) -> None:
    # given an anonymous visitor's events, stored
    ingest(
        ingest_fn,
        [
            {
                "type": "track",
                "anonymousId": "anon-7",
                "event": "Product Viewed",
                "messageId": "v1",
                "properties": {"product_id": "p1"},
            }
        ],
    )
    drain(aws, process_fn)
    # when they log in
    ingest(
        ingest_fn,
        [
            {
                "type": "identify",
                "userId": "u7",
                "anonymousId": "anon-7",
                "messageId": "id1",
                "traits": {"email": "u7@example.com"},
            }
        ],
    )
    aws_calls.clear()
    drain(aws, process_fn)
    # then the user has the visitor's history, the visitor is a pointer, in one transaction
    assert aws_calls.count("TransactWriteItems", "dynamodb") == 1
    assert counts(aws, "u7") == {"Product Viewed": 1}
    pointer = stored_state(aws, "anon-7")
    assert pointer is not None and pointer["merged_into"] == "u7"
    # and a late anonymous event folds into the user
    ingest(
        ingest_fn,
        [
            {
                "type": "track",
                "anonymousId": "anon-7",
                "event": "Product Viewed",
                "messageId": "v2",
                "properties": {"product_id": "p2"},
            }
        ],
    )
    drain(aws, process_fn)
    assert counts(aws, "u7") == {"Product Viewed": 2}
    assert stored_state(aws, "anon-7") == pointer


def test_events_are_received_at_the_clock_of_the_system(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    ingest(ingest_fn, [{"type": "track", "userId": "u1", "event": "A", "messageId": "x"}])
    drain(aws, process_fn)
    state = stored_state(aws, "u1")
    assert state is not None
    assert state["last_seen"] == int(datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp() * 1000)
