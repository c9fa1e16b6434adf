"""feedback: SES event notifications (SNS) → the suppression list, the delivery log and
the event archive.

Bounces and complaints put the address on the suppression list; every event the
configuration set publishes (Delivery, Open, Click, Bounce, Complaint) is archived under
Segment's email spec name, linked to its action by the email's tags
(nudge.domain.outcomes), and proves that the email went out: an action the deliver
function logged `unconfirmed` (an ambiguous answer from SES, or its attempt died after
the call) becomes `sent` (nudge.domain.delivery.confirm_sent, D41), archived as its
`Message Outcome`. A failed archive write fails the invocation: SNS's retries suppress
again (idempotent), find the entry confirmed, and archive the same ids, which the view
keeps once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.archive import FirehoseArchive
from nudge.adapters.delivery import DynamoDeliveryLog, DynamoSuppressions
from nudge.domain.clock import Clock
from nudge.domain.delivery import DeliveryLog
from nudge.domain.events import Event
from nudge.domain.feedback import addresses_to_suppress
from nudge.domain.outcomes import confirmed_outcome, outcome_lines, ses_event
from nudge.domain.ports import ArchiveWriter, SuppressionList
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import FeedbackSettings


@dataclass
class Deps:
    """What the feedback function talks to. `from_settings` wires the AWS adapters once
    per cold start; a test passes in-memory ones (tests/fakes.py) to `handler`."""

    suppressions: SuppressionList
    clock: Clock
    archive: ArchiveWriter | None = None  # where the email events go (None: not archived)
    log: DeliveryLog | None = None  # the delivery log SES's events confirm (None: none)

    @classmethod
    def from_settings(cls, s: FeedbackSettings) -> Deps:
        return cls(
            suppressions=DynamoSuppressions(table=s.suppressions_table),
            clock=clock(),
            archive=FirehoseArchive(s.archive_stream),
            log=DynamoDeliveryLog(table=s.deliveries_table),
        )


@cache
def deps() -> Deps:
    """The AWS adapters, built at cold start (local mode and tests clear the cache)."""
    return Deps.from_settings(FeedbackSettings())


def _cold_start_deps() -> Deps:
    return deps()  # the module's deps(): handler's argument of that name hides it


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(
    event: dict[str, Any], context: LambdaContext, deps: Deps | None = None
) -> dict[str, Any]:
    """`deps` (by keyword: Powertools' tracer passes keywords only) replaces the AWS
    adapters, as a unit test does. The event is wrapped in Powertools' SNSEvent here
    rather than by its event_source decorator, which passes no keyword on."""
    d = deps if deps is not None else _cold_start_deps()
    count = 0
    archived: list[Event | None] = []
    for record in SNSEvent(event).records:
        try:
            notification = json.loads(record.sns.message)
        except ValueError:
            logger.warning("not an SES notification", extra={"message_id": record.sns.message_id})
            continue
        if not isinstance(notification, dict):
            continue
        for address, reason in addresses_to_suppress(notification):
            d.suppressions.suppress(address, reason, at=d.clock.now())
            count += 1
        email_event = ses_event(notification, now=d.clock.now())
        confirmed = (
            confirmed_outcome(d.log, email_event, now=d.clock.now()) if d.log is not None else None
        )
        if confirmed is not None:
            metrics.add_metric("SendsConfirmed", MetricUnit.Count, 1)
        archived += [email_event, confirmed]
    metrics.add_metric("AddressesSuppressed", MetricUnit.Count, count)
    lines = outcome_lines(archived)
    if d.archive is not None and lines:
        d.archive.write(lines)  # raises: the invocation fails and SNS retries it
        metrics.add_metric("EmailEventsArchived", MetricUnit.Count, len(lines))
    return {"suppressed": count, "archived": len(lines) if d.archive is not None else 0}
