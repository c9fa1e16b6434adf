"""The trigger engine: pure core, no AWS, no wall clock (time comes in as arguments).

User-facing semantics (what each behavior means, episodes, re-eligibility, late events)
are documented in `docs/triggers.md`; this docstring is about how the code gets there.

The flow
- The process use case (`nudge.domain.processing`) folds a user's fresh events into the
  profile, then calls `on_events` with them. The timers of the user that came due reach
  the same fold: the check function sends a wake-up bucket's timers onto the events
  queue in the user's message group, and `on_timer` is called for each. Both return
  Decisions (`contract.py`): the Fires to enqueue as actions and the Timers to arm.
- A Timer is filed in the per-minute wake-up index (`nudge.domain.wakeups.bucket_of`,
  docs/decisions.md D17), keyed by (user, trigger, key): arming the same (trigger, key)
  again replaces it. A timer no longer needed is never deleted: its check finds nothing
  due and changes nothing.
- `on_events`, per trigger: `_observe` folds every event (historical `/v1/import` ones
  too: they update state but never fire or arm) into each behavior's rolling state;
  `_decide` checks the instant behaviors (`behaviors/instant.py`) at each live event
  and settles the durable ones (`behaviors/absence.py`, `cart.py`, `presence.py`) for
  the keys the events touched. Then, for the user: `_settle_due` settles every deadline
  due by now, `_schedule` keeps the earliest pending deadline covered by a timer, and
  the state is stored back into the profile (`state.py`).
- `on_timer` settles the timer's own (trigger, key), then the same `_settle_due`,
  `_schedule` and store.

Settling a durable behavior for a key (`_settle`): when it holds and the filters hold,
the episode fires (once: its anchor is recorded by the key's last fire); when its
deadline is ahead and the filters hold, the deadline is recorded on the key; a behavior
that keeps history (`Pattern.late`) also reports the past episodes late events revealed,
each decided once. At events (`inline`), an episode whose deadline has passed, or a past
one, is not decided but LATE_FLUSH_MS later at a wake-up, so the rest of a late flush
can still cancel it. Lateness (docs/decisions.md D25): a past episode counts but never
sends; any episode whose moment is more than the trigger's `lateness` before its
decision counts but sends nothing. An instant episode stopped only by trait filters
waits LATE_FLUSH_MS for an `identify` (`_recheck_waiting`).

Timers are armed lazily: a user needs one armed timer, at or before the earliest of its
deadlines. A timer is never moved later; when it fires, every deadline due by then is
settled and a timer armed for the next. So most events file no timer, and a duplicate,
late or stale timer cannot fire an episode twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from nudge.domain.clock import from_ms, to_ms
from nudge.domain.events import Event
from nudge.domain.profile import Profile
from nudge.domain.triggers.behaviors import NO, Check, Moment, Pattern
from nudge.domain.triggers.behaviors.base import MAX_DEFERRED
from nudge.domain.triggers.compiler import CompiledTrigger, Pred, filters_hold
from nudge.domain.triggers.contract import (
    DUE_TOLERANCE_MS,
    FORGET_TIMER_AHEAD_MS,
    LATE_EVENT_MS,
    LATE_FLUSH_MS,
    NONE_KEY,
    PASSED_TIMER_MS,
    Decisions,
    Fire,
    Timer,
    action_id,
    timer_due,
)
from nudge.domain.triggers.experiments import apply_variant, draw, exposure, variant_named
from nudge.domain.triggers.loader import TriggerSet
from nudge.domain.triggers.model import Trigger
from nudge.domain.triggers.state import KeyState, TriggerState
from nudge.domain.triggers.values import event_context, snapshot

MAX_WAITING = 8  # instant episodes kept waiting for an `identify` per trigger
TimedEvent = tuple[int, str, int, Event]  # (event ms, fingerprint, arrival index, event)


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
        # a late batch: the rest of its flush may still come, and bring what stops a
        # deadline that this part arms (the add before the product page): none is decided
        # before LATE_FLUSH_MS from now
        late = any(to_ms(ev.received_at) - t > LATE_EVENT_MS for t, _, _, ev in timed)
        hold = now_ms + LATE_FLUSH_MS if late else 0
        states = self._states(profile)
        for ct in self._triggers:
            self._evaluations += 1
            st = states[ct.id]
            self._fold(ct, st, profile, timed, ref, now_ms, decisions)
            if live:
                self._decide(ct, st, profile, live, now_ms, decisions, hold)
                self._recheck_waiting(ct, st, profile, live, now_ms, decisions)
        if live:
            self._settle_due(states, profile, now_ms, decisions, inline=True, hold=hold)
            self._schedule(states, now_ms, decisions)
        self._store_all(profile, states)
        decisions.fires.sort(key=lambda f: (f.at, -f.priority, f.trigger_id))
        return decisions

    def on_timer(
        self, profile: Profile, trigger_id: str, key: str | None, now: datetime
    ) -> Decisions:
        """A timer came due: re-check against current state. Fires only when the
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
            ks = st.key(k)
            due = ks.timer_due_ms
            if due is not None and due <= now_ms + DUE_TOLERANCE_MS:
                ks.timer_due_ms = None  # this is the armed timer: it has done its work
            self._settle(ct, st, profile, k, now_ms, decisions)
        self._settle_due(states, profile, now_ms, decisions)
        self._schedule(states, now_ms, decisions)
        self._store_all(profile, states)
        decisions.fires.sort(key=lambda f: (f.at, -f.priority, f.trigger_id))
        return decisions

    # ---- state in and out -----------------------------------------------------------------
    def _states(self, profile: Profile) -> dict[str, TriggerState]:
        return {ct.id: TriggerState(profile.triggers.get(ct.id) or {}) for ct in self._triggers}

    def _store_all(self, profile: Profile, states: dict[str, TriggerState]) -> None:
        for ct in self._triggers:
            states[ct.id].store(profile.triggers, ct.id)

    # ---- events ----------------------------------------------------------------------------
    def _fold(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        events: list[TimedEvent],
        ref: int,
        now: int,
        out: Decisions,
    ) -> None:
        """Folds the events into each behavior's rolling state one at a time in event
        time, deciding the instant behaviors at each live one as it comes (so the state a
        check sees is the state at that event, as in real time, whatever the batching);
        what can no longer matter is pruned after the batch."""
        live_slots = set(ct.patterns)
        for slot in [s for s in st.patterns if s not in live_slots]:
            del st.patterns[slot]  # the definition changed: its old state goes
        states = {slot: st.patterns.get(slot) or {} for slot in ct.patterns}
        touched: set[str] = set()
        for t, fp, _, ev in events:
            for slot, pattern in ct.patterns.items():
                if pattern.observe(states[slot], ev, t, fp):
                    touched.add(slot)
                    st.patterns[slot] = states[slot]
            if not ev.historical:
                for pattern, filters in ct.instant:
                    if not pattern.matches(ev):
                        continue
                    # late at the door (received long after its timestamp), not late
                    # because a queue backed up: a backlog must not hold back messages
                    late = to_ms(ev.received_at) - t > LATE_EVENT_MS
                    if late or self._behind(st, pattern, ev):
                        self._defer(ct, st, profile, pattern, ev, t, fp, now, out)
                    else:
                        self._decide_instant(ct, st, profile, pattern, filters, ev, now, out)
        held: dict[str, int] = {}
        for e in st.deferred if st.raw.get("q") else []:
            held[e[2]] = min(held.get(e[2], e[0]), e[0])
        for slot in touched:
            ct.patterns[slot].prune(states[slot], ref, held.get(slot))
        for slot in [s for s, ps in st.patterns.items() if not ps]:
            del st.patterns[slot]

    def _decide(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        live: list[Event],
        now: int,
        out: Decisions,
        hold: int = 0,
    ) -> None:
        """Settles the durable behaviors for the keys the live events may have moved (the
        instant ones were decided as the events were folded)."""
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
            self._settle(ct, st, profile, key, now, out, inline=True, hold=hold)

    def _decide_instant(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        pattern: Pattern,
        filters: list[Pred],
        ev: Event,
        now: int,
        out: Decisions,
        *,
        keys: list[str] | None = None,
        deferred: bool = False,
    ) -> None:
        """An instant behavior at a live event, for each key it touches: counts the
        episode when it completes and the filters hold at its moment, and sends it when
        they still hold now (an order stamped after the third view, in the same flush,
        leaves that episode counted but silent). When only trait filters stood in the
        way, an on-time episode waits a minute for an `identify`; a `deferred` one (the
        rest of its flush is in) is not counted when a trait its filters read was set
        more than LATE_FLUSH_MS after it (whether they held then is unknown)."""
        for key in pattern.keys(ev) if keys is None else keys:
            ks = st.key(key)
            m = Moment(profile, now, ev, key, st.patterns)
            chk = pattern.check(st.patterns.get(pattern.slot) or {}, m, ks.last_fire_ms)
            if not chk.holds:
                continue
            m.product, m.at = chk.product, chk.at
            eligible = self._eligible_late if chk.late else self._eligible
            if not eligible(ct, ks, chk):
                continue
            if filters_hold(filters, m):
                if deferred and self._traits_set_after(ct, profile, chk.at + LATE_FLUSH_MS):
                    continue
                m.at = None  # the state now: is it still true?
                sends = filters_hold(filters, m)
                self._fire(ct, st, profile, key, chk, out if sends else None, now)
                self._decided(st, pattern, m, chk.anchor)
            elif ct.filtered_by_traits and not chk.late and not deferred:
                waiting = st.waiting
                waiting.append([chk.at, key, ev.event, snapshot(ev.properties), chk.product])
                del waiting[: max(0, len(waiting) - MAX_WAITING)]

    @staticmethod
    def _traits_set_after(ct: CompiledTrigger, profile: Profile, at: int) -> bool:
        return any(int((profile.trait_at.get(n) or [0])[0]) > at for n in ct.filter_traits)

    # ---- late instant events ------------------------------------------------------------------
    @staticmethod
    def _behind(st: TriggerState, pattern: Pattern, ev: Event) -> bool:
        """Whether an on-time event's keys have late events still waiting (it is decided
        after them, in event time)."""
        if not st.raw.get("q"):
            return False
        keys = set(pattern.keys(ev))
        return any(e[2] == pattern.slot and e[3] in keys for e in st.deferred)

    def _defer(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        pattern: Pattern,
        ev: Event,
        t: int,
        fp: str,
        now: int,
        out: Decisions,
    ) -> None:
        """A late event (or one behind late ones) that completes the behavior for a key is
        decided at the wake-up LATE_FLUSH_MS after it arrived, with the rest of its flush:
        the earlier views of its product, an order stamped before it. One that completes
        nothing needs no wake-up: it is in the behavior's state for the events that
        follow. Beyond MAX_DEFERRED waiting, the oldest are decided now."""
        queue = st.deferred
        ready = now + LATE_FLUSH_MS
        props: dict[str, Any] | None = None
        ps = st.patterns.get(pattern.slot) or {}
        for key in pattern.keys(ev):
            m = Moment(profile, now, ev, key, st.patterns)
            if not pattern.check(ps, m, st.key(key).last_fire_ms).holds:
                continue
            props = snapshot(ev.properties) if props is None else props
            queue.append([t, fp[:8], pattern.slot, key, ev.event, props, ready])
            ks = st.key_for_update(key)
            ks.deadline_ms = min(ks.deadline_ms or ready, ready)
        if len(queue) > MAX_DEFERRED:
            queue.sort(key=lambda e: (e[0], e[1]))
            overflow = queue[: len(queue) - MAX_DEFERRED]
            del queue[: len(overflow)]
            self._decide_entries(ct, st, profile, overflow, now, out)

    def _decide_deferred(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        key: str,
        now: int,
        out: Decisions,
    ) -> list[int]:
        """Decides the key's late events that are ready, oldest first; returns when those
        still waiting will be ready (the key's wake-up must cover them). In event time: a
        late event also waits for the older late events of its behavior and key, which
        may have come in a later request of its flush (the second view, arriving after the
        third and the fourth, makes the third the episode, not the fourth)."""
        if not st.raw.get("q"):
            return []
        ready: list[list[Any]] = []
        waits: list[int] = []
        until: dict[str, int] = {}  # behavior -> when it and all older ones are ready
        for e in sorted((e for e in st.deferred if e[3] == key), key=lambda e: (e[0], e[1])):
            until[e[2]] = max(until.get(e[2], 0), e[6])
            if until[e[2]] <= now:
                ready.append(e)
            else:
                waits.append(until[e[2]])
        if ready:
            done = {id(e) for e in ready}
            st.deferred = [e for e in st.deferred if id(e) not in done]
            self._decide_entries(ct, st, profile, ready, now, out)
        return waits

    def _decide_entries(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        entries: list[list[Any]],
        now: int,
        out: Decisions,
    ) -> None:
        """Decides late events in event time. One that completes nothing that counts (its
        episode not eligible, or its filters not holding) lets the later completions its
        arrival made go on to be decided, as each later event would have in real time
        (the fourth view of a product, seen before the late second view, completes the
        count once the third is not eligible)."""
        branches = {p.slot: (p, fs) for p, fs in ct.instant}
        for t, _, slot, key, name, props, _ in entries:
            if slot not in branches:
                continue  # the definition changed since
            pattern, filters = branches[slot]
            episodes = st.key(key).episodes
            ps = st.patterns.get(slot) or {}
            since = st.key(key).last_fire_ms
            waiting = [e[0] for e in st.deferred if e[2] == slot and e[3] == key]
            later = pattern.completions_after(ps, key, since, t)
            if waiting:  # those still waiting are decided when they are ready
                later = [x for x in later if x < min(waiting)]
            for at in [t, *later]:
                ev = Event.model_construct(
                    type="track",
                    message_id="",
                    event=name,
                    properties=props,
                    timestamp=from_ms(at),
                    received_at=from_ms(now),
                )
                self._decide_instant(
                    ct, st, profile, pattern, filters, ev, now, out, keys=[key], deferred=True
                )
                if st.key(key).episodes != episodes:
                    break

    def _recheck_waiting(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        live: list[Event],
        now: int,
        out: Decisions,
    ) -> None:
        """Instant episodes whose trait filters failed are decided again when an
        `identify` (or `group`) stamped within LATE_FLUSH_MS of them arrives, in whatever
        order and request; those older than that behind the newest event are dropped."""
        if not st.waiting:
            return
        ids = [to_ms(ev.timestamp) for ev in live if ev.type in ("identify", "group")]
        newest = max(to_ms(ev.timestamp) for ev in live)
        kept = []
        for item in st.waiting:
            at, key, name, props, product = item
            if not any(abs(t - at) <= LATE_FLUSH_MS for t in ids):
                if at >= newest - LATE_FLUSH_MS:
                    kept.append(item)
                continue
            for pattern, filters in ct.instant:
                m = Moment(profile, now, None, key, st.patterns, product)
                if filters_hold(filters, m):
                    context = event_context(name, props, product)
                    chk = Check(True, at=at, anchor=at, context=context, product=product)
                    self._fire(ct, st, profile, key, chk, out, now)
                    self._decided(st, pattern, m, at)
                    break
        st.waiting = kept

    @staticmethod
    def _exited(ct: CompiledTrigger, st: TriggerState, chk: Check) -> bool:
        """Whether one of the trigger's exit events falls after the episode's start and by
        its deadline (its `at`, or its `due` while pending)."""
        if ct.exit is None or not (chk.holds or chk.due is not None):
            return False
        end = chk.at if chk.holds else chk.due
        assert end is not None
        return ct.exit.cancels(st.patterns.get(ct.exit.slot) or {}, chk.anchor, end)

    @staticmethod
    def _decided(st: TriggerState, pattern: Pattern, m: Moment, anchor: int) -> None:
        ps = st.patterns.setdefault(pattern.slot, {})
        pattern.decided(ps, m, anchor)
        if not ps:
            del st.patterns[pattern.slot]

    # ---- durable behaviors -------------------------------------------------------------------
    def _settle(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        key: str,
        now: int,
        out: Decisions,
        *,
        inline: bool = False,
        hold: int = 0,
    ) -> None:
        """Evaluates the durable behaviors for a key now: fires, or records the deadline
        still ahead (`KeyState.deadline_ms`), or clears it when nothing is pending.
        `inline` (at events, not at a wake-up): an episode whose deadline has passed is
        not decided yet but at the wake-up after LATE_FLUSH_MS, so that the rest of a late
        flush (the order after the add) can still cancel it; nor one due before `hold`."""
        dues: list[int] = []
        if inline:
            dues += [e[6] for e in st.deferred if e[3] == key] if st.raw.get("q") else []
        else:
            dues += self._decide_deferred(ct, st, profile, key, now, out)
        for pattern, filters in ct.durable:
            ps = st.patterns.get(pattern.slot) or {}
            m = Moment(profile, now, None, key, st.patterns)
            chk = pattern.check(ps, m, st.key(key).last_fire_ms)
            m.product = chk.product
            if self._exited(ct, st, chk):
                chk = NO  # an exit event ended the episode in flight
            current = chk.anchor if (chk.holds or chk.due is not None) else None
            past = pattern.past(ps, m, current) if pattern.late else []
            past = [late for late in past if not self._exited(ct, st, late)]
            if inline and (chk.holds or past):
                dues.append(now + LATE_FLUSH_MS)
                continue
            if chk.holds:
                if filters_hold(filters, m) and self._eligible(ct, st.key(key), chk):
                    self._fire(ct, st, profile, key, chk, out, now)
                if pattern.late:
                    self._decided(st, pattern, m, chk.anchor)
                if pattern.recurring:  # the next moment (next year's birthday) is due next
                    chk = pattern.check(ps, m, st.key(key).last_fire_ms or chk.at)
                    if chk.due is not None and not self._exited(ct, st, chk):
                        dues.append(chk.due)
            elif chk.due is not None and filters_hold(filters, m):
                dues.append(max(chk.due, hold))
            for late in past:
                self._settle_late(ct, st, profile, filters, m, late)
                self._decided(st, pattern, m, late.anchor)
        if dues:
            st.key_for_update(key).deadline_ms = min(dues)
        else:
            st.key(key).deadline_ms = None

    def _settle_late(
        self,
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        filters: list[Pred],
        m: Moment,
        late: Check,
    ) -> None:
        """A past episode a late event revealed: counted when the filters (with the traits
        they read set by then) and the re-eligibility rule allow it, never sent (its state
        no longer holds: the cart it was about has changed since)."""
        m.product = late.product
        if any(int((profile.trait_at.get(n) or [0])[0]) > late.at for n in ct.filter_traits):
            return  # a trait its filters read was set after it: unknown whether they held
        if filters_hold(filters, m) and self._eligible_late(ct, st.key(m.key), late):
            self._fire(ct, st, profile, m.key, late, None, m.now)

    def _settle_due(
        self,
        states: dict[str, TriggerState],
        profile: Profile,
        now: int,
        out: Decisions,
        *,
        inline: bool = False,
        hold: int = 0,
    ) -> None:
        """Checks every deadline of the user that is due by now (a wake-up serves them all;
        a lost timer is caught up by the next event)."""
        for ct in self._triggers:
            st = states[ct.id]
            due = [k for k, d in st.deadlines() if d < now]
            if st.raw.get("q"):  # late events ready, also of a key evicted since
                due += sorted({e[3] for e in st.deferred if e[6] < now} - set(due))
            for key in due:
                self._settle(ct, st, profile, key, now, out, inline=inline, hold=hold)

    # ---- timers ---------------------------------------------------------------------------------
    def _schedule(self, states: dict[str, TriggerState], now: int, out: Decisions) -> None:
        """Keeps the user's earliest pending deadline covered by an armed timer at or
        before it. Later deadlines need none of their own: that timer's check wakes the
        user, settles what is due and arms for the next. So a user has about one
        timer at a time, and an event that only moves a deadline later costs no call."""
        earliest: tuple[int, int, str] | None = None
        armed: int | None = None
        for i, ct in enumerate(self._triggers):
            st = states[ct.id]
            for key, d, due in st.timing():
                if d is not None and (earliest is None or (d, i, key) < earliest):
                    earliest = (d, i, key)
                if due is not None:
                    if due + PASSED_TIMER_MS < now:
                        st.key(key).timer_due_ms = None  # it fired (or never came): covers nothing
                    elif armed is None or due < armed:
                        armed = due
        if earliest is None:
            self._forget_far_timers(states, now)
            return
        d, i, key = earliest
        due = timer_due(d)
        if armed is None or armed > due:
            ct = self._triggers[i]
            states[ct.id].key_for_update(key).timer_due_ms = due
            out.arm.append(Timer(ct.id, None if key == NONE_KEY else key, from_ms(due)))

    def _forget_far_timers(self, states: dict[str, TriggerState], now: int) -> None:
        """Nothing is pending: a timer still far ahead is forgotten (it will fire, find
        nothing due and change nothing), so that its key need not be kept for it and a
        new deadline before it arms a timer of its own."""
        for ct in self._triggers:
            st = states[ct.id]
            for key, _, due in st.timing():
                if due is not None and due - now > FORGET_TIMER_AHEAD_MS:
                    st.key(key).timer_due_ms = None

    # ---- episodes ---------------------------------------------------------------------------------
    @staticmethod
    def _eligible(ct: CompiledTrigger, ks: KeyState, chk: Check) -> bool:
        last = ks.last_fire_ms
        if last is not None and chk.anchor <= last:
            return False  # the same episode (or one older than the last fire)
        if ct.once and ks.episodes >= 1:
            return False
        return not (
            ct.once_per_ms is not None and last is not None and chk.at - last < ct.once_per_ms
        )

    @staticmethod
    def _eligible_late(ct: CompiledTrigger, ks: KeyState, chk: Check) -> bool:
        """Re-eligibility for an episode found late (already known not to be decided)."""
        last = ks.last_fire_ms
        if ct.once and ks.episodes >= 1:
            return False
        return not (
            ct.once_per_ms is not None and last is not None and abs(chk.at - last) < ct.once_per_ms
        )

    @staticmethod
    def _fire(
        ct: CompiledTrigger,
        st: TriggerState,
        profile: Profile,
        key: str,
        chk: Check,
        out: Decisions | None,
        now: int,
    ) -> None:
        """Counts the episode and sends it (into `out`) unless `out` is None (a past
        episode) or its moment is more than the trigger's `lateness` behind now (it is
        decided now, so now is the moment from which the message would go out)."""
        episode = st.count_fire(key, chk.at)
        variant = None
        if ct.experiment is not None:
            variant = variant_named(ct.experiment, st.variant)
            if variant is None:  # drawn at the first episode, kept for good
                variant = draw(ct.experiment, profile.user_id)
                st.variant = variant.name
        if out is None or chk.at < now - ct.lateness_ms:
            return
        k = None if key == NONE_KEY else key
        action, experiment = dict(ct.action), None
        if ct.experiment is not None and variant is not None:
            action, experiment = apply_variant(action, variant), exposure(ct.experiment, variant)
        out.fires.append(
            Fire(
                trigger_id=ct.id,
                key=k,
                at=from_ms(chk.at),
                episode=episode,
                action_id=action_id(profile.user_id, ct.id, k, episode),
                action=action,
                priority=ct.priority,
                cooldown_seconds=ct.cooldown_seconds,
                context=chk.context,
                experiment=experiment,
            )
        )
