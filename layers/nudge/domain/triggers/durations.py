"""Durations as trigger definitions write them: a whole number and a unit, `30s`, `15m`,
`48h`, `7d`."""

from __future__ import annotations

import re
from typing import Any

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PATTERN = r"^[0-9]+(s|m|h|d)$"
MAX_SECONDS = 366 * 86400  # state is kept for the longest window: a year at most
_RE = re.compile(r"^\s*([0-9]+)\s*(s|m|h|d)\s*$")


class DurationError(ValueError):
    """A duration that does not read as <number><s|m|h|d>."""


def parse_duration(value: Any) -> int:
    """Seconds in a duration string. Bare numbers are refused: `15` could be anything."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise DurationError(
            f"bad duration {value!r}: write a number and a unit, e.g. 30s, 15m, 48h or 7d"
        )
    match = _RE.match(value)
    if match is None:
        raise DurationError(
            f"bad duration {value!r}: write a number and a unit, e.g. 30s, 15m, 48h or 7d"
        )
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_SECONDS:
        raise DurationError(f"bad duration {value!r}: longer than 366d")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest exact spelling: 900 -> `15m`, 172800 -> `2d`."""
    for unit in ("d", "h", "m"):
        size = UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
