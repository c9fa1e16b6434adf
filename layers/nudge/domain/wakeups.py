"""Where a trigger timer wakes up: the minute bucket of the wake-up index, which the
wake-up sweep reads at that minute (D49). Pure, shared by the live scheduler adapter,
the check function, local mode and the backtest, so that all wake a timer at the same
minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nudge import constants as C

BUCKET_FORMAT = "%Y-%m-%dT%H:%M"  # a bucket's name: its minute in UTC
BUCKET_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$"  # what BUCKET_FORMAT writes
# how Scheduler writes its scheduled-time context attribute (e.g. 2026-12-02T05:21:00Z)
SCHEDULED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


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
