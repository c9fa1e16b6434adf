"""check: the EventBridge Scheduler target. A minute's wake-up came due: its timers (from
the wake-up index) go to their users' FIFO groups on the events queue, one TimersMessage
per user (nudge.domain.messages), where the process function re-checks each trigger
against the user's current state, serialized with the user's events.

Scheduler invokes this function asynchronously: its retry policy and dead-letter queue
cover only handing the event to Lambda. An exception here is retried by Lambda, twice
within 6 hours (the function's EventInvokeConfig, infra/constructs/scheduling.py), and
then the event goes with its error to the CheckFailures queue (alarmed) rather than
being dropped; re-invoking the function with its `requestPayload` replays the bucket
(docs/architecture.md, "Timers"). A replay or a retry is harmless: the timers are
re-checked against current state (and a retry within SQS's 5 minutes is dropped as a
duplicate)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.queues import dedup_id, message_group_id, send_fifo_batch
from nudge.adapters.scheduler import due_timers
from nudge.domain.messages import TimerItem, TimersMessage
from nudge.observability import logger, metrics, tracer
from nudge.settings import CheckSettings
from pydantic import BaseModel, Field


class WakeUp(BaseModel):
    """The schedule's Input, as nudge.adapters.scheduler writes it."""

    bucket: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")


@cache
def deps() -> CheckSettings:
    return CheckSettings()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = deps()
    wake = parse(event=event, model=WakeUp)
    timers = due_timers(wake.bucket)
    by_user: dict[str, list[TimerItem]] = {}
    for t in timers:
        item = TimerItem(trigger_id=t["trigger_id"], key=t["key"], due=t["due"])
        by_user.setdefault(t["user_id"], []).append(item)
    messages = [
        TimersMessage(user_id=u, bucket=wake.bucket, timers=ts) for u, ts in by_user.items()
    ]
    send_fifo_batch(
        settings.events_queue_url,
        [
            {
                "Id": str(i),
                "MessageBody": m.to_json(),
                "MessageGroupId": message_group_id(m.user_id),
                # one message per user and bucket: a retried wake-up is dropped by SQS
                "MessageDeduplicationId": dedup_id(f"{wake.bucket}\x1f{m.user_id}"),
            }
            for i, m in enumerate(messages)
        ],
    )
    metrics.add_metric("TimersDue", MetricUnit.Count, len(timers))
    logger.info("wake-up", extra={"bucket": wake.bucket, "timers": len(timers)})
    return {"bucket": wake.bucket, "timers": len(timers)}
