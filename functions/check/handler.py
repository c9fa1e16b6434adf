"""check: the EventBridge Scheduler target. Every minute the wake-up sweep (one recurring
schedule, docs/decisions.md D49) invokes it with the minute it was meant for; that
minute's bucket of timers (from the wake-up index) goes to their users' FIFO groups on the
events queue, one TimersMessage per user (nudge.domain.messages), where the process
function re-checks each trigger against the user's current state, serialized with the
user's events. `{"bucket": "YYYY-MM-DDTHH:MM"}` sweeps a bucket by name (the one-time
schedules of releases before the sweep, and an operator replaying a bucket).

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
from nudge.domain.wakeups import BUCKET_PATTERN, bucket_at
from nudge.observability import logger, metrics, tracer
from nudge.settings import CheckSettings
from pydantic import AwareDatetime, BaseModel, Field, model_validator


class WakeUp(BaseModel):
    """The sweep schedule's Input (C.WAKE_UP_SWEEP_INPUT, the scheduled time filled in by
    Scheduler), or a bucket by name."""

    scheduled_time: AwareDatetime | None = None
    bucket: str | None = Field(None, pattern=BUCKET_PATTERN)

    @model_validator(mode="after")
    def _one_of(self) -> WakeUp:
        if (self.scheduled_time is None) == (self.bucket is None):
            raise ValueError("a wake-up names either its scheduled_time or its bucket")
        return self

    def bucket_name(self) -> str:
        """The bucket swept: the scheduled time's minute in UTC, or the bucket named."""
        if self.bucket is not None:
            return self.bucket
        assert self.scheduled_time is not None
        return bucket_at(self.scheduled_time)


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
    bucket = parse(event=event, model=WakeUp).bucket_name()
    due = d.timers.due(bucket)
    if due:
        d.queue.send_timers(timers_messages(bucket, due))
    metrics.add_metric("TimersDue", MetricUnit.Count, len(due))
    if due:  # a minute without timers (most of them, at low traffic) logs nothing
        logger.info("wake-up", extra={"bucket": bucket, "timers": len(due)})
    return {"bucket": bucket, "timers": len(due)}
