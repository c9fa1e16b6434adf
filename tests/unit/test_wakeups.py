"""Filing timers in the wake-up index (nudge.domain.wakeups.file_timers): a timer whose
write returns when its bucket no longer takes timers (the batch outlasted the lead, so
that bucket's sweep may have read the index already) is filed again in a later bucket,
so that it still wakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nudge import constants as C
from nudge.domain.clock import SettableClock
from nudge.domain.triggers.contract import Timer
from nudge.domain.wakeups import (
    BUCKET_FORMAT,
    FILE_ATTEMPTS,
    WakeUpIndexTooSlowError,
    bucket_of,
)

from tests.fakes import MemoryWakeUps

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DUE = NOW + timedelta(seconds=30)  # bucket 12:01
FIRST = bucket_of(DUE, NOW).strftime(BUCKET_FORMAT)


def _index(write_takes: timedelta, slow_writes: int = 1) -> tuple[MemoryWakeUps, list[list[str]]]:
    """An index whose first `slow_writes` writes take `write_takes` on the batch's clock
    (the others a second); `swept` records what the sweep of the first bucket read, had
    it run while the write was under way."""
    clock = SettableClock(NOW, frozen=True)
    swept: list[list[str]] = []

    def slow_write() -> None:
        slow = index.writes <= slow_writes
        clock.set(clock.now() + (write_takes if slow else timedelta(seconds=1)))
        if not swept and clock.now() >= datetime.strptime(FIRST, BUCKET_FORMAT).replace(tzinfo=UTC):
            swept.append([u for u, _ in index.due(FIRST)])  # the sweep ran before it landed

    index = MemoryWakeUps(clock=clock, during_write=slow_write)
    return index, swept


def test_a_write_that_returns_in_time_files_each_timer_once() -> None:
    index, _ = _index(timedelta(seconds=2))

    refiled = index.arm_many([("u1", Timer("t1", None, DUE))], now=NOW)

    assert refiled == 0 and index.writes == 1
    assert [b for b, *_ in index.armed()] == [FIRST]


def test_a_write_that_returns_after_its_bucket_was_swept_files_the_timer_again() -> None:
    index, swept = _index(timedelta(seconds=75))

    refiled = index.arm_many(
        [("u1", Timer("t1", None, DUE)), ("u2", Timer("t1", None, DUE))], now=NOW
    )

    assert swept == [[]]  # the first bucket's sweep saw nothing: without a refile, lost
    assert refiled == 2 and index.writes == 2
    later = bucket_of(DUE, NOW + timedelta(seconds=75)).strftime(BUCKET_FORMAT)
    assert later > FIRST
    assert sorted(u for u, _ in index.due(later)) == ["u1", "u2"]


def test_a_write_that_returns_within_the_lead_of_its_bucket_files_it_again() -> None:
    # the sweep runs at second 0 of the minute: a write returning this close may miss it
    lead = timedelta(seconds=C.WAKE_UP_MIN_LEAD_SECONDS)
    index, _ = _index(timedelta(seconds=60) - lead)

    assert index.arm_many([("u1", Timer("t1", None, DUE))], now=NOW) == 1


def test_only_the_late_timers_are_filed_again() -> None:
    index, _ = _index(timedelta(seconds=75))
    later_due = NOW + timedelta(minutes=10)

    refiled = index.arm_many(
        [("u1", Timer("t1", None, DUE)), ("u1", Timer("t2", None, later_due))], now=NOW
    )

    assert refiled == 1
    assert sorted(trigger for _, _, trigger, _ in index.armed()) == ["t1", "t1", "t2"]


def test_without_a_clock_nothing_is_checked() -> None:
    index = MemoryWakeUps()

    assert index.arm_many([("u1", Timer("t1", None, DUE))], now=NOW) == 0
    assert index.writes == 1


def test_an_index_too_slow_for_every_write_fails_the_batch_to_be_retried() -> None:
    index, _ = _index(timedelta(seconds=75), slow_writes=FILE_ATTEMPTS)

    with pytest.raises(WakeUpIndexTooSlowError):
        index.arm_many([("u1", Timer("t1", None, DUE))], now=NOW)
    assert index.writes == FILE_ATTEMPTS
