"""A trigger's exit events: they cancel an episode in flight (a pending deadline) when
stamped after the episode's start and by its deadline, in event time."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any

from nudge.domain.events import Event
from nudge.domain.triggers.behaviors.base import (
    MAX_STEP_EVENTS,
    NO,
    RETAIN_MS,
    Check,
    Moment,
    Pattern,
)
from nudge.domain.triggers.contract import NONE_KEY
from nudge.domain.triggers.model import ExitEvents
from nudge.domain.triggers.values import Matcher


class ExitPattern(Pattern):
    """State: {"": [event ms, ...]}: the newest MAX_STEP_EVENTS exit events within
    RETAIN_MS. Not a behavior of its own (never fires): the engine asks `cancels`."""

    def __init__(self, node: ExitEvents) -> None:
        super().__init__(node)
        self.matchers = [Matcher(e) for e in node.exit]

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        if not any(match(ev) for match in self.matchers):
            return False
        times = ps.setdefault(NONE_KEY, [])
        if t not in times:
            insort(times, t)
            del times[: max(0, len(times) - MAX_STEP_EVENTS)]
        return True

    def prune(self, ps: dict[str, Any], ref: int, held: int | None = None) -> None:
        times = [t for t in ps.get(NONE_KEY) or [] if t >= ref - RETAIN_MS]
        if times:
            ps[NONE_KEY] = times
        else:
            ps.pop(NONE_KEY, None)

    def cancels(self, ps: dict[str, Any], start: int, end: int) -> bool:
        """Whether an exit event falls in (start, end]."""
        times = ps.get(NONE_KEY) or []
        return bisect_right(times, end) > bisect_left(times, start + 1)

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        return NO
