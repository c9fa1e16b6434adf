"""The clock port. Nothing in nudge calls datetime.now() directly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from nudge.domain.errors import ClockMovedBackwardsError


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SettableClock:
    """A clock that starts at a given instant (or wall time) and is moved explicitly,
    as local mode's `/_local/clock` and the backtest do. Between moves it advances
    with wall time so that local mode still behaves like a running system."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._wall = SystemClock()
        self._offset = timedelta(0) if start is None else start - self._wall.now()
        self._frozen_at: datetime | None = start if frozen else None

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._wall.now() + self._offset

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            current = (
                self._frozen_at if self._frozen_at is not None else self._wall.now() + self._offset
            )
            if when < current - timedelta(milliseconds=1):
                raise ClockMovedBackwardsError(
                    f"the clock is at {current.isoformat()}; it cannot move back to {when.isoformat()}"
                )
            if self._frozen_at is not None:
                self._frozen_at = when
            else:
                self._offset = when - self._wall.now()


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return utc(dt).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_ms(dt: datetime) -> int:
    # an aware time's timestamp is its instant's, whatever its zone (no conversion needed)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def from_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
