"""The check function under moto: a wake-up bucket's timers go to the events queue as
one TimersMessage per user, which the process function reads back; the sweep's Input
names the bucket by its scheduled minute."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from nudge import constants as C
from nudge.adapters.scheduler import WakeUps
from nudge.domain.messages import parse_message
from nudge.domain.triggers.contract import Timer
from nudge.domain.wakeups import BUCKET_FORMAT, bucket_of
from nudge.local.emulation import Resources

from tests.integration.conftest import Fn, queue_messages

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_buckets_timers_are_one_message_per_user(aws: Resources, clock: Any) -> None:
    due = NOW + timedelta(minutes=5)
    wake = WakeUps()
    wake.arm("u1", [Timer("t1", None, due), Timer("t2", "p1", due)], now=NOW)
    wake.arm("u2", [Timer("t1", None, due)], now=NOW)
    bucket = bucket_of(due, NOW).strftime(BUCKET_FORMAT)
    out = Fn(C.FN_CHECK)({"bucket": bucket})
    assert out == {"bucket": bucket, "timers": 3}
    messages = queue_messages(aws, C.EVENTS_QUEUE)
    assert sorted(m["Attributes"]["MessageGroupId"] for m in messages) == ["u1", "u2"]
    parsed = {p.user_id: p for p in (parse_message(m["Body"]) for m in messages)}
    assert sorted((t.trigger_id, t.key) for t in parsed["u1"].timers) == [
        ("t1", None),
        ("t2", "p1"),
    ]
    assert [t.trigger_id for t in parsed["u2"].timers] == ["t1"]


def test_the_sweep_schedule_s_input_sweeps_its_minute(aws: Resources, clock: Any) -> None:
    """The Input of the sweep local mode created as the stack does, filled in as
    Scheduler fills it in for the minute of the timers' bucket."""
    due = NOW + timedelta(minutes=5)
    WakeUps().arm("u1", [Timer("t1", None, due)], now=NOW)
    bucket = bucket_of(due, NOW)
    scheduler = boto3.client("scheduler", region_name=aws.region)
    sweep = scheduler.get_schedule(Name=C.WAKE_UP_SWEEP_SCHEDULE, GroupName=C.SCHEDULE_GROUP)
    assert sweep["ScheduleExpression"] == C.WAKE_UP_SWEEP_EXPRESSION
    payload = sweep["Target"]["Input"].replace(
        C.SCHEDULED_TIME_ATTRIBUTE, f"{bucket:%Y-%m-%dT%H:%M:%SZ}"
    )

    out = Fn(C.FN_CHECK)(json.loads(payload))

    assert out == {"bucket": bucket.strftime(BUCKET_FORMAT), "timers": 1}
    [message] = queue_messages(aws, C.EVENTS_QUEUE)
    assert message["Attributes"]["MessageGroupId"] == "u1"


def test_a_timer_written_too_late_for_its_sweep_wakes_in_the_next_bucket(
    aws: Resources, clock: Any
) -> None:
    """The index write returned 75 s after the batch read its clock: the sweep of the
    timer's bucket may have run before it landed, so the timer is filed again."""
    due = NOW + timedelta(seconds=30)
    first = bucket_of(due, NOW).strftime(BUCKET_FORMAT)
    clock.set(NOW + timedelta(seconds=75))  # what the process function's clock reads after

    refiled = WakeUps(clock=clock).arm_many([("u1", Timer("t1", None, due))], now=NOW)

    later = bucket_of(due, clock.now()).strftime(BUCKET_FORMAT)
    assert refiled == 1 and later > first
    assert Fn(C.FN_CHECK)({"bucket": later}) == {"bucket": later, "timers": 1}
    [message] = queue_messages(aws, C.EVENTS_QUEUE)
    assert [t.trigger_id for t in parse_message(message["Body"]).timers] == ["t1"]


def test_the_process_function_checks_its_index_writes_against_its_clock(
    aws: Resources, clock: Any
) -> None:
    from functions.process import handler as process

    process.deps.cache_clear()
    try:
        wakeups = process.deps().wakeups
        assert isinstance(wakeups, WakeUps) and wakeups._clock is process.deps().clock
    finally:
        process.deps.cache_clear()
