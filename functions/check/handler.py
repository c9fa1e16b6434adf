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

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.queues import SqsEventQueue
from nudge.adapters.scheduler import DynamoDueTimers
from nudge.domain.messages import timers_messages
from nudge.domain.ports import DueTimers, TimersQueue
from nudge.domain.wakeups import BUCKET_PATTERN
from nudge.observability import logger, metrics, tracer
from nudge.settings import CheckSettings
from pydantic import BaseModel, Field


class WakeUp(BaseModel):
    """The schedule's Input, as nudge.adapters.scheduler writes it."""

    bucket: str = Field(pattern=BUCKET_PATTERN)


@dataclass
class Deps:
    """What the check function talks to. `from_settings` wires the AWS adapters once
    per cold start; a test passes in-memory ones (tests/fakes.py) to `handler`."""

    timers: DueTimers
    queue: TimersQueue

    @classmethod
    def from_settings(cls, s: CheckSettings) -> Deps:
        return cls(
            timers=DynamoDueTimers(table=s.timers_table), queue=SqsEventQueue(s.events_queue_url)
        )


@cache
def deps() -> Deps:
    """The AWS adapters, built at cold start (local mode and tests clear the cache)."""
    return Deps.from_settings(CheckSettings())


def _cold_start_deps() -> Deps:
    return deps()  # the module's deps(): handler's argument of that name hides it


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(
    event: dict[str, Any], context: LambdaContext, deps: Deps | None = None
) -> dict[str, Any]:
    """`deps` (by keyword: Powertools' tracer passes keywords only) replaces the AWS
    adapters, as a unit test does."""
    d = deps if deps is not None else _cold_start_deps()
    wake = parse(event=event, model=WakeUp)
    due = d.timers.due(wake.bucket)
    d.queue.send_timers(timers_messages(wake.bucket, due))
    metrics.add_metric("TimersDue", MetricUnit.Count, len(due))
    logger.info("wake-up", extra={"bucket": wake.bucket, "timers": len(due)})
    return {"bucket": wake.bucket, "timers": len(due)}
