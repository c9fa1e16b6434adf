"""Local mode's event source mappings (nudge.local.pollers) long-poll, as Lambda's do: an
idle queue costs a request a second per thread instead of a backing-off series of empty
receives, a message sent is handed over at once, settle() counts a batch being handled
(not a receive waiting for one), and stop() ends the threads within a poll."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from nudge.local.emulation import REGION
from nudge.local.pollers import LONG_POLL_S, QueuePoller, settle


class SlowFunction:
    """A handler that takes `seconds` per batch and notes when each one ended."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.handled: list[tuple[float, list[str]]] = []

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.seconds)
        self.handled.append((time.monotonic(), [r["body"] for r in event["Records"]]))
        return {"batchItemFailures": []}


@pytest.fixture
def queue(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")  # moto takes any
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    url = sqs.create_queue(
        QueueName=f"pollers-{time.monotonic_ns()}.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    return sqs, url


def _poller(endpoint: str, url: str, function: SlowFunction) -> QueuePoller:
    return QueuePoller(queue_url=url, function=function, endpoint_url=endpoint)  # type: ignore[arg-type]


def test_an_idle_queue_is_long_polled_and_a_message_handed_over_at_once(
    endpoint: str, queue: tuple[Any, str]
) -> None:
    sqs, url = queue
    function = SlowFunction(0)
    poller = _poller(endpoint, url, function)
    receives: list[float] = []
    poller._sqs.meta.events.register(
        "before-call.sqs.ReceiveMessage", lambda **_: receives.append(time.monotonic())
    )
    poller.start()
    try:
        time.sleep(2.5)  # idle
        idle_receives = len(receives)
        sent = time.monotonic()
        sqs.send_message(
            QueueUrl=url, MessageBody="hello", MessageGroupId="u", MessageDeduplicationId="1"
        )
        deadline = sent + 5
        while not function.handled and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        poller.stop()

    assert idle_receives <= 2.5 / LONG_POLL_S + 1
    [(handled_at, bodies)] = function.handled
    assert bodies == ["hello"] and handled_at - sent < 0.5


def test_settle_waits_for_the_batch_being_handled_not_for_the_long_poll(
    endpoint: str, queue: tuple[Any, str]
) -> None:
    sqs, url = queue
    function = SlowFunction(0.5)
    poller = _poller(endpoint, url, function)
    poller.start()
    try:
        assert settle([poller], timeout_s=5)  # idle: at once, though a receive is waiting
        sqs.send_message(
            QueueUrl=url, MessageBody="a", MessageGroupId="u", MessageDeduplicationId="a"
        )
        assert settle([poller], timeout_s=10)
        settled = time.monotonic()
    finally:
        started = time.monotonic()
        poller.stop()
        stopped = time.monotonic() - started

    [(handled_at, _)] = function.handled
    assert handled_at <= settled
    assert stopped < LONG_POLL_S + 1


def test_a_batch_is_one_user_s_messages_in_order_while_other_users_run_alongside(
    endpoint: str, queue: tuple[Any, str]
) -> None:
    sqs, url = queue
    function = SlowFunction(0.05)
    poller = QueuePoller(queue_url=url, function=function, endpoint_url=endpoint, workers=4)  # type: ignore[arg-type]
    for i in range(40):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=f"u{i % 4}:{i // 4}",
            MessageGroupId=f"u{i % 4}",
            MessageDeduplicationId=str(i),
        )
    poller.start()
    try:
        assert settle([poller], timeout_s=20)
    finally:
        poller.stop()

    seen: dict[str, list[int]] = {}
    for _, bodies in sorted(function.handled):
        for body in bodies:
            user, n = body.split(":")
            seen.setdefault(user, []).append(int(n))
    assert seen == {f"u{k}": list(range(10)) for k in range(4)}


class FailingFunction:
    """A handler that fails every record and notes the receive count it was handed."""

    name = "failing"

    def __init__(self) -> None:
        self.counts: list[str] = []

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.counts += [r["attributes"]["ApproximateReceiveCount"] for r in event["Records"]]
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}


def test_a_record_failing_every_time_is_handed_over_max_receive_count_times_then_dead_lettered(
    endpoint: str, queue: tuple[Any, str]
) -> None:
    # given a FIFO queue with a DLQ, as local mode provisions the stack's (maxReceiveCount 5)
    import json

    from nudge import constants as C

    sqs, _ = queue
    name = f"redrive-{time.monotonic_ns()}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])
    policy = {
        "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
        "maxReceiveCount": C.EVENTS_MAX_RECEIVE_COUNT,
    }
    url = sqs.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={"FifoQueue": "true", "RedrivePolicy": json.dumps(policy)},
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="u", MessageDeduplicationId="1")
    function = FailingFunction()
    poller = _poller(endpoint, url, function)  # type: ignore[arg-type]

    # when the poller runs until the queue is empty
    poller.start()
    try:
        assert settle([poller], timeout_s=30)
    finally:
        poller.stop()

    # then the handler saw receive counts 1 to maxReceiveCount, as Lambda's would, and the
    # message is in the DLQ (a handler can tell its last attempt from the count)
    assert function.counts == [str(n) for n in range(1, C.EVENTS_MAX_RECEIVE_COUNT + 1)]
    attrs = sqs.get_queue_attributes(
        QueueUrl=dlq["QueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"
