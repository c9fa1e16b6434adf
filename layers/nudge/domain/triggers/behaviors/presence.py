"""Durable behaviors measured from the profile rather than from events of their own:
`inactivity` (no activity for a time since `profile.last_seen`; past gaps from the
profile's activity intervals in event time) and `dwell` (a time on the product page the
user is on, `profile.last_page`, in a live session). A page left earlier in event time
stays unseen when its events come late (the profile keeps only the latest page)."""

from __future__ import annotations

from bisect import insort
from itertools import pairwise
from typing import Any

from nudge.domain.clock import from_ms, iso
from nudge.domain.events import Event
from nudge.domain.profile import ACTIVITY_TYPES, CART_MEMORY_MS, PAGE_EVENTS, PRODUCT_VIEWED
from nudge.domain.triggers.behaviors.base import (
    CART_EVENTS,
    NO,
    Check,
    Moment,
    Pattern,
)
from nudge.domain.triggers.contract import NONE_KEY
from nudge.domain.triggers.model import DwellCondition, InactivityCondition
from nudge.domain.triggers.values import snapshot

MAX_STRETCHES = 4  # spans of activity (and decided inactivity anchors) kept


class InactivityPattern(Pattern):
    """From the user's last activity (profile.last_seen, event time). Past stretches (late
    events that arrive after a stretch of inactivity already over) come from its own
    record of activity in event time. State: {"": {"i": [[start ms, end ms], ...], "x":
    [anchor ms, ...]}}: the newest MAX_STRETCHES spans of activity with no gap over the
    window (whatever the arrival order: each event joins or bridges spans), and the
    anchors of the episodes decided (the newest MAX_STRETCHES)."""

    instant = False
    late = True

    def __init__(self, node: InactivityCondition) -> None:
        super().__init__(node)
        self.window = node.inactivity.for_ * 1000
        self.horizon_ms = self.window

    def relevant(self, ev: Event) -> bool:
        return ev.type in ACTIVITY_TYPES

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        if ev.type not in ACTIVITY_TYPES:
            return False
        entry = ps.setdefault(NONE_KEY, {})
        start, end = t, t
        kept = []
        for s, e in entry.get("i") or []:
            if s - self.window <= end and start <= e + self.window:
                start, end = min(start, s), max(end, e)  # within the window: one span
            else:
                kept.append([s, e])
        kept.append([start, end])
        kept.sort()
        entry["i"] = kept[-MAX_STRETCHES:]
        return True

    def decided(self, ps: dict[str, Any], m: Moment, anchor: int) -> None:
        done = ps.setdefault(NONE_KEY, {}).setdefault("x", [])
        if anchor not in done:
            insort(done, anchor)
            del done[: max(0, len(done) - MAX_STRETCHES)]

    def past(self, ps: dict[str, Any], m: Moment, current: int | None) -> list[Check]:
        entry = ps.get(NONE_KEY) or {}
        done = entry.get("x") or []
        out: list[Check] = []
        for (_, quiet_from), _after in pairwise(entry.get("i") or []):
            if current is not None and quiet_from >= current:
                continue  # the current stretch
            if any(abs(quiet_from - x) < self.window for x in done):
                continue  # already decided (two stretches start over a window apart)
            context = {"event": None, "inactive_since": iso(from_ms(quiet_from)), "late": True}
            out.append(Check(True, at=quiet_from + self.window, anchor=quiet_from, context=context))
        return out

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        last = m.profile.last_seen
        if m.key != NONE_KEY or last is None:
            return NO
        deadline = last + self.window
        if m.now <= deadline:
            return Check(False, due=deadline, anchor=last)
        return Check(
            True,
            at=deadline,
            anchor=last,
            context={"event": None, "inactive_since": iso(from_ms(last))},
        )


class DwellPattern(Pattern):
    """On the product page the user is on (profile.last_page). State: a snapshot of the
    newest `Product Viewed`: {"": {"at": ms, "fp": fp, "s": snapshot}}."""

    instant = False

    def __init__(self, node: DwellCondition) -> None:
        super().__init__(node)
        spec = node.dwell
        self.window = spec.for_ * 1000
        self.unless_added = spec.unless_added
        self.timeout = spec.session_timeout * 1000
        self.horizon_ms = self.window

    def relevant(self, ev: Event) -> bool:
        # pages and cart changes ("already in the cart" is part of the condition), and any
        # activity: a late event may bridge the session to the deadline
        return ev.type in ACTIVITY_TYPES or ev.event in PAGE_EVENTS or ev.event in CART_EVENTS

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        if ev.event != PRODUCT_VIEWED:
            return False
        entry = ps.get(NONE_KEY)
        if entry is None or (t, fp) > (entry["at"], entry["fp"]):
            ps[NONE_KEY] = {"at": t, "fp": fp, "s": snapshot(ev.properties)}
        return True

    def _cart_allows_from(self, m: Moment, pid: str, entered: int) -> int | None:
        """From when the cart lets the page count (`unless_added`), None if it does not:
        the product added since entering, or in the cart now. A product that was in the
        cart when the page was entered and left it since counts from when it left (the
        first removal or order after its last add). A page entered before the cart's
        memory (a week before its newest change) whose product the cart no longer holds
        cannot be judged: it does not count (docs/triggers.md)."""
        if not self.unless_added:
            return entered
        profile = m.profile
        entry = profile.cart.get(pid)
        if not entry:  # (every cart change is by last_seen: the cheap test first)
            recent = entered >= (profile.last_seen or 0) - CART_MEMORY_MS
            return entered if recent or entered >= profile.cart_memory_from() else None
        added = entry.get("add", 0)
        if added >= entered or added > max(entry.get("rm", 0), profile.cart_cleared_at):
            return None
        left = profile.left_cart_at(pid)
        return left if left is not None and left > entered else entered

    def _session_alive_until(self, m: Moment, entered: int) -> int:
        """When the session the page was entered in times out: the end of the profile's
        activity interval that holds the entry (activity in event time, whatever the
        arrival order) plus the timeout."""
        for start, end in m.profile.open_sessions:
            if start <= entered <= end:
                return int(end) + self.timeout
        return max(m.profile.last_seen or entered, entered) + self.timeout

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        page = m.profile.last_page
        if (
            m.key != NONE_KEY
            or not page
            or page.get("event") != PRODUCT_VIEWED
            or not page.get("product_id")
        ):
            return NO
        pid, entered = str(page["product_id"]), int(page["at"])
        lifted = self._cart_allows_from(m, pid, entered)
        if lifted is None:
            return NO
        deadline = max(entered + self.window, lifted)
        if deadline > self._session_alive_until(m, entered):
            return NO  # the session times out before the deadline (unless new activity comes)
        seen = ps.get(NONE_KEY)
        snap = (
            dict(seen["s"])
            if seen and seen.get("at") == entered and seen.get("fp") == page.get("fp")
            else {}
        )
        if m.now <= deadline:
            return Check(False, due=deadline, anchor=entered, product=pid)
        context = {"event": PRODUCT_VIEWED, "product": {**snap, "product_id": pid}}
        return Check(True, at=deadline, anchor=entered, context=context, product=pid)
