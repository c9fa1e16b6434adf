"""Process-wide ports chosen at start-up: the clock (system time on AWS; local mode and
tests install a settable one). Handlers ask here instead of calling datetime.now()."""

from __future__ import annotations

from nudge.domain.clock import Clock, SystemClock

_clock: Clock = SystemClock()


def clock() -> Clock:
    return _clock


def set_clock(new: Clock) -> None:
    global _clock
    _clock = new
