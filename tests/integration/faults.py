"""Fault injection and an SQS-like driver for the delivery fault run
(tests/integration/test_delivery_faults.py).

Faults are injected with botocore event hooks on the deliver function's own clients (the
PynamoDB models' DynamoDB clients and the SES/SNS send clients), raising the errors
botocore itself raises, around moto's own `before-send` handler, which answers each call:

- registered first (before moto, so nothing is applied): a DynamoDB write refused
  (`ProvisionedThroughputExceededException`), SES/SNS throttling (`TooManyRequests
  Exception`, `Throttled`), an SES/SNS 500 (`InternalFailure`);
- registered last (after moto applied the call): a read timeout (`ReadTimeoutError`: the
  provider sent it, the caller cannot know), or the function dying (`Crash`, a
  BaseException no handler catches: a timeout or out of memory) after SES, SNS or the
  inbox took the message.

`drive` plays the event source mapping over the real actions FIFO queue: batches of up to
10 received with their system attributes, the batch's failed records (or all of them when
the function died) left in flight for the visibility timeout, which the clock then
advances by, so they come back in order until the queue's maxReceiveCount moves them to
the dead-letter queue. Everything is seeded: a run is the same run every time."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError, ReadTimeoutError
from nudge.adapters.aws import send_client
from nudge.adapters.tables import MODELS
from nudge.domain.clock import SettableClock
from nudge.local.emulation import REGION
from nudge.local.lambdas import sqs_event

DYNAMODB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
SENDS = frozenset({"SendEmail", "Publish"})
THROTTLE_CODES = {"sesv2": ("TooManyRequestsException", 429), "sns": ("Throttled", 429)}


class Crash(BaseException):
    """The function died mid-invocation (a timeout, out of memory): no handler runs."""


@dataclass(frozen=True)
class Rates:
    """The share of calls each fault hits (each call draws once per hook)."""

    dynamodb_write: float = 0.20  # a DynamoDB write refused, nothing applied
    throttle: float = 0.20  # an SES/SNS call throttled, nothing sent
    server_error: float = 0.02  # an SES/SNS 500 before sending: ambiguous to the caller
    timeout_after_send: float = 0.05  # sent, then the answer lost: ambiguous
    crash_after_send: float = 0.05  # sent (or written to the inbox), then the function died


def _error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@dataclass
class Faults:
    rates: Rates
    seed: int = 7
    inbox_table: str = ""
    injected: Counter[str] = field(default_factory=Counter)
    on: bool = True

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _draw(self, rate: float) -> bool:
        return self.on and self.rng.random() < rate

    # ---- the hooks ------------------------------------------------------------------------
    def before_dynamodb(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation in DYNAMODB_WRITES and self._draw(self.rates.dynamodb_write):
            self.injected["dynamodb write refused"] += 1
            raise _error("ProvisionedThroughputExceededException", 400, operation)

    def after_dynamodb(self, event_name: str, request: Any, **_: Any) -> None:
        if not event_name.endswith(".PutItem"):
            return
        if json.loads(request.body or b"{}").get("TableName") != self.inbox_table:
            return
        if self._draw(self.rates.crash_after_send):
            self.injected["crash after the inbox write"] += 1
            raise Crash()

    def before_provider(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        if operation not in SENDS:
            return
        if self._draw(self.rates.throttle):
            self.injected[f"{service} throttled"] += 1
            code, status = THROTTLE_CODES[service]
            raise _error(code, status, operation)
        if self._draw(self.rates.server_error):
            self.injected[f"{service} 500 before sending"] += 1
            raise _error("InternalFailure", 500, operation)

    def after_provider(self, event_name: str, request: Any, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        if operation not in SENDS:
            return
        if self._draw(self.rates.timeout_after_send):
            self.injected[f"{service} timeout after sending"] += 1
            raise ReadTimeoutError(endpoint_url=request.url)
        if self._draw(self.rates.crash_after_send):
            self.injected[f"crash after {service} sent"] += 1
            raise Crash()

    # ---- where they go ---------------------------------------------------------------------
    def _targets(self) -> list[tuple[Any, Callable[..., None], Callable[..., None]]]:
        out: list[tuple[Any, Callable[..., None], Callable[..., None]]] = []
        for model in MODELS.values():  # each PynamoDB model has a client of its own
            events = model._get_connection().connection.client.meta.events
            out.append((events, self.before_dynamodb, self.after_dynamodb))
        for service in ("sesv2", "sns"):
            events = send_client(service).meta.events  # type: ignore[call-overload]
            out.append((events, self.before_provider, self.after_provider))
        return out

    @contextmanager
    def installed(self) -> Iterator[Faults]:
        """The hooks on the clients the deliver function built at its cold start (call it
        after a first invocation), removed afterwards: the clients outlive the test."""
        targets = self._targets()
        for events, before, after in targets:
            events.register_first("before-send", before)
            events.register_last("before-send", after)
        try:
            yield self
        finally:
            for events, before, after in targets:
                events.unregister("before-send", before)
                events.unregister("before-send", after)


@dataclass
class Drive:
    """What the event source mapping did."""

    invocations: int = 0
    crashes: int = 0
    function_errors: list[str] = field(default_factory=list)
    redeliveries: int = 0  # records that came back after a failure or a crash
    rounds: int = 0
    seconds: float = 0.0


def drive(
    deliver: Callable[[dict[str, Any]], Any],
    *,
    queue_url: str,
    queue_arn: str,
    clock: SettableClock,
    visibility: timedelta,
    max_rounds: int = 50,
) -> Drive:
    """Runs the queue dry the way Lambda's event source mapping would (module docstring)."""
    sqs = boto3.client("sqs", region_name=REGION)
    out = Drive()
    started = time.perf_counter()
    for _ in range(max_rounds):
        failed: list[dict[str, Any]] = []
        received = 0
        while msgs := sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            VisibilityTimeout=3600,  # in flight until this round ends
        ).get("Messages", []):
            received += len(msgs)
            out.invocations += 1
            failed_ids = _invoke(deliver, sqs_event(msgs, queue_arn), out)
            done = [m for m in msgs if m["MessageId"] not in failed_ids]
            failed += [m for m in msgs if m["MessageId"] in failed_ids]
            for m in done:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        if not received:
            break
        out.rounds += 1
        out.redeliveries += len(failed)
        clock.set(clock.now() + visibility)  # the visibility timeout runs out
        for m in failed:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
    out.seconds = time.perf_counter() - started
    return out


def _invoke(
    deliver: Callable[[dict[str, Any]], Any], event: dict[str, Any], out: Drive
) -> set[str]:
    """The batch's failed message ids: those reported, or all when the function died."""
    every = {r["messageId"] for r in event["Records"]}
    try:
        resp = deliver(event)
    except Crash:
        out.crashes += 1
        return every
    except Exception as err:  # a function error: Lambda retries the whole batch too
        out.function_errors.append(repr(err))
        return every
    return {f["itemIdentifier"] for f in resp["batchItemFailures"]}


def redrive(*, dlq_url: str, queue_url: str) -> list[dict[str, Any]]:
    """Moves every message of the dead-letter queue back to its source queue, as an
    operator's redrive does once the outage is over (moto has no StartMessageMoveTask);
    the bodies moved."""
    sqs = boto3.client("sqs", region_name=REGION)
    moved: list[dict[str, Any]] = []
    while msgs := sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        for m in msgs:
            body = json.loads(m["Body"])
            sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=m["Body"],
                MessageGroupId=m["Attributes"]["MessageGroupId"],
                MessageDeduplicationId=f"redrive-{m['MessageId']}",
            )
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved.append(body)
    return moved
