"""The trigger engine: pure core, no AWS, no wall clock (time comes in as arguments).

The process function calls `on_events` after folding a user's fresh events into the
profile; the check function calls `on_timer` when a one-time schedule comes due. Both
return Decisions: the episodes that fire, the timers to arm (create or update, by a
deterministic name) and the timers worth deleting.

Semantics
- Time conditions use event time. Behaviors come in two kinds:
  *instant* (event, count, sequence) hold at the event that completes them; their
  episode is that completion (`at` = its event time), and the events up to a fire are
  consumed: the next episode needs new events after it;
  *durable* (absence, inactivity, dwell) hold from a deadline on while the state stays
  the same; their episode is identified by an anchor (the last change to the cart, the
  last `after` event, the last activity, the product page entry) and `at` is the
  deadline. A state that continues is one episode: a new one needs an anchor later than
  the previous fire.
- Filters (trait, segment, bought, and whatever sits under `not`) describe the user now:
  they are evaluated when an event arrives and again at the deadline, and a timer is
  only armed while they hold.
- Timers are armed lazily. Each (trigger, key) with a deadline ahead records it (`d`);
  the user needs an armed timer only at or before the earliest of them: a timer is
  never moved later, and no other is armed while one is due at or before the deadline
  now needed. When it fires, `on_timer` re-checks its own condition and every other
  deadline of the user due by then against current state, fires what holds, and arms
  for the next deadline (the same name for the same (trigger, key): an update). So a
  user has about one schedule at a time and most events cost no scheduler call. A
  duplicate, stale or late timer cannot fire an episode twice: the episode's anchor is
  recorded when it fires.
- Late events that complete a past episode. A durable behavior that keeps a short
  history (cart abandonment: the newest MAX_CART_HISTORY cart changes, orders and
  `without` events; a correlated absence: the newest MAX_STEP_EVENTS `after`/`without`
  events per key; both within the window plus RETAIN_MS) replays it in event time at
  each settle: an anchor whose window ended by `now` with nothing in event time
  restarting or cancelling it, and not decided yet, is an episode that in-order
  delivery would have decided at its deadline (e.g. the adds of 10:02-10:03 arriving
  after an order at 11:02: the cart of 10:03 was abandoned at 10:18). It is decided
  now, with the filters as they are now, and counted like any other: `fired` + 1, its
  key's episode number + 1, `last_fired_at` and the key's `at` the latest deadline
  fired (never moved back). The anchors decided (fired or filtered out) are recorded
  (`x` in the behavior's state) so that no episode is decided twice. Not covered:
  inactivity and dwell (no history kept: a past 48-hour gap or a product page left
  earlier in event time stays unseen), and a late event that cancels an episode
  already fired (an episode counted is never taken back).
- Staleness: a late-discovered episode always counts, but it sends a message (a Fire)
  only when (a) its deadline is within STALE_MS (1 hour) of `now`, and (b) no later
  episode of the same (trigger, key) has fired yet. (a) a cart abandoned hours ago is
  not worth an email now; (b) the user has already had the newer message, and only
  then is the episode number the one in-order delivery gives it (so the action id
  matches). The current episode (the one the state points at now) fires as before,
  however late its deadline is noticed: that is a timer or batch arriving late, not a
  past episode, and its message is still about the cart as it is.
- `/v1/import` (historical) events are folded into the engine's state (counts,
  sequences, anchors) but are never evaluated: they neither fire nor arm.

State per user and trigger, in `profile.triggers[trigger_id]`:
  fired           episodes so far (public)
  last_fired_at   epoch ms of the last episode (public)
  armed_until     epoch ms of the nearest pending deadline, or None (public)
  k               {key: {"n": episodes for the key, "at": last fire ms, "due": the armed
                  timer's due ms, "d": the deadline now needed}}, "" for no key
  p               {pattern slot: the behavior's rolling state}, bounded per key and window
  e               the highest per-key episode number of evicted keys (numbers stay unique)
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from nudge.domain.clock import from_ms, iso, to_ms
from nudge.domain.events import Event
from nudge.domain.profile import (
    ACTIVITY_TYPES,
    ORDER_COMPLETED,
    PAGE_EVENTS,
    PRODUCT_ADDED,
    PRODUCT_REMOVED,
    PRODUCT_VIEWED,
    Profile,
)
from nudge.domain.triggers.loader import TriggerSet
from nudge.domain.triggers.model import (
    AbsenceCondition,
    AllCondition,
    AnyCondition,
    BoughtCondition,
    CountCondition,
    DwellCondition,
    EventCondition,
    EventMatch,
    InactivityCondition,
    NotCondition,
    OncePer,
    PropertyFilter,
    SegmentCondition,
    SequenceCondition,
    TraitCondition,
    Trigger,
    split,
)

MAX_KEYS = 30  # keys kept per behavior and per trigger (products, correlation values)
COUNT_SLACK = 4  # timestamps kept beyond at_least - 1, for late events
MAX_STEP_EVENTS = 8  # per sequence step and key
SNAPSHOT_FIELDS = 8
SNAPSHOT_TEXT = 200
RETAIN_MS = 7 * 86_400_000  # resolved absences are kept this long past their window
LOST_TIMER_MS = 3_600_000  # an armed timer this overdue is presumed lost and armed again
DISARM_AHEAD_MS = 3_600_000  # only a timer further ahead than this is worth a delete call
DUE_TOLERANCE_MS = 60_000  # a timer firing this close to its due counts as that timer
STALE_MS = 3_600_000  # a late-discovered past episode older than this sends no message
MAX_CART_HISTORY = 24  # cart changes and `without` events kept for late episodes
NONE_KEY = ""
MISSING: Any = object()
CART_EVENTS = frozenset({PRODUCT_ADDED, PRODUCT_REMOVED, ORDER_COMPLETED})


# ---- the contract --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timer:
    """A one-time schedule to arm (create, or update when one of that name exists)."""

    trigger_id: str
    key: str | None
    due: datetime
    name: str  # deterministic per (user, trigger, key): <= 64 chars of [0-9a-zA-Z-_.]


@dataclass(frozen=True)
class Fire:
    """One episode that met its trigger's condition."""

    trigger_id: str
    key: str | None
    at: datetime
    episode: int
    action_id: str  # deterministic per (user, trigger, key, episode)
    action: dict[str, Any]
    priority: int
    cooldown_seconds: int
    context: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "key": self.key,
            "at": iso(self.at),
            "episode": self.episode,
            "action_id": self.action_id,
            "action": self.action,
            "priority": self.priority,
            "cooldown_seconds": self.cooldown_seconds,
            "context": self.context,
        }


