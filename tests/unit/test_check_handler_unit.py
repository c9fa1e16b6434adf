"""The check function's handler on in-memory ports (its `deps` argument), without moto: a
wake-up bucket in, one TimersMessage per user on the events queue out. The same handler
runs against moto in tests/integration/test_check_handler.py."""

from __future__ import annotations

import json
from datetime import timedelta
from types import ModuleType

import pytest
from aws_lambda_powertools.utilities.parser import ValidationError
from nudge import constants as C
from nudge.domain.triggers.contract import Timer
from nudge.domain.wakeups import BUCKET_FORMAT, bucket_of
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import NOW, MemoryEventQueue, MemoryWakeUps


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("check")


def test_a_bucket_s_timers_go_to_the_events_queue_as_one_message_per_user(
    module: ModuleType,
) -> None:
    due = NOW + timedelta(minutes=5)
    wakeups, queue = MemoryWakeUps(), MemoryEventQueue()
    wakeups.arm_many(
        [
            ("u1", Timer("t1", None, due)),
            ("u2", Timer("t1", None, due)),
            ("u1", Timer("t2", "p1", due)),
        ],
        now=NOW,
    )
    bucket = bucket_of(due, NOW).strftime(BUCKET_FORMAT)

    out = module.handler(
        {"bucket": bucket}, LambdaContext("nudge-check"), deps=module.Deps(wakeups, queue)
    )

    assert out == {"bucket": bucket, "timers": 3}
    assert [group for group, _ in queue.messages] == ["u1", "u2"]
    u1, u2 = queue.parsed()
    assert [(t.trigger_id, t.key) for t in u1.timers] == [("t1", None), ("t2", "p1")]
    assert [t.trigger_id for t in u2.timers] == ["t1"]


def test_an_empty_bucket_sends_nothing(module: ModuleType) -> None:
    queue = MemoryEventQueue()
    deps = module.Deps(MemoryWakeUps(), queue)

    out = module.handler({"bucket": "2026-03-02T12:05"}, LambdaContext("nudge-check"), deps=deps)

    assert out == {"bucket": "2026-03-02T12:05", "timers": 0} and queue.messages == []


def test_an_event_that_names_no_bucket_fails_for_lambda_to_retry(module: ModuleType) -> None:
    deps = module.Deps(MemoryWakeUps(), MemoryEventQueue())

    with pytest.raises(ValidationError):
        module.handler({"bucket": "tomorrow"}, LambdaContext("nudge-check"), deps=deps)


def test_the_sweep_reads_the_bucket_of_the_minute_scheduler_meant(module: ModuleType) -> None:
    """The recurring sweep's Input (C.WAKE_UP_SWEEP_INPUT) as Scheduler fills it in: its
    scheduled time names the bucket, whatever second the invocation runs at."""
    due = NOW + timedelta(minutes=5)
    wakeups, queue = MemoryWakeUps(), MemoryEventQueue()
    wakeups.arm_many([("u1", Timer("t1", None, due))], now=NOW)
    bucket = bucket_of(due, NOW)
    payload = C.WAKE_UP_SWEEP_INPUT.replace(
        C.SCHEDULED_TIME_ATTRIBUTE, f"{bucket:%Y-%m-%dT%H:%M:%SZ}"
    )

    out = module.handler(
        json.loads(payload), LambdaContext("nudge-check"), deps=module.Deps(wakeups, queue)
    )

    assert out == {"bucket": bucket.strftime(BUCKET_FORMAT), "timers": 1}
    assert [group for group, _ in queue.messages] == ["u1"]
    # the minute before holds nothing: its sweep sends nothing
    before = f"{bucket - timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}"
    queue.messages.clear()
    out = module.handler(
        {"scheduled_time": before}, LambdaContext("nudge-check"), deps=module.Deps(wakeups, queue)
    )
    assert out["timers"] == 0 and queue.messages == []


@pytest.mark.parametrize(
    ("scheduled", "bucket"),
    [
        ("2026-03-02T12:05:00Z", "2026-03-02T12:05"),
        ("2026-03-02T12:05:59Z", "2026-03-02T12:05"),  # a late run names its minute
        ("2026-03-02T13:05:30+01:00", "2026-03-02T12:05"),  # the minute in UTC
        ("2026-03-01T23:59:00-05:00", "2026-03-02T04:59"),
    ],
)
def test_the_scheduled_time_names_its_minute_in_utc(
    module: ModuleType, scheduled: str, bucket: str
) -> None:
    deps = module.Deps(MemoryWakeUps(), MemoryEventQueue())

    out = module.handler({"scheduled_time": scheduled}, LambdaContext("nudge-check"), deps=deps)

    assert out == {"bucket": bucket, "timers": 0}


@pytest.mark.parametrize(
    "event",
    [
        {},  # neither
        {"scheduled_time": "2026-03-02T12:05:00Z", "bucket": "2026-03-02T12:05"},  # both
        {"scheduled_time": "2026-03-02T12:05:00"},  # no time zone: which minute?
        {"scheduled_time": C.SCHEDULED_TIME_ATTRIBUTE},  # not filled in
    ],
)
def test_a_wake_up_that_is_not_one_minute_fails(module: ModuleType, event: dict[str, str]) -> None:
    deps = module.Deps(MemoryWakeUps(), MemoryEventQueue())

    with pytest.raises(ValidationError):
        module.handler(event, LambdaContext("nudge-check"), deps=deps)
