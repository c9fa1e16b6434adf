"""The keyed absence: an `after` event not followed by a `without` event `within` a
time, measured from the last `after` event (per `correlate` value when set). Durable;
it keeps a short history so that late events can reveal a past episode."""

from __future__ import annotations

from bisect import insort
from typing import Any

from nudge.domain.events import Event
from nudge.domain.triggers.behaviors.base import (
    MAX_STEP_EVENTS,
    NO,
    RETAIN_MS,
    Check,
    Moment,
    Pattern,
    evict,
    prune_marks,
)
from nudge.domain.triggers.model import AbsenceCondition
from nudge.domain.triggers.values import Matcher, snapshot


class AbsencePattern(Pattern):
    """From the last `after` event: state {key: {"a": ms, "b": ms, "s": snapshot,
    "h": [[ms, "a" | "b"], ...], "x": [anchor ms, ...]}}: the last `after` and `without`
    events, the newest MAX_STEP_EVENTS of both, and the anchors of decided episodes."""

    instant = False
    late = True

    def __init__(self, node: AbsenceCondition) -> None:
        super().__init__(node)
        spec = node.absence
        self.after = Matcher(spec.after)
        self.without = Matcher(spec.without)
        self.window = spec.within * 1000
        self.key_prop = spec.correlate
        self.horizon_ms = self.window
        self.after_name = spec.after.event[0]

    def relevant(self, ev: Event) -> bool:
        return self.after(ev) or self.without(ev)

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        is_a, is_b = self.after(ev), self.without(ev)
        if not (is_a or is_b):
            return False
        if is_a:
            is_b = False  # one event as both ("no order for 30 days since the last"): a restart
        for key in self.keys(ev):
            entry = ps.setdefault(key, {})
            if is_a and t >= entry.get("a", -1):
                entry["a"] = t
                entry["s"] = snapshot(ev.properties)
            if is_b and t > entry.get("b", -1):
                entry["b"] = t
            history = entry.setdefault("h", [])
            for mark in ([t, "a"] if is_a else None, [t, "b"] if is_b else None):
                if mark is not None and mark not in history:
                    insort(history, mark)
            if len(history) > MAX_STEP_EVENTS:
                del history[: len(history) - MAX_STEP_EVENTS]
        evict(ps, lambda e: max(e.get("a", 0), e.get("b", 0)))
        return True

    def prune(self, ps: dict[str, Any], ref: int, held: int | None = None) -> None:
        floor = ref - self.window - RETAIN_MS
        for key in [k for k, e in ps.items() if max(e.get("a", 0), e.get("b", 0)) < floor]:
            del ps[key]
        for entry in ps.values():
            prune_marks(entry, floor)

    def decided(self, ps: dict[str, Any], m: Moment, anchor: int) -> None:
        entry = ps.get(m.key)
        if entry is None:
            return
        done = entry.setdefault("x", [])
        if anchor not in done:
            insort(done, anchor)
            if len(done) > MAX_STEP_EVENTS:
                del done[: len(done) - MAX_STEP_EVENTS]

    def past(self, ps: dict[str, Any], m: Moment, current: int | None) -> list[Check]:
        """An `after` event whose window ends (by `now`) with no other `after` and no
        `without` event from it on, among the kept ones."""
        entry = ps.get(m.key)
        if not entry or not entry.get("h"):
            return []
        history: list[list[Any]] = entry["h"]
        done = set(entry.get("x") or [])
        product = m.key if self.key_prop == "product_id" else None
        out: list[Check] = []
        for i, (t, code) in enumerate(history):
            deadline = t + self.window
            if (
                code != "a"
                or deadline >= m.now
                or (current is not None and t >= current)
                or t in done
                or [t, "b"] in history
            ):
                continue
            nxt = history[i + 1 :]
            if any(u <= deadline for u, c in nxt if (u, c) != (t, "b")):
                continue  # restarted or ended within the window
            context: dict[str, Any] = {"event": self.after_name, "properties": {}, "late": True}
            if product is not None:
                context["product"] = {"product_id": product}
            out.append(Check(True, at=deadline, anchor=t, context=context, product=product))
        return out

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        entry = ps.get(m.key)
        if not entry or "a" not in entry:
            return NO
        a = entry["a"]
        if entry.get("b", -1) >= a:
            return NO
        deadline = a + self.window
        snap = dict(entry.get("s") or {})
        product = m.key if self.key_prop == "product_id" else snap.get("product_id")
        if m.now <= deadline:
            return Check(False, due=deadline, anchor=a, product=product)
        context: dict[str, Any] = {"event": self.after_name, "properties": snap}
        if product is not None:
            context["product"] = {"product_id": product, **snap}
        return Check(True, at=deadline, anchor=a, context=context, product=product)
