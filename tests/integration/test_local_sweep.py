"""Local mode's wake-up sweep (D49): provisioned as the stack defines it, fired at the
minutes whose bucket holds timers, the empty minutes passed over; the Query-per-minute
path (short clock moves) and the Scan path (long ones) find the same minutes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from nudge import constants as C
from nudge.adapters.scheduler import WakeUps
from nudge.domain.triggers.contract import Timer
from nudge.domain.wakeups import bucket_of
from nudge.local.emulation import Resources
from nudge.local.schedules import PEEK_MINUTES, WakeUpSweep, sweep_input

T0 = datetime(2026, 3, 2, 12, 0, 20, tzinfo=UTC)


def _sweep(aws: Resources) -> WakeUpSweep:
    return WakeUpSweep(None, aws.tables[C.TIMERS], started=T0)


def test_the_sweep_is_provisioned_as_the_stack_defines_it(aws: Resources) -> None:
    got = boto3.client("scheduler").get_schedule(
        Name=C.WAKE_UP_SWEEP_SCHEDULE, GroupName=C.SCHEDULE_GROUP
    )
    assert got["ScheduleExpression"] == "cron(* * * * ? *)"
    assert got["Target"]["Arn"] == aws.check_function_arn
    assert got["Target"]["DeadLetterConfig"] == {"Arn": aws.scheduler_dlq_arn}
    # filled in as Scheduler fills in its context attribute
    assert sweep_input(got, datetime(2026, 3, 2, 12, 7, tzinfo=UTC)) == {
        "scheduled_time": "2026-03-02T12:07:00Z"
    }
    assert got["Target"]["RetryPolicy"] == {
        "MaximumRetryAttempts": C.SCHEDULE_RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": C.SCHEDULE_MAX_EVENT_AGE_S,
    }
    assert json.loads(got["Target"]["Input"]) == {
        "scheduled_time": "<aws.scheduler.scheduled-time>"
    }


@pytest.mark.parametrize("span", [timedelta(minutes=PEEK_MINUTES - 5), timedelta(days=3)])
def test_the_next_minute_with_timers_and_none_after_the_last(
    aws: Resources, clock: object, span: timedelta
) -> None:
    """Timers in two minutes of the span (the Query path, then the Scan path): the sweep
    stops at each in turn, and past the last nothing is due up to the span's end."""
    first, second = T0 + span / 3, T0 + span * 2 / 3
    wake = WakeUps()
    wake.arm("u1", [Timer("t1", None, first)], now=T0)
    wake.arm("u2", [Timer("t1", None, second)], now=T0)
    first_bucket, second_bucket = bucket_of(first, T0), bucket_of(second, T0)
    assert T0 < first_bucket < second_bucket <= T0 + span
    sweep = _sweep(aws)

    assert sweep.next_due(T0 + span) == first_bucket
    assert sweep.next_due(T0 + span) == first_bucket  # it only reads
    sweep.fired(first_bucket)
    assert sweep.next_due(T0 + span) == second_bucket
    sweep.fired(second_bucket)
    assert sweep.next_due(T0 + span) is None
    sweep.passed(T0 + span)
    assert sweep.swept == (T0 + span).replace(second=0, microsecond=0)
    # a timer filed afterwards, ahead of what was swept, is found (the Query path)
    minute = timedelta(minutes=1)
    wake.arm("u3", [Timer("t1", None, T0 + span + 10 * minute)], now=T0 + span)
    assert sweep.next_due(T0 + span + 20 * minute) == bucket_of(T0 + span + 10 * minute, T0)


def test_a_timer_filed_in_a_minute_already_looked_at_is_still_found(
    aws: Resources, clock: object
) -> None:
    """Events that arrive while the clock moves are processed at a clock behind its
    target: their timers can land in minutes the sweep already found empty. Until the
    clock has passed those minutes they are not swept, so the timer fires."""
    sweep = _sweep(aws)
    target = T0 + timedelta(minutes=30)
    assert sweep.next_due(target) is None  # every minute up to the target is empty
    due = T0 + timedelta(minutes=12)
    WakeUps().arm("late", [Timer("t1", None, due)], now=T0 + timedelta(minutes=2))

    assert sweep.next_due(target) == bucket_of(due, T0)
    sweep.fired(bucket_of(due, T0))
    assert sweep.next_due(target) is None
    sweep.passed(target)
    # the minutes passed stay swept: a timer filed into one of them now is not swept
    # again (none can be: a timer is filed ahead of the clock that files it)
    assert sweep.swept == target.replace(second=0, microsecond=0)


def _set_state(state: str) -> None:
    scheduler = boto3.client("scheduler")
    got = scheduler.get_schedule(Name=C.WAKE_UP_SWEEP_SCHEDULE, GroupName=C.SCHEDULE_GROUP)
    scheduler.update_schedule(
        Name=C.WAKE_UP_SWEEP_SCHEDULE,
        GroupName=C.SCHEDULE_GROUP,
        ScheduleExpression=got["ScheduleExpression"],
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=got["Target"],
        State=state,
    )


def test_a_disabled_sweep_fires_nothing(aws: Resources) -> None:
    _set_state("DISABLED")
    try:
        assert _sweep(aws).schedule() is None
    finally:
        _set_state("ENABLED")
    assert _sweep(aws).schedule() is not None
