"""Where a trigger timer wakes up: the minute bucket of the wake-up index, which the
wake-up sweep reads at that minute (D49). Pure, shared by the live scheduler adapter,
the check function, local mode and the backtest, so that all wake a timer at the same
minute."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from nudge import constants as C
from nudge.domain.errors import DependencyUnavailableError

if TYPE_CHECKING:
    from nudge.domain.clock import Clock
    from nudge.domain.triggers.contract import Timer


BUCKET_FORMAT = "%Y-%m-%dT%H:%M"  # a bucket's name: its minute in UTC
BUCKET_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$"  # what BUCKET_FORMAT writes
# how Scheduler writes its scheduled-time context attribute (e.g. 2026-12-02T05:21:00Z)
SCHEDULED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# (user, timer, the bucket it is filed in)
Filing = tuple[str, "Timer", datetime]
# writes of one set of timers, the first and the late ones filed again; past them the
# index is too slow to file anything in time and the batch fails, to be retried
FILE_ATTEMPTS = 3


class WakeUpIndexTooSlowError(DependencyUnavailableError):
    """Every write of the wake-up index returned too late for the bucket it filed in."""


def bucket_at(t: datetime) -> str:
    """The bucket the sweep of `t`'s minute reads: that minute in UTC, whatever its
    second (Scheduler's cron runs at second 0; a late or retried run names the same)."""
    return t.astimezone(UTC).strftime(BUCKET_FORMAT)


def bucket_of(due: datetime, now: datetime) -> datetime:
    """The minute whose wake-up takes a timer: due rounded up to the minute, and later
    than `now` by at least the minimum lead (a bucket about to fire takes no more)."""
    due = due.astimezone(UTC)
    start = due.replace(second=0, microsecond=0)
    bucket = start if start == due else start + timedelta(minutes=1)
    floor = now.astimezone(UTC) + timedelta(seconds=C.WAKE_UP_MIN_LEAD_SECONDS)
    while bucket <= floor:
        bucket += timedelta(minutes=1)
    return bucket


def file_timers(
    timers: Iterable[tuple[str, Timer]],
    *,
    now: datetime,
    write: Callable[[Sequence[Filing]], None],
    clock: Clock | None,
) -> int:
    """Files (user, timer) pairs through `write` in the buckets `bucket_of` gives at `now`
    (the clock the batch read as it started), and returns how many it filed again. `clock`
    is read again once the write has returned: a timer whose bucket stopped taking timers
    by then (the batch took longer than the lead between reading the clock and writing,
    so that bucket's sweep may have read it already and the timer would never wake) is
    filed again in the bucket of that time, until none is late. Filed twice, a timer is
    re-checked twice, and the second check changes nothing. Still late after
    FILE_ATTEMPTS writes, it raises WakeUpIndexTooSlowError: the process function applies
    effects before it writes profiles, so the batch fails whole and its retry files the
    timers again. Without a clock nothing is checked (a caller whose `now` is not a
    clock's)."""
    pending = list(timers)
    first, written = len(pending), 0
    for _ in range(FILE_ATTEMPTS):
        if not pending:
            return written - first
        batch = [(user, t, bucket_of(t.due, now)) for user, t in pending]
        write(batch)
        written += len(batch)
        if clock is None:
            return written - first
        now = max(now, clock.now())
        pending = [(user, t) for user, t, bucket in batch if bucket_of(t.due, now) != bucket]
    if pending:
        raise WakeUpIndexTooSlowError(
            f"{len(pending)} timers were written too late for their bucket's sweep "
            f"{FILE_ATTEMPTS} times"
        )
    return written - first
