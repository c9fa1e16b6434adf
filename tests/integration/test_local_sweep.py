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
    assert json.loads(got["Target"]["Input"]) == {
        "scheduled_time": "<aws.scheduler.scheduled-time>"
    }


@pytest.mark.parametrize("span", [timedelta(minutes=PEEK_MINUTES - 5), timedelta(days=3)])
def test_the_next_minute_with_timers_and_none_after_the_last(
    aws: Resources, clock: object, span: timedelta
) -> None:
    """Timers in two minutes of the span: the sweep stops at each in turn, the minutes
    between count as swept, and past the last nothing is due up to the span's end."""
    first, second = T0 + span / 3, T0 + span * 2 / 3
    wake = WakeUps()
    wake.arm("u1", [Timer("t1", None, first)], now=T0)
    wake.arm("u2", [Timer("t1", None, second)], now=T0)
    minute = timedelta(minutes=1)
    first_bucket, second_bucket = bucket_of(first, T0), bucket_of(second, T0)
    assert T0 < first_bucket < second_bucket <= T0 + span
    sweep = _sweep(aws)

    assert sweep.next_due(T0 + span) == first_bucket
    assert sweep.swept == first_bucket - minute
    sweep.fired(first_bucket)
    assert sweep.next_due(T0 + span) == second_bucket
    sweep.fired(second_bucket)
    assert sweep.next_due(T0 + span) is None
    assert sweep.swept == (T0 + span).replace(second=0, microsecond=0)
    # a timer filed afterwards, ahead of what was swept, is found (the Query path)
    wake.arm("u3", [Timer("t1", None, T0 + span + 10 * minute)], now=T0 + span)
    assert sweep.next_due(T0 + span + 20 * minute) == bucket_of(T0 + span + 10 * minute, T0)


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