@dataclass
class Decisions:
    fires: list[Fire] = field(default_factory=list)
    arm: list[Timer] = field(default_factory=list)
    disarm: list[str] = field(default_factory=list)  # timer names to delete (best effort)

    def __bool__(self) -> bool:
        return bool(self.fires or self.arm or self.disarm)


def _digest(*parts: str, size: int) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


def timer_name(user_id: str, trigger_id: str, key: str | None) -> str:
    """EventBridge Scheduler name rules: 1-64 of [0-9a-zA-Z-_.]."""
    return f"{trigger_id[:30]}-{_digest(user_id, trigger_id, key or NONE_KEY, size=12)}"


def timer_due(deadline_ms: int) -> int:
    """A timer for a deadline: the first whole second after it. Scheduler's `at()` counts
    whole seconds, and an event stamped exactly at the deadline (an order at 15:00 of a
    15-minute wait, a page left at 5:00 of a 5-minute dwell) is processed before the
    check, live and in the backtest alike; the condition itself still holds from the
    deadline on."""
    return (deadline_ms // 1000 + 1) * 1000


def action_id(user_id: str, trigger_id: str, key: str | None, episode: int) -> str:
    return _digest(user_id, trigger_id, key or NONE_KEY, str(episode), size=16)


# ---- values and filters ----------------------------------------------------------------------------
def lookup(props: dict[str, Any], path: str) -> Any:
    if path in props:
        return props[path]
    if "." not in path:
        return MISSING
    value: Any = props
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_num(v: Any) -> float | None:
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a == b:
        return True
    if _is_num(a) != _is_num(b) and (_is_num(a) or _is_num(b)):
        x, y = _as_num(a), _as_num(b)
        return x is not None and x == y
    return False


def _cmp(a: Any, b: Any) -> int | None:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return None
    if _is_num(a) or _is_num(b):
        x, y = _as_num(a), _as_num(b)
        if x is None or y is None:
            return None
        return (x > y) - (x < y)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    return None


def _contains(value: Any, needle: Any) -> bool:
    if isinstance(value, str):
        return str(needle) in value
    if isinstance(value, (list, tuple)):
        return any(_eq(v, needle) for v in value)
    if isinstance(value, dict):
        return str(needle) in value
    return False


ValuePred = Callable[[Any], bool]


def _operator(op: str, x: Any) -> ValuePred:
    if op == "eq":
        return lambda v: v is not MISSING and _eq(v, x)
    if op == "ne":
        return lambda v: v is MISSING or not _eq(v, x)
    if op in ("in", "not_in"):
        options = tuple(x)

        def member(v: Any) -> bool:
            return v is not MISSING and any(_eq(v, o) for o in options)

        return member if op == "in" else (lambda v: not member(v))
    if op in ("gt", "gte", "lt", "lte"):
        accept = {"gt": (1,), "gte": (0, 1), "lt": (-1,), "lte": (-1, 0)}[op]
        return lambda v: v is not MISSING and _cmp(v, x) in accept
    if op == "exists":
        want = bool(x)
        return lambda v: (v is not MISSING and v is not None) == want
    if op == "contains":
        return lambda v: v is not MISSING and _contains(v, x)
    raise ValueError(f"unknown operator {op!r}")


def compile_filter(pf: PropertyFilter) -> ValuePred:
    """A predicate on a value (MISSING when absent) that holds when every operator does."""
    checks = [_operator(op, x) for op, x in pf.operators().items()]
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


class Matcher:
    """An event match: name(s) and property filters."""

    __slots__ = ("any_name", "names", "where")

    def __init__(self, m: EventMatch) -> None:
        self.any_name = "*" in m.event
        self.names = frozenset(m.event)
        self.where = [(path, compile_filter(pf)) for path, pf in m.where.items()]

    def __call__(self, ev: Event) -> bool:
        name = ev.event
        if name is None or (not self.any_name and name not in self.names):
            return False
        props = ev.properties
        return all(pred(lookup(props, path)) for path, pred in self.where)


def _key_text(v: Any) -> str | None:
    if v is None or v is MISSING or isinstance(v, (dict, list, bool)):
        return None
    text = str(v)[:200]
    return text or None


def key_values(props: dict[str, Any], prop: str) -> list[str]:
    """The values of a key property in an event: the property itself, else those of the
    `products` list (Segment's e-commerce spec), so an `Order Completed` correlates with
    the products it holds. `product_id` falls back to `sku` as the profile does."""
    own = lookup(props, prop)
    if (own is MISSING or own is None) and prop == "product_id":
        own = props.get("sku", MISSING)
    text = _key_text(own)
    if text is not None:
        return [text]
    out: list[str] = []
    products = props.get("products")
    if isinstance(products, list):
        for item in products[:50]:
            if isinstance(item, dict):
                value = lookup(item, prop)
                if (value is MISSING or value is None) and prop == "product_id":
                    value = item.get("sku", MISSING)
                text = _key_text(value)
                if text is not None and text not in out:
                    out.append(text)
    return out


def product_of(props: dict[str, Any]) -> str | None:
    keys = key_values(props, "product_id")
    return keys[0] if len(keys) == 1 else None


def snapshot(props: dict[str, Any]) -> dict[str, Any]:
    """A small copy of an event's scalar properties, kept in state for a message's context."""
    out: dict[str, Any] = {}
    for k, v in props.items():
        if len(out) >= SNAPSHOT_FIELDS:
            break
        if isinstance(v, str):
            out[k] = v[:SNAPSHOT_TEXT]
        elif isinstance(v, (int, float, bool)):
            out[k] = v
    return out


# ---- moments and checks -----------------------------------------------------------------------------
class Moment:
    """What a condition is evaluated against: the profile now, and the event being
    processed (None at a timer)."""

    __slots__ = ("event", "key", "now", "product", "profile", "states")

    def __init__(
        self,
        profile: Profile,
        now: int,
        event: Event | None,
        key: str,
        states: dict[str, Any],
        product: str | None = None,
    ) -> None:
        self.profile = profile
        self.now = now
        self.event = event
        self.key = key
        self.states = states  # pattern slot -> rolling state, for behaviors under `not`
        self.product = product


class Check:
    """A behavior's verdict for one key at one moment."""

    __slots__ = ("anchor", "at", "context", "due", "holds", "product")

    def __init__(
        self,
        holds: bool,
        *,
        at: int = 0,
        anchor: int = 0,
        due: int | None = None,
        context: dict[str, Any] | None = None,
        product: str | None = None,
    ) -> None:
        self.holds = holds
        self.at = at
        self.anchor = anchor
        self.due = due
        self.context = context or {}
        self.product = product


NO = Check(False)


# ---- behaviors ---------------------------------------------------------------------------------------
class Pattern(ABC):
    """A behavior: folds events into its rolling state and checks whether it holds."""

    instant = True
    key_prop: str | None = None
    horizon_ms = 0
    late = False  # whether it finds past episodes revealed by late events (`past`)

    def __init__(self, node: BaseModel) -> None:
        self.slot = _digest(node.model_dump_json(by_alias=True), size=4)

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        """Folds one (fresh) event into the state, historical ones too; True when it
        was relevant."""
        return False

    def prune(self, ps: dict[str, Any], ref: int) -> None:  # noqa: B027 - optional hook
        """Drops what can no longer matter, `ref` being the newest event time known."""

    def matches(self, ev: Event) -> bool:
        """Whether the event can complete an instant behavior."""
        return False

    def relevant(self, ev: Event) -> bool:
        """Whether the event can move a durable behavior's deadline."""
        return True

    def keys(self, ev: Event) -> list[str]:
        """The keys the event touches."""
        if self.key_prop is None:
            return [NONE_KEY]
        return key_values(ev.properties, self.key_prop)

    @abstractmethod
    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        """Whether the behavior holds at the moment, or when it will be due."""

    def past(self, ps: dict[str, Any], m: Moment, current: int | None) -> list[Check]:
        """Durable episodes completed in event time before the current one (anchor below
        `current`, None when there is no current one) that were never decided: those a
        late event reveals. Each is decided once (see `decided`)."""
        return []

    def decided(self, ps: dict[str, Any], m: Moment, anchor: int) -> None:  # noqa: B027
        """Records that the episode of this anchor was decided (fired or filtered out)."""


def _evict(ps: dict[str, Any], newest: Callable[[Any], int]) -> None:
    if len(ps) > MAX_KEYS:
        for key in sorted(ps, key=lambda k: newest(ps[k]))[: len(ps) - MAX_KEYS]:
            del ps[key]


class EventPattern(Pattern):
    def __init__(self, node: EventCondition) -> None:
        super().__init__(node)
        self.match = Matcher(node)

    def matches(self, ev: Event) -> bool:
        return self.match(ev)

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        ev = m.event
        if ev is None or not self.match(ev):
            return NO
        t = to_ms(ev.timestamp)
        if since is not None and t <= since:
            return NO
        context: dict[str, Any] = {"event": ev.event, "properties": dict(ev.properties)}
        product = product_of(ev.properties)
        if product is not None:
            context["product"] = snapshot(ev.properties)
        return Check(True, at=t, anchor=t, context=context, product=product)


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
            if len(times) > self.keep:
                del times[: len(times) - self.keep]
        _evict(ps, lambda times: times[-1] if times else 0)
        return True

    def prune(self, ps: dict[str, Any], ref: int) -> None:
        floor = ref - self.window
        for key in [k for k, times in ps.items() if not times or times[-1] < floor]:
            del ps[key]
        for key, times in ps.items():
            if times[0] < floor:
                ps[key] = times[bisect_left(times, floor) :]

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
                props = dict(ev.properties)
                context: dict[str, Any] = {"event": ev.event, "properties": props, "count": self.n}
                product = m.key if self.key_prop == "product_id" else product_of(props)
                if product is not None:
                    context["product"] = {**snapshot(props), "product_id": product}
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
        _evict(ps, lambda steps: max((s[-1][0] for s in steps if s), default=0))
        return True

    def prune(self, ps: dict[str, Any], ref: int) -> None:
        floor = ref - self.horizon_ms
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
        props = dict(ev.properties)
        product = m.key if self.key_prop == "product_id" else product_of(props)
        context: dict[str, Any] = {"event": ev.event, "properties": props}
        if product is not None:
            context["product"] = {**snapshot(props), "product_id": product}
        return Check(True, at=at, anchor=at, context=context, product=product)


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
        _evict(ps, lambda e: max(e.get("a", 0), e.get("b", 0)))
        return True

    def prune(self, ps: dict[str, Any], ref: int) -> None:
        floor = ref - self.window - RETAIN_MS
        for key in [k for k, e in ps.items() if max(e.get("a", 0), e.get("b", 0)) < floor]:
            del ps[key]
        for entry in ps.values():
            for name in ("h", "x"):
                kept = [
                    v
                    for v in entry.get(name) or []
                    if (v[0] if isinstance(v, list) else v) >= floor
                ]
                if kept:
                    entry[name] = kept
                else:
                    entry.pop(name, None)

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

    def prune(self, ps: dict[str, Any], ref: int) -> None:
        entry = ps.get(NONE_KEY)
        if not entry:
            return
        floor = ref - self.window - RETAIN_MS
        for name in ("h", "x"):
            kept = [
                v for v in entry.get(name) or [] if (v[0] if isinstance(v, list) else v) >= floor
            ]
            if kept:
                entry[name] = kept
            else:
                entry.pop(name, None)

    def decided(self, ps: dict[str, Any], m: Moment, anchor: int) -> None:
        entry = ps.setdefault(NONE_KEY, {})
        done = entry.setdefault("x", [])
        if anchor not in done:
            insort(done, anchor)
            if len(done) > MAX_CART_HISTORY:
                del done[: len(done) - MAX_CART_HISTORY]

    def past(self, ps: dict[str, Any], m: Moment, current: int | None) -> list[Check]:
        """Replays the kept cart history in event time: an anchor is a change to a
        non-empty cart after the last order, whose window ends (by `now`) with no other
        change and no `without` event from the anchor on."""
        entry = ps.get(NONE_KEY)
        if m.key != NONE_KEY or not entry or not entry.get("h"):
            return []
        history: list[list[Any]] = entry["h"]
        done = set(entry.get("x") or [])
        profile = m.profile
        out: list[Check] = []
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
            items = [p for p, at in adds.items() if at > max(rms.get(p, 0), cleared)]
            items += [  # still in the cart now and added by then: in the cart then
                p
                for p, e in profile.cart.items()
                if max(cleared, e.get("rm", 0), profile.cart_cleared_at) < e.get("add", 0) <= t
            ]
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


class InactivityPattern(Pattern):
    """From the user's last activity (profile.last_seen, event time)."""

    instant = False

    def __init__(self, node: InactivityCondition) -> None:
        super().__init__(node)
        self.window = node.inactivity.for_ * 1000
        self.horizon_ms = self.window

    def relevant(self, ev: Event) -> bool:
        return ev.type in ACTIVITY_TYPES

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
        if self.window >= self.timeout:  # any activity keeps the session alive to the deadline
            return ev.type in ACTIVITY_TYPES
        # cart changes matter too: "already in the cart" is part of the condition, so a
        # removal (or an order clearing the cart) can make a page visit count again
        return ev.event in PAGE_EVENTS or ev.event in CART_EVENTS

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        if ev.event != PRODUCT_VIEWED:
            return False
        entry = ps.get(NONE_KEY)
        if entry is None or (t, fp) > (entry["at"], entry["fp"]):
            ps[NONE_KEY] = {"at": t, "fp": fp, "s": snapshot(ev.properties)}
        return True

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
        if self.unless_added:
            entry = m.profile.cart.get(pid)
            if entry and entry.get("add", 0) >= entered:
                return NO  # added since entering the page
            if entry and entry.get("add", 0) > max(entry.get("rm", 0), m.profile.cart_cleared_at):
                return NO  # already in the cart: nothing to upsell
        deadline = entered + self.window
        last = max(m.profile.last_seen or entered, entered)
        if last < deadline - self.timeout:
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


# ---- filters ------------------------------------------------------------------------------------------
Pred = Callable[[Moment], bool]


class _Compiler:
    def __init__(self) -> None:
        self.patterns: dict[str, Pattern] = {}

    def pattern(self, node: BaseModel) -> Pattern:
        made: Pattern
        if isinstance(node, EventCondition):
            made = EventPattern(node)
        elif isinstance(node, CountCondition):
            made = CountPattern(node)
        elif isinstance(node, SequenceCondition):
            made = SequencePattern(node)
        elif isinstance(node, AbsenceCondition):
            made = (
                CartAbsencePattern(node)
                if node.absence.measured_from == "cart_change"
                else AbsencePattern(node)
            )
        elif isinstance(node, InactivityCondition):
            made = InactivityPattern(node)
        elif isinstance(node, DwellCondition):
            made = DwellPattern(node)
        else:
            raise TypeError(f"not a behavior: {type(node).__name__}")
        return self.patterns.setdefault(made.slot, made)

    def predicate(self, node: BaseModel) -> Pred:
        if isinstance(node, AllCondition):
            parts = [self.predicate(c) for c in node.all_]
            return lambda m: all(p(m) for p in parts)
        if isinstance(node, AnyCondition):
            parts = [self.predicate(c) for c in node.any_]
            return lambda m: any(p(m) for p in parts)
        if isinstance(node, NotCondition):
            inner = self.predicate(node.not_)
            return lambda m: not inner(m)
        if isinstance(node, TraitCondition):
            traits = [(name, compile_filter(pf)) for name, pf in node.trait.items()]
            return lambda m: all(pred(m.profile.traits.get(name, MISSING)) for name, pred in traits)
        if isinstance(node, SegmentCondition):
            seg = compile_filter(node.segment)
            return lambda m: seg(MISSING if m.profile.segment is None else m.profile.segment)
        if isinstance(node, BoughtCondition):
            want = node.bought
            return lambda m: (m.product is not None and m.product in m.profile.bought) == want
        # a behavior used as a predicate (under `not`): does it hold at this moment?
        pattern = self.pattern(node)

        def holds(m: Moment) -> bool:
            keys = [m.key]
            if pattern.key_prop is not None and m.event is not None:
                keys = pattern.keys(m.event) or keys
            return any(
                pattern.check(
                    m.states.get(pattern.slot) or {},
                    Moment(m.profile, m.now, m.event, k, m.states, m.product),
                    None,
                ).holds
                for k in keys
            )

        return holds


# ---- compiled triggers -----------------------------------------------------------------------------------
class _State:
    """The trigger's state in the profile, with typed access."""

    __slots__ = ("k", "p", "raw")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        k = raw.get("k")
        self.k: dict[str, dict[str, Any]] = k if isinstance(k, dict) else {}
        p = raw.get("p")
        self.p: dict[str, dict[str, Any]] = p if isinstance(p, dict) else {}


class CompiledTrigger:
    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.id = trigger.id
        compiler = _Compiler()
        branches = split(trigger.when, ("when",))
        self.branches: list[tuple[Pattern, list[Pred]]] = []
        for b in branches:
            if b.pattern is None:
                continue  # refused by the loader; ignored if built by hand
            pattern = compiler.pattern(b.pattern)
            self.branches.append((pattern, [compiler.predicate(f) for f in b.filters]))
        self.patterns = compiler.patterns
        self.instant = [(p, fs) for p, fs in self.branches if p.instant]
        self.durable = [(p, fs) for p, fs in self.branches if not p.instant]
        self.durable_keyed = any(p.key_prop is not None for p, _ in self.durable)
        self._unkeyed = [p for p, _ in self.durable if p.key_prop is None]
        self.action = trigger.action.as_dict()
        self.priority = trigger.priority
        self.cooldown_seconds = trigger.cooldown_seconds
        self.once = trigger.reeligibility == "once"
        rule = trigger.reeligibility
        self.once_per_ms = rule.once_per * 1000 if isinstance(rule, OncePer) else None
        self.horizon_ms = max((p.horizon_ms for p in self.patterns.values()), default=0)

    def unsettled(self, ev: Event) -> bool:
        """Whether the event may move a keyless durable deadline or change a filter
        (traits, bought), so that the deadline must be evaluated again."""
        return (
            ev.type in ("identify", "group")
            or ev.event == ORDER_COMPLETED
            or any(p.relevant(ev) for p in self._unkeyed)
        )


def _filters_hold(filters: list[Pred], m: Moment) -> bool:
    return all(f(m) for f in filters)


class Engine:
    """Evaluates a set of triggers for one user at a time. Stateless between calls: all
    per-user state lives in the profile."""

    def __init__(self, triggers: TriggerSet | Iterable[Trigger]) -> None:
        self._triggers = [CompiledTrigger(t) for t in triggers if t.enabled]
        self._by_id = {c.id: c for c in self._triggers}
        self._evaluations = 0

    @property
    def trigger_ids(self) -> list[str]:
        return [c.id for c in self._triggers]

    @property
    def horizon(self) -> int:
        """The longest time threshold of any trigger, in seconds."""
        return max((c.horizon_ms for c in self._triggers), default=0) // 1000

    def evaluations(self) -> int:
        return self._evaluations

    # ---- entry points ----------------------------------------------------------------------
    def on_events(self, profile: Profile, events: list[Event], now: datetime) -> Decisions:
        """After `profile.apply(events)`, with the fresh events it returned."""
        decisions = Decisions()
        if not events:
            return decisions
        now_ms = to_ms(now)
        timed = sorted((to_ms(ev.timestamp), ev.fingerprint, i, ev) for i, ev in enumerate(events))
        live = [ev for _, _, _, ev in timed if not ev.historical]
        ref = max(profile.last_seen or 0, timed[-1][0])
        states = self._states(profile)
        for ct in self._triggers:
            self._evaluations += 1
            st = states[ct.id]
            self._observe(ct, st, timed, ref)
            if live:
                self._decide(ct, st, profile, live, now_ms, decisions)
        if live:
            self._settle_due(states, profile, now_ms, decisions)
            self._schedule(states, profile, now_ms, decisions)
        self._store_all(profile, states)
        decisions.fires.sort(key=lambda f: (f.at, -f.priority, f.trigger_id))
        return decisions

    def on_timer(
        self, profile: Profile, trigger_id: str, key: str | None, now: datetime
    ) -> Decisions:
        """A schedule came due: re-check against current state. Fires only when the
        condition holds now and its deadline has passed, for an episode not fired yet;
        arms again when the deadline moved later. The user's other deadlines that are
        due by now are checked too: an armed timer is the wake-up for every later one."""
        decisions = Decisions()
        now_ms = to_ms(now)
        k = NONE_KEY if key is None else key
        states = self._states(profile)
        ct = self._by_id.get(trigger_id)
        if ct is not None:  # else: the trigger was removed or disabled since
            self._evaluations += 1
            st = states[ct.id]
            ks = st.k.get(k)
            if ks is not None and "due" in ks and ks["due"] <= now_ms + DUE_TOLERANCE_MS:
                del ks["due"]  # this is the armed timer: it has done its work
            self._settle(ct, st, profile, k, now_ms, decisions)
        self._settle_due(states, profile, now_ms, decisions)
        self._schedule(states, profile, now_ms, decisions)
        self._store_all(profile, states)
        decisions.fires.sort(key=lambda f: (f.at, -f.priority, f.trigger_id))
        return decisions

    # ---- internals ---------------------------------------------------------------------------
    def _states(self, profile: Profile) -> dict[str, _State]:
        return {ct.id: _State(profile.triggers.get(ct.id) or {}) for ct in self._triggers}

    def _store_all(self, profile: Profile, states: dict[str, _State]) -> None:
        for ct in self._triggers:
            self._store(profile, ct, states[ct.id])

    def _observe(
        self, ct: CompiledTrigger, st: _State, events: list[tuple[int, str, int, Event]], ref: int
    ) -> None:
        live_slots = set(ct.patterns)
        for slot in [s for s in st.p if s not in live_slots]:
            del st.p[slot]  # the definition changed: its old state goes
        for slot, pattern in ct.patterns.items():
            ps = st.p.get(slot)
            if ps is None:
                ps = {}
            touched = False
            for t, fp, _, ev in events:
                touched = pattern.observe(ps, ev, t, fp) or touched
            if touched:
                pattern.prune(ps, ref)
            if ps:
                st.p[slot] = ps
            else:
                st.p.pop(slot, None)

    def _decide(
        self,
        ct: CompiledTrigger,
        st: _State,
        profile: Profile,
        live: list[Event],
        now: int,
        out: Decisions,
    ) -> None:
        for ev in live:
            for pattern, filters in ct.instant:
                if not pattern.matches(ev):
                    continue
                ps = st.p.get(pattern.slot) or {}
                for key in pattern.keys(ev):
                    ks = st.k.get(key) or {}
                    m = Moment(profile, now, ev, key, st.p)
                    chk = pattern.check(ps, m, ks.get("at"))
                    if not chk.holds:
                        continue
                    m.product = chk.product
                    if _filters_hold(filters, m) and self._eligible(ct, ks, chk):
                        self._fire(ct, st, profile, key, chk, out)
        if not ct.durable:
            return
        keys = {NONE_KEY} if any(ct.unsettled(ev) for ev in live) else set()
        if ct.durable_keyed:
            for pattern, _ in ct.durable:
                if pattern.key_prop is not None:
                    for ev in live:
                        if pattern.relevant(ev):
                            keys.update(pattern.keys(ev))
        for key in sorted(keys):
            self._settle(ct, st, profile, key, now, out)

    def _settle(
        self, ct: CompiledTrigger, st: _State, profile: Profile, key: str, now: int, out: Decisions
    ) -> None:
        """Evaluates the durable behaviors for a key now: fires, or records the deadline
        still ahead (`d`), or clears it when nothing is pending."""
        dues: list[int] = []
        for pattern, filters in ct.durable:
            ps = st.p.get(pattern.slot) or {}
            seen = st.k.get(key) or {}
            m = Moment(profile, now, None, key, st.p)
            chk = pattern.check(ps, m, seen.get("at"))
            m.product = chk.product
            if chk.holds:
                if _filters_hold(filters, m) and self._eligible(ct, seen, chk):
                    self._fire(ct, st, profile, key, chk, out)
                if pattern.late:
                    pattern.decided(st.p.setdefault(pattern.slot, ps), m, chk.anchor)
            elif chk.due is not None and _filters_hold(filters, m):
                dues.append(chk.due)
            current = chk.anchor if (chk.holds or chk.due is not None) else None
            for late in pattern.past(ps, m, current) if pattern.late else ():
                seen = st.k.get(key) or {}
                m.product = late.product
                if _filters_hold(filters, m) and self._eligible_late(ct, seen, late):
                    last = seen.get("at")
                    fresh = late.at >= now - STALE_MS and (last is None or late.at > last)
                    self._fire(ct, st, profile, key, late, out, emit=fresh)
                pattern.decided(st.p.setdefault(pattern.slot, ps), m, late.anchor)
        ks = st.k.get(key)
        if dues:
            if ks is None:
                ks = st.k[key] = {}
            ks["d"] = min(dues)
        elif ks is not None:
            ks.pop("d", None)

    def _settle_due(
        self, states: dict[str, _State], profile: Profile, now: int, out: Decisions
    ) -> None:
        """Checks every deadline of the user that is due by now (a wake-up serves them all;
        a lost timer is caught up by the next event)."""
        for ct in self._triggers:
            st = states[ct.id]
            due = [k for k, ks in st.k.items() if ks.get("d") is not None and ks["d"] < now]
            for key in due:
                self._settle(ct, st, profile, key, now, out)

    def _schedule(
        self, states: dict[str, _State], profile: Profile, now: int, out: Decisions
    ) -> None:
        """Keeps the user's earliest pending deadline covered by an armed timer at or
        before it. Later deadlines need none of their own: that timer's check wakes the
        user, settles what is due and arms for the next. So a user has about one
        schedule at a time, and an event that only moves a deadline later costs no call."""
        earliest: tuple[int, int, str] | None = None
        armed: int | None = None
        for i, ct in enumerate(self._triggers):
            for key, ks in states[ct.id].k.items():
                d = ks.get("d")
                if d is not None and (earliest is None or (d, i, key) < earliest):
                    earliest = (d, i, key)
                due = ks.get("due")
                if due is not None:
                    if due + LOST_TIMER_MS < now:
                        del ks["due"]  # never came: presumed lost
                    elif armed is None or due < armed:
                        armed = due
        if earliest is not None:
            d, i, key = earliest
            due = timer_due(d)
            if armed is None or armed > due:
                ct = self._triggers[i]
                states[ct.id].k[key]["due"] = due
                k = None if key == NONE_KEY else key
                out.arm.append(Timer(ct.id, k, from_ms(due), timer_name(profile.user_id, ct.id, k)))
            return
        for ct in self._triggers:  # nothing pending: far-off timers are worth deleting
            for key, ks in states[ct.id].k.items():
                due = ks.get("due")
                if due is not None and due - now > DISARM_AHEAD_MS:
                    del ks["due"]
                    out.disarm.append(
                        timer_name(profile.user_id, ct.id, None if key == NONE_KEY else key)
                    )

    @staticmethod
    def _eligible(ct: CompiledTrigger, ks: dict[str, Any], chk: Check) -> bool:
        last = ks.get("at")
        if last is not None and chk.anchor <= last:
            return False  # the same episode (or one older than the last fire)
        if ct.once and ks.get("n", 0) >= 1:
            return False
        return not (
            ct.once_per_ms is not None and last is not None and chk.at - last < ct.once_per_ms
        )

    @staticmethod
    def _eligible_late(ct: CompiledTrigger, ks: dict[str, Any], chk: Check) -> bool:
        """Re-eligibility for an episode found late (already known not to be decided)."""
        last = ks.get("at")
        if ct.once and ks.get("n", 0) >= 1:
            return False
        return not (
            ct.once_per_ms is not None and last is not None and abs(chk.at - last) < ct.once_per_ms
        )

    def _fire(
        self,
        ct: CompiledTrigger,
        st: _State,
        profile: Profile,
        key: str,
        chk: Check,
        out: Decisions,
        *,
        emit: bool = True,
    ) -> None:
        """Counts the episode; `emit` False for a late-discovered stale one (no message)."""
        ks = st.k.get(key)
        if ks is None:
            ks = st.k[key] = {}
        episode = ks.get("n") or int(st.raw.get("e", 0))
        episode += 1
        ks["n"] = episode
        ks["at"] = max(int(ks.get("at") or 0), chk.at)
        st.raw["fired"] = int(st.raw.get("fired", 0)) + 1
        st.raw["last_fired_at"] = max(int(st.raw.get("last_fired_at") or 0), chk.at)
        k = None if key == NONE_KEY else key
        if not emit:
            return
        out.fires.append(
            Fire(
                trigger_id=ct.id,
                key=k,
                at=from_ms(chk.at),
                episode=episode,
                action_id=action_id(profile.user_id, ct.id, k, episode),
                action=dict(ct.action),
                priority=ct.priority,
                cooldown_seconds=ct.cooldown_seconds,
                context=chk.context,
            )
        )

    @staticmethod
    def _store(profile: Profile, ct: CompiledTrigger, st: _State) -> None:
        raw = st.raw
        for key in [k for k, v in st.k.items() if not v]:
            del st.k[key]
        if len(st.k) > MAX_KEYS:
            idle = [k for k, v in st.k.items() if "due" not in v and k != NONE_KEY]
            idle.sort(key=lambda k: st.k[k].get("at", 0))
            for k in idle[: len(st.k) - MAX_KEYS]:
                raw["e"] = max(int(raw.get("e", 0)), int(st.k[k].get("n", 0)))
                del st.k[k]
        if st.k:
            raw["k"] = st.k
        else:
            raw.pop("k", None)
        if st.p:
            raw["p"] = st.p
        else:
            raw.pop("p", None)
        deadlines = [v["d"] for v in st.k.values() if v.get("d") is not None]
        raw["armed_until"] = min(deadlines) if deadlines else None
        if (
            not raw.get("k")
            and not raw.get("p")
            and not raw.get("fired")
            and ct.id not in profile.triggers
        ):
            return  # nothing worth a place in the profile yet
        raw.setdefault("fired", 0)
        profile.triggers[ct.id] = raw
