"""Instant behaviors: they hold at the event that completes them (`event`, `count`,
`sequence`). The episode is that completion; the events up to a fire are consumed (the
check only looks at events after the key's last fire, `since`)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any

from nudge.domain.clock import to_ms
from nudge.domain.events import Event
from nudge.domain.triggers.behaviors.base import (
    MAX_DEFERRED,
    MAX_STEP_EVENTS,
    NO,
    RETAIN_MS,
    Check,
    Moment,
    Pattern,
    evict,
)
from nudge.domain.triggers.model import CountCondition, EventCondition, SequenceCondition
from nudge.domain.triggers.values import Matcher, event_context, product_of, snapshot

COUNT_SLACK = 4  # timestamps kept beyond at_least - 1, for late events
# events a count keeps past its window, behind the user's newest event: a late event that
# much older than the newest (a flush spanning days, its requests in any order) still
# completes a count with the events of its own window (docs/triggers.md, "Known limits")
LATE_SLACK_MS = 3 * 86_400_000


class EventPattern(Pattern):
    """Holds at each matching event: every one is an episode, in whatever order they
    arrive. State: {key: [event ms, ...]}, the newest MAX_STEP_EVENTS decided at or before
    the key's last fire (an event later than it is new by definition), so that a late
    event older than the last fire is told from one already decided."""

    def __init__(self, node: EventCondition) -> None:
        super().__init__(node)
        self.match = Matcher(node)

    def matches(self, ev: Event) -> bool:
        return self.match(ev)

    def decided(self, ps: dict[str, Any], m: Moment, anchor: int) -> None:
        done = ps.get(m.key)
        if not isinstance(done, list):
            done = ps[m.key] = []
        if anchor not in done:
            insort(done, anchor)
            del done[: max(0, len(done) - MAX_STEP_EVENTS)]
        evict(ps, lambda times: times[-1] if times else 0)

    def prune(self, ps: dict[str, Any], ref: int, held: int | None = None) -> None:
        floor = min(ref, held or ref) - RETAIN_MS
        for key in [k for k, times in ps.items() if not times or times[-1] < floor]:
            del ps[key]

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        ev = m.event
        if ev is None or not self.match(ev):
            return NO
        t = to_ms(ev.timestamp)
        late = since is not None and t <= since
        if late:
            done = ps.get(m.key) or []
            if t in done or not done or (t < done[0] and len(done) >= MAX_STEP_EVENTS):
                return NO  # decided already, or older than what is remembered
        context: dict[str, Any] = {"event": ev.event, "properties": dict(ev.properties)}
        product = product_of(ev.properties)
        if product is not None:
            context["product"] = snapshot(ev.properties)
        return Check(True, at=t, anchor=t, context=context, product=product, late=late)


class CountPattern(Pattern):
    """State: {key: [event ms, sorted]}, the newest `at_least - 1 + COUNT_SLACK` within
    the window. The message's context comes from the completing event."""

    def __init__(self, node: CountCondition) -> None:
        super().__init__(node)
        spec = node.count
        self.match = Matcher(spec)
        self.n = spec.at_least
        self.window = spec.within * 1000
        self.key_prop = spec.per
        self.horizon_ms = self.window
        self.keep = self.n - 1 + COUNT_SLACK

    def matches(self, ev: Event) -> bool:
        return self.match(ev)

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        if not self.match(ev):
            return False
        for key in self.keys(ev):
            times = ps.get(key)
            if not isinstance(times, list):
                times = ps[key] = []
            insort(times, t)
            if len(times) > self.keep + MAX_DEFERRED:  # trimmed to `keep` by prune
                del times[: len(times) - self.keep - MAX_DEFERRED]
        evict(ps, lambda times: times[-1] if times else 0)
        return True

    def prune(self, ps: dict[str, Any], ref: int, held: int | None = None) -> None:
        """Keeps the window (LATE_SLACK_MS more: a view that late still completes a count)
        and the newest `keep` timestamps, or, while late views wait (`held`: the oldest),
        all from it on and the `keep` before it."""
        floor = min(ref, held or ref) - self.window - LATE_SLACK_MS
        for key in [k for k, times in ps.items() if not times or times[-1] < floor]:
            del ps[key]
        for key, times in ps.items():
            start = bisect_left(times, floor)
            cut = len(times) if held is None else bisect_left(times, held)
            ps[key] = times[max(start, cut - self.keep) :]

    def completions_after(
        self, ps: dict[str, Any], key: str, since: int | None, after: int
    ) -> list[int]:
        """The later events at which `at_least` events since the last fire fall within
        the window that ends at them."""
        times = ps.get(key) or []
        if since is not None:
            times = times[bisect_right(times, since) :]
        return [
            tj
            for j, tj in enumerate(times)
            if tj > after and j - bisect_left(times, tj - self.window) + 1 >= self.n
        ]

    def held(self, ps: dict[str, Any], m: Moment) -> bool:
        """As a filter (a history filter under `not`): at least `at_least` matching
        events in the window that ends at the moment (its event's time, or now)."""
        times = ps.get(m.key) or []
        end = m.now if m.at is None else m.at
        return bisect_right(times, end) - bisect_left(times, end - self.window) >= self.n

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        ev = m.event
        if ev is None or not self.match(ev):
            return NO
        times = ps.get(m.key)
        if not times:
            return NO
        te = to_ms(ev.timestamp)
        if since is not None:
            times = times[bisect_right(times, since) :]
        # the earliest window [t - within, t] that holds this event and n events
        for j in range(bisect_left(times, te), len(times)):
            tj = times[j]
            if tj - self.window > te:
                break
            if j - bisect_left(times, tj - self.window) + 1 >= self.n:
                props = ev.properties
                product = m.key if self.key_prop == "product_id" else product_of(props)
                context = {**event_context(ev.event, props, product), "count": self.n}
                return Check(True, at=tj, anchor=tj, context=context, product=product)
        return NO


