"""check: the EventBridge Scheduler target. A one-time schedule came due: re-read the
user's state and let the trigger engine fire, re-arm or do nothing. An exception makes
Scheduler retry (retry policy) and finally dead-letter the payload."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.effects import TriggerEffects
from nudge.adapters.profiles import DynamoProfileStore
from nudge.adapters.queues import SqsActionQueue
from nudge.adapters.scheduler import SchedulerTimers
from nudge.domain.processing import check_timer
from nudge.domain.triggers.engine import Engine
from nudge.domain.triggers.loader import load_triggers
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import CheckSettings
from pydantic import BaseModel


class TimerPayload(BaseModel):
    """The schedule's Input, as nudge.adapters.scheduler writes it."""

    user_id: str
    trigger_id: str
    key: str | None = None
    due: str
    schedule: str


class Deps:
    def __init__(self) -> None:
        self.settings = CheckSettings()  # type: ignore[call-arg]
        self.store = DynamoProfileStore()
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
    payload = parse(event=event, model=TimerPayload)
    now = clock().now()
    effects = TriggerEffects(
        actions=d.actions, timers=d.timers, now=now, fired_schedule=payload.schedule
    )
    decisions = check_timer(
        d.store,
        payload.user_id,
        payload.trigger_id,
        payload.key,
        now=now,
        engine=d.engine,
        effects=effects,
    )
    fired = len(decisions.fires) if decisions else 0
    metrics.add_metric("TimersChecked", MetricUnit.Count, 1)
    metrics.add_metric("TriggersFired", MetricUnit.Count, fired)
    logger.info(
        "timer checked",
        extra={
            "trigger_id": payload.trigger_id,
            "fired": fired,
            "rearmed": len(decisions.arm) if decisions else 0,
        },
    )
    return {"fired": fired, "rearmed": len(decisions.arm) if decisions else 0}
