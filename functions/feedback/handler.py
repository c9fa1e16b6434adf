"""feedback: SES bounce and complaint notifications (SNS) → the suppression list."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.delivery import DynamoSuppressions
from nudge.domain.feedback import addresses_to_suppress
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import FeedbackSettings


@cache
def deps() -> DynamoSuppressions:
    FeedbackSettings()
    return DynamoSuppressions()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_source(data_class=SNSEvent)
def handler(event: SNSEvent, context: LambdaContext) -> dict[str, Any]:
    suppressions = deps()
    count = 0
    for record in event.records:
        try:
            notification = json.loads(record.sns.message)
        except ValueError:
            logger.warning("not an SES notification", extra={"message_id": record.sns.message_id})
            continue
        for address, reason in addresses_to_suppress(notification):
            suppressions.suppress(address, reason, at=clock().now())
            count += 1
    metrics.add_metric("AddressesSuppressed", MetricUnit.Count, count)
    return {"suppressed": count}
