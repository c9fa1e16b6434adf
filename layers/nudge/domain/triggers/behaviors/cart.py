"""Cart abandonment: the absence measured from the last change to a non-empty cart
(`absence` with `measured_from: cart_change`). The cart itself is the profile's; this
behavior keeps the `without` events and a short cart history, so that late events can
reveal a cart abandoned in the past."""

from __future__ import annotations

from bisect import insort
from typing import Any

from nudge.domain.events import Event
from nudge.domain.profile import ORDER_COMPLETED, PRODUCT_ADDED, PRODUCT_REMOVED
from nudge.domain.triggers.behaviors.base import (
    CART_EVENTS,
    NO,
    RETAIN_MS,
    Check,
    Moment,
    Pattern,
    prune_marks,
)
from nudge.domain.triggers.contract import NONE_KEY
from nudge.domain.triggers.model import AbsenceCondition
from nudge.domain.triggers.values import Matcher

MAX_CART_HISTORY = 24  # cart changes and `without` events kept for late episodes


class CartAbsencePattern(Pattern):
    """From the last change to a non-empty cart: state {"": {"b": ms, "h": [[ms, code,
    product], ...], "x": [anchor ms, ...]}}: the last `without` event; the newest cart
    events ("a" add, "r" remove, "o" order, "w" a `without` event) within the window and
    retention; the anchors of the episodes already decided."""

    instant = False
    late = True

    def __init__(self, node: AbsenceCondition) -> None:
        super().__init__(node)
        spec = node.absence
        self.without = Matcher(spec.without)
        self.window = spec.within * 1000
        self.horizon_ms = self.window
        self.after_name = spec.after.event[0]

    def relevant(self, ev: Event) -> bool:
        return ev.event in CART_EVENTS or self.without(ev)

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        is_b = self.without(ev)
        marks: list[list[Any]] = []
        if ev.event in (PRODUCT_ADDED, PRODUCT_REMOVED):
            pid = _cart_product(ev.properties)
            if pid is not None:  # the profile ignores a cart event without a product too
                marks.append([t, "a" if ev.event == PRODUCT_ADDED else "r", pid])
        elif ev.event == ORDER_COMPLETED:
            marks.append([t, "o", ""])
        if is_b:
            marks.append([t, "w", ""])
        if not marks:
            return False
        entry = ps.setdefault(NONE_KEY, {})
        if is_b:
            entry["b"] = max(entry.get("b", -1), t)
        history = entry.setdefault("h", [])
        for mark in marks:
            if mark not in history:
                insort(history, mark)
        if len(history) > MAX_CART_HISTORY:
            del history[: len(history) - MAX_CART_HISTORY]
        return True

    def prune(self, ps: dict[str, Any], ref: int, held: int | None = None) -> None:
        entry = ps.get(NONE_KEY)
        if not entry:
            return
        prune_marks(entry, ref - self.window - RETAIN_MS)

    def decided(self, ps: dict[str, Any], m: Moment, anchor: int) -> None:
        entry = ps.setdefault(NONE_KEY, {})
        done = entry.setdefault("x", [])
        if anchor not in done:
            insort(done, anchor)
            if len(done) > MAX_CART_HISTORY:
                del done[: len(done) - MAX_CART_HISTORY]

    def past(self, ps: dict[str, Any], m: Moment, current: int | None) -> list[Check]:
        """Replays the kept cart history in event time, from the cart as it was before
        it: an anchor is a change to a non-empty cart after the last order, whose window
        ends (by `now`) with no other change and no `without` event from the anchor on."""
        entry = ps.get(NONE_KEY)
        if m.key != NONE_KEY or not entry or not entry.get("h"):
            return []
        history: list[list[Any]] = entry["h"]
        done = set(entry.get("x") or [])
        profile = m.profile
        out: list[Check] = []
        before: set[str] | None = None  # the cart before the kept history, when needed
        adds: dict[str, int] = {}
        rms: dict[str, int] = {}
        cleared = 0
        n = len(history)
        i = 0
        while i < n:
            t = history[i][0]
            j = i
            while j < n and history[j][0] == t:  # one moment: all its events at once
                _, code, pid = history[j]
                if code == "a":
                    adds[pid] = max(adds.get(pid, 0), t)
                elif code == "r":
                    rms[pid] = max(rms.get(pid, 0), t)
                elif code == "o":
                    cleared = max(cleared, t)
                j += 1
            moment = history[i:j]
            i = j
            deadline = t + self.window
            if (
                deadline >= m.now
                or (current is not None and t >= current)
                or t in done
                or t <= cleared
                or any(code == "w" for _, code, _ in moment)
                or not any(code in ("a", "r") for _, code, _ in moment)
            ):
                continue
            if j < n and history[j][0] <= deadline:
                continue  # changed again (or ordered) within the window
            if before is None:  # the profile's: it remembers each product a week after it left
                before = profile.cart_at(history[0][0] - 1)
            items = [p for p, at in adds.items() if at > max(rms.get(p, 0), cleared)]
            items += [p for p in before if not cleared and not rms.get(p) and p not in adds]
            if not items:
                continue  # the cart was empty
            cart = [i for i in profile.cart_items() if i["product_id"] in set(items)]
            context = {"event": self.after_name, "cart": cart, "late": True}
            out.append(Check(True, at=deadline, anchor=t, context=context))
        return out

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        if m.key != NONE_KEY:
            return NO
        profile = m.profile
        changed = profile.cart_changed_at()  # None when the cart is empty
        if changed is None or ps.get(NONE_KEY, {}).get("b", -1) >= changed:
            return NO
        deadline = changed + self.window
        if m.now <= deadline:
            return Check(False, due=deadline, anchor=changed)
        context = {"event": self.after_name, "cart": profile.cart_items()}
        return Check(True, at=deadline, anchor=changed, context=context)


def _cart_product(props: dict[str, Any]) -> str | None:
    """The product of a cart event as the profile reads it (`product_id`, else `sku`)."""
    pid = props.get("product_id", props.get("sku"))
    if pid is None or isinstance(pid, (dict, list)):
        return None
    return str(pid)[:200] or None
