"""feedback: SES bounce and complaint notifications (SNS) → the suppression list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.delivery import DynamoSuppressions
from nudge.domain.clock import Clock
from nudge.domain.feedback import addresses_to_suppress
from nudge.domain.ports import SuppressionList
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import FeedbackSettings


@dataclass
class Deps:
    """What the feedback function talks to. `from_settings` wires the AWS adapters once
    per cold start; a test passes in-memory ones (tests/fakes.py) to `handler`."""

    suppressions: SuppressionList
    clock: Clock

    @classmethod
    def from_settings(cls, s: FeedbackSettings) -> Deps:
        return cls(suppressions=DynamoSuppressions(table=s.suppressions_table), clock=clock())


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
    for record in SNSEvent(event).records:
        try:
            notification = json.loads(record.sns.message)
        except ValueError:
            logger.warning("not an SES notification", extra={"message_id": record.sns.message_id})
            continue
        for address, reason in addresses_to_suppress(notification):
            d.suppressions.suppress(address, reason, at=d.clock.now())
            count += 1
    metrics.add_metric("AddressesSuppressed", MetricUnit.Count, count)
    return {"suppressed": count}
