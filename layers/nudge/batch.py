"""Reading an SQS FIFO batch the same way in every queue consumer: Powertools' FIFO
partial processor parses each record; a record that can never be parsed goes to the
dead-letter queue at once with the reason (reporting it as a failure would hold back
every later message of its user's group until the redrive policy gives up on all of
them) and the rest of the batch goes on.

`DeadLetterWatch` notes, for the invocation, what goes to the DLQ and why: the records
the function moves there itself, and the failed records on their last allowed receive
(ApproximateReceiveCount against the queue's maxReceiveCount), which SQS moves there.
Its `record` writes them as dead-letter entries (nudge.domain.dead_letters, D40)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.batch.types import PartialItemFailures
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from nudge.domain.dead_letters import (
    DeadLetter,
    DeadLetterLog,
    MovedBy,
    dead_letter,
    error_of,
    is_last_attempt,
)
from nudge.domain.messages import reason_of
from nudge.observability import logger, metrics


class UserMessage(Protocol):
    """A parsed queue message: whose it is (its FIFO group's user)."""

    @property
    def user_id(self) -> str: ...


T = TypeVar("T", bound=UserMessage)


class DeadLetters(Protocol):
    def send(self, body: str, *, group_id: str, reason: str) -> None: ...


class DeadLetterWatch:
    """One invocation's dead letters. The handler tells it why records failed
    (`failed`) and which it moved to the DLQ itself (`moved`), then hands it the batch
    item failures it returns (`record`): an entry is written for each moved record and
    for each failed record on its last allowed receive. Without a log (a unit test's
    deps) nothing is written; the last attempts are logged either way."""

    def __init__(
        self,
        event: dict[str, Any],
        *,
        log: DeadLetterLog | None,
        queue: str,
        max_receive_count: int,
        now: datetime,
    ) -> None:
        self.log = log
        self.queue = queue
        self.max_receive_count = max_receive_count
        self.now = now
        self._records = {str(r.get("messageId")): r for r in event.get("Records", [])}
        self._errors: dict[str, tuple[str, str]] = {}
        self._moved: dict[str, tuple[str, str]] = {}

    def failed(self, message_ids: Iterable[str], err: BaseException) -> None:
        """These records fail because of `err` (the first reason given for one is kept)."""
        for mid in message_ids:
            self._errors.setdefault(mid, error_of(err))

    def moved(self, message_id: str, *, error_type: str, error: str) -> None:
        """The function sent this record's message to the DLQ itself."""
        self._moved[message_id] = (error_type, error)

    def _entry(self, mid: str, moved_by: MovedBy, why: tuple[str, str]) -> DeadLetter:
        record = self._records.get(mid, {})
        attrs = record.get("attributes") or {}
        count = str(attrs.get("ApproximateReceiveCount", ""))
        return dead_letter(
            queue=self.queue,
            message_id=mid,
            group=str(attrs.get("MessageGroupId") or ""),
            receive_count=int(count) if count.isdigit() else None,
            moved_by=moved_by,
            error_type=why[0],
            error=why[1],
            body=str(record.get("body") or ""),
            at=self.now,
        )

    def entries(self, failures: Sequence[PartialItemFailures]) -> list[DeadLetter]:
        """The moved records, and the failed ones on their last allowed receive."""
        out = [self._entry(mid, "function", why) for mid, why in self._moved.items()]
        unknown = ("UnknownError", "reported failed with no reason noted")
        for mid in dict.fromkeys(str(f["itemIdentifier"]) for f in failures):
            entry = self._entry(mid, "redrive", self._errors.get(mid, unknown))
            if mid not in self._moved and is_last_attempt(
                entry.receive_count, self.max_receive_count
            ):
                out.append(entry)
        return out

    def record(self, failures: Sequence[PartialItemFailures]) -> int:
        """Writes the entries, and returns how many; never raises (a failed write is
        logged and counted: the DLQ holds the messages all the same)."""
        entries = self.entries(failures)
        for e in entries:
            if e.moved_by == "redrive":
                logger.error(
                    "failed on its last attempt: SQS moves it to the dead-letter queue",
                    extra={"message_id": e.message_id, "group": e.group, "error": e.error},
                )
        if not entries or self.log is None:
            return 0
        try:
            self.log.record(entries)
        except Exception as err:
            logger.warning("dead letters not recorded", extra={"error": repr(err)})
            metrics.add_metric("DeadLettersNotRecorded", MetricUnit.Count, len(entries))
            return 0
        metrics.add_metric("DeadLettersRecorded", MetricUnit.Count, len(entries))
        return len(entries)


def read_fifo_batch(
    event: dict[str, Any],
    context: Any,
    *,
    parse: Callable[[str], T],
    dead_letters: DeadLetters,
    what: str,
    watch: DeadLetterWatch | None = None,
) -> tuple[dict[str, list[tuple[str, T]]], list[PartialItemFailures]]:
    """Returns the parsed items by user as (SQS message id, item), and the batch item
    failures so far. `parse` reads a body (nudge.domain.messages: parse_message,
    parse_action) or raises ValueError. `watch` is told of the records moved to the DLQ
    and of why the others failed."""
    by_user: dict[str, list[tuple[str, T]]] = {}

    def one(record: SQSRecord) -> None:
        try:
            item = parse(record.body)
        except ValueError as err:
            logger.error(
                f"invalid {what} moved to the dead-letter queue",
                extra={"message_id": record.message_id},
            )
            reason = f"invalid {what}: {reason_of(err)}"
            dead_letters.send(
                record.body,
                group_id=record.attributes.message_group_id or "poison",
                reason=reason,
            )
            metrics.add_metric("PoisonMessages", MetricUnit.Count, 1)
            if watch is not None:
                watch.moved(record.message_id, error_type=type(err).__name__, error=reason)
            return
        by_user.setdefault(item.user_id, []).append((record.message_id, item))

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    with processor(records=event.get("Records", []), handler=one, lambda_context=context):
        processor.process()
    if watch is not None:
        for failed, (_, exc, _) in zip(processor.fail_messages, processor.exceptions, strict=False):
            if isinstance(failed, SQSRecord) and exc is not None:
                watch.failed([failed.message_id], exc)
    return by_user, list(processor.response()["batchItemFailures"])
