"""Reading an SQS FIFO batch the same way in every queue consumer: Powertools' FIFO
partial processor parses each record; a record that can never be parsed goes to the
dead-letter queue at once with the reason (reporting it as a failure would hold back
every later message of its user's group until the redrive policy gives up on all of
them) and the rest of the batch goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.batch.types import PartialItemFailures
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from nudge.domain.messages import reason_of
from nudge.observability import logger, metrics


class UserMessage(Protocol):
    """A parsed queue message: whose it is (its FIFO group's user)."""

    @property
    def user_id(self) -> str: ...


T = TypeVar("T", bound=UserMessage)


class DeadLetters(Protocol):
    def send(self, body: str, *, group_id: str, reason: str) -> None: ...


def read_fifo_batch(
    event: dict[str, Any],
    context: Any,
    *,
    parse: Callable[[str], T],
    dead_letters: DeadLetters,
    what: str,
) -> tuple[dict[str, list[tuple[str, T]]], list[PartialItemFailures]]:
    """Returns the parsed items by user as (SQS message id, item), and the batch item
    failures so far. `parse` reads a body (nudge.domain.messages: parse_message,
    parse_action) or raises ValueError."""
    by_user: dict[str, list[tuple[str, T]]] = {}

    def one(record: SQSRecord) -> None:
        try:
            item = parse(record.body)
        except ValueError as err:
            logger.error(
                f"invalid {what} moved to the dead-letter queue",
                extra={"message_id": record.message_id},
            )
            dead_letters.send(
                record.body,
                group_id=record.attributes.message_group_id or "poison",
                reason=f"invalid {what}: {reason_of(err)}",
            )
            metrics.add_metric("PoisonMessages", MetricUnit.Count, 1)
            return
        by_user.setdefault(item.user_id, []).append((record.message_id, item))

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    with processor(records=event.get("Records", []), handler=one, lambda_context=context):
        processor.process()
    return by_user, list(processor.response()["batchItemFailures"])