class SequencePattern(Pattern):
    """State: {key: [[[ms, fp8], ...] per step]}, the newest MAX_STEP_EVENTS of each step
    within the sequence's total time. The message's context comes from the current event."""

    def __init__(self, node: SequenceCondition) -> None:
        super().__init__(node)
        spec = node.sequence
        self.steps = [Matcher(s) for s in spec.steps]
        self.limits = [0] + [(s.within or 0) * 1000 for s in spec.steps[1:]]
        self.key_prop = spec.correlate
        self.horizon_ms = sum(self.limits)

    def matches(self, ev: Event) -> bool:
        return any(step(ev) for step in self.steps)

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        hits = [i for i, step in enumerate(self.steps) if step(ev)]
        if not hits:
            return False
        mark = [t, fp[:8]]
        for key in self.keys(ev):
            steps = ps.get(key)
            if not isinstance(steps, list) or len(steps) != len(self.steps):
                steps = ps[key] = [[] for _ in self.steps]
            for i in hits:
                marks = steps[i]
                if mark not in marks:
                    insort(marks, mark)
                    if len(marks) > MAX_STEP_EVENTS:
                        del marks[0]
        evict(ps, lambda steps: max((s[-1][0] for s in steps if s), default=0))
        return True

    def prune(self, ps: dict[str, Any], ref: int, held: int | None = None) -> None:
        floor = min(ref, held or ref) - self.horizon_ms
        for key in list(ps):
            steps = ps[key]
            for i, marks in enumerate(steps):
                steps[i] = [mk for mk in marks if mk[0] >= floor]
            if not any(steps):
                del ps[key]

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        ev = m.event
        if ev is None:
            return NO
        steps = ps.get(m.key)
        if not steps:
            return NO
        te = to_ms(ev.timestamp)
        reach = [tuple(mk) for mk in steps[0] if since is None or mk[0] > since]
        for i in range(1, len(steps)):
            if not reach:
                return NO
            limit = self.limits[i]
            nxt = []
            for mk in steps[i]:
                cand = tuple(mk)
                if since is not None and cand[0] <= since:
                    continue
                j = bisect_left(reach, cand) - 1  # the latest earlier step event
                if j >= 0 and cand[0] - reach[j][0] <= limit:
                    nxt.append(cand)
            reach = nxt
        done = [mk[0] for mk in reach if mk[0] >= te]
        if not done:
            return NO
        at = min(done)
        product = m.key if self.key_prop == "product_id" else product_of(ev.properties)
        context = event_context(ev.event, ev.properties, product)
        return Check(True, at=at, anchor=at, context=context, product=product)
