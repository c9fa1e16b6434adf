"""process: SQS FIFO "events" → fold into user state (DynamoDB) → trigger engine.

Records are parsed with Powertools' FIFO batch processor; a record that can never be
parsed goes to the dead-letter queue at once (it would otherwise block its user's
message group); each user's events are then folded with one conditional write per
user, and a user whose fold fails reports all of its records as batch item failures."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.effects import TriggerEffects
from nudge.adapters.profiles import DynamoProfileStore
from nudge.adapters.queues import SqsActionQueue, SqsDeadLetters
from nudge.adapters.scheduler import SchedulerTimers
from nudge.domain.events import Event
from nudge.domain.processing import process_users
from nudge.domain.triggers.engine import Engine
from nudge.domain.triggers.loader import load_triggers
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import ProcessSettings
from pydantic import ValidationError


class Deps:
    def __init__(self) -> None:
        self.settings = ProcessSettings()  # type: ignore[call-arg]
        self.store = DynamoProfileStore()
        self.dead_letters = SqsDeadLetters(self.settings.events_dlq_url)
        self.engine = Engine(load_triggers(self.settings.triggers_path))
        self.actions = SqsActionQueue(self.settings.actions_queue_url)
        self.timers = SchedulerTimers(
            group=self.settings.schedule_group,
            target_arn=self.settings.check_function_arn,
            role_arn=self.settings.scheduler_role_arn,
            dlq_arn=self.settings.scheduler_dlq_arn,
        )


@cache
def deps() -> Deps:
    return Deps()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    d = deps()
    by_user: dict[str, list[tuple[str, Event]]] = {}

    def parse(record: SQSRecord) -> None:
        try:
            ev = Event.model_validate_json(record.body)
        except ValidationError as err:
            logger.error(
                "poison message moved to the dead-letter queue",
                extra={"message_id": record.message_id},
            )
            d.dead_letters.send(
                record.body,
                group_id=record.attributes.message_group_id or "poison",
                reason=f"invalid event: {err.errors()[0]['msg'] if err.errors() else err}",
            )
            metrics.add_metric("PoisonMessages", MetricUnit.Count, 1)
            return
        by_user.setdefault(ev.profile_id, []).append((record.message_id, ev))

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    with processor(records=event.get("Records", []), handler=parse, lambda_context=context):
        processor.process()
    failures: list[dict[str, str]] = list(processor.response()["batchItemFailures"])

    now = clock().now()
    effects = TriggerEffects(actions=d.actions, timers=d.timers, now=now)
    outcome = process_users(
        d.store,
        {user: [ev for _, ev in items] for user, items in by_user.items()},
        now=now,
        engine=d.engine,
        effects=effects,
    )
    for user_id, err in outcome.failed_users.items():
        logger.error(
            "fold failed; the user's records will be retried",
            extra={"user_id": user_id, "error": repr(err)},
            exc_info=err,
        )
        failures.extend({"itemIdentifier": mid} for mid, _ in by_user[user_id])
    metrics.add_metric("EventsProcessed", MetricUnit.Count, outcome.fresh)
    metrics.add_metric("DuplicateEvents", MetricUnit.Count, outcome.duplicates)
    metrics.add_metric("TriggersFired", MetricUnit.Count, effects.sent_actions)
    metrics.add_metric("TimersArmed", MetricUnit.Count, effects.armed)
    return {"batchItemFailures": failures}
