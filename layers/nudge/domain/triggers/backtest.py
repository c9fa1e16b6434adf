"""Backtest: historical events through the production processing path, with a simulated
clock, in-memory stores and an in-memory scheduler. Nothing is sent.

`Simulation` is the live path in miniature and runs the same code: `process_users`
(dedup, identity merges, the fold, the trigger engine, one commit per user) with an
in-memory profile store; timers go into wake-up buckets exactly as the live wake-up
index files them (`bucket_of`: the deadline rounded up to the minute, never a bucket
about to be swept), and each bucket is swept at its minute, its timers re-checked through
`process_users` as the check and process functions do. `backtest` replays events in
the order they were received (the archive's `received_at`; a file's events at their own
timestamps) and reports per trigger who would have fired, when, how often, and how
often the fatigue rules of `config/fatigue.yaml` (cooldowns, caps, priority, the global
control group) would have stopped the message.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from nudge.domain.clock import iso, to_ms
from nudge.domain.events import Event
from nudge.domain.fatigue import (
    Candidate,
    Channel,
    FatigueConfig,
    SendWindow,
    Sent,
    UserPrefs,
    decide,
    holdout_of,
)
from nudge.domain.ports import StoredProfile
from nudge.domain.processing import TimerDue, process_users
from nudge.domain.profile import Profile
from nudge.domain.triggers.contract import Decisions, Fire, Timer
from nudge.domain.triggers.engine import Engine
from nudge.domain.triggers.loader import TriggerSet
from nudge.domain.wakeups import bucket_of


@dataclass(frozen=True)
class FireRecord:
    user_id: str
    fire: Fire

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "trigger_id": self.fire.trigger_id,
            "key": self.fire.key,
            "episode": self.fire.episode,
            "at": iso(self.fire.at),
            "action_id": self.fire.action_id,
            "channel": self.fire.action.get("channel"),
        }


class MemoryProfileStore:
    """The ProfileStore port in memory for the backtest: the profiles themselves, each
    save conditional on the version read, as the DynamoDB adapter's."""

    def __init__(self) -> None:
        self.profiles: dict[str, Profile] = {}
        self._versions: dict[str, int] = {}
        self.dedup: dict[tuple[str, str], int] = {}  # (user, fingerprint) -> minute (D42)

    def get(self, user_id: str) -> StoredProfile | None:
        p = self.profiles.get(user_id)
        return None if p is None else StoredProfile(p, self._versions.get(user_id))

    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]:
        return {u: s for u in user_ids if (s := self.get(u)) is not None}

    def save(self, stored: StoredProfile) -> None:
        uid = stored.profile.user_id
        for fp, minute in stored.profile.evicted.items():
            self.dedup[(uid, fp)] = minute
        stored.profile.evicted.clear()
        self.profiles[uid] = stored.profile
        stored.version = self._versions[uid] = self._versions.get(uid, 0) + 1

    def save_all(self, stored: Sequence[StoredProfile]) -> None:
        for s in stored:
            self.save(s)

    def spilled(self, user_ids: Sequence[str], fingerprints: Collection[str]) -> dict[str, int]:
        return {
            fp: self.dedup[(uid, fp)]
            for uid in user_ids
            for fp in fingerprints
            if (uid, fp) in self.dedup
        }

    def delete(self, user_id: str) -> None:
        self.profiles.pop(user_id, None)
        self._versions.pop(user_id, None)


class Simulation:
    """Users' profiles, the wake-up buckets and a clock, driven by hand or by `backtest`.
    It is also the processing path's `Effects`: fires are recorded, timers filed."""

    def __init__(self, triggers: TriggerSet | Engine) -> None:
        self.engine = triggers if isinstance(triggers, Engine) else Engine(triggers)
        self.store = MemoryProfileStore()
        self.profiles = self.store.profiles
        # (user, trigger, key) -> the latest armed: as the wake-up index keys its items
        self.timers: dict[tuple[str, str, str | None], Timer] = {}
        self._buckets: dict[datetime, dict[tuple[str, str, str | None], Timer]] = {}
        self._queue: list[datetime] = []  # bucket minutes, a heap
        self._now: datetime | None = None
        self.fires: list[FireRecord] = []
        self.arms = 0  # timers filed in the wake-up index
        self.wake_up_minutes = 0  # buckets filed: the minutes whose sweep has timers (D49)
        self.events = 0

    def profile(self, user_id: str) -> Profile:
        p = self.profiles.get(user_id)
        if p is None:
            p = self.profiles[user_id] = Profile(user_id=user_id)
        return p

    def deliver(self, events: Iterable[Event], now: datetime) -> list[FireRecord]:
        """The process function: buckets due by `now` are swept first (as local mode's
        clock sweeps the minutes up to the time it moves to before the events sent then),
        then the events are processed as one batch (each user's folded together)."""
        self.advance(now)
        by_user: dict[str, list[Event]] = defaultdict(list)
        for ev in events:
            by_user[ev.profile_id].append(ev)
            self.events += 1
        return self._process(dict(by_user), {}, now)

    def advance(self, until: datetime, *, inclusive: bool = True) -> list[FireRecord]:
        """Fires the wake-up buckets due up to `until` in order, each at its minute."""
        out: list[FireRecord] = []
        while self._queue:
            at = self._queue[0]
            if at > until or (at == until and not inclusive):
                break
            heapq.heappop(self._queue)
            timers = self._buckets.pop(at, {})  # swept once, at its minute
            by_user: dict[str, list[TimerDue]] = defaultdict(list)
            for ref, timer in sorted(timers.items(), key=lambda kv: str(kv[0])):
                user_id = ref[0]
                by_user[user_id].append(TimerDue(user_id, timer.trigger_id, timer.key))
                if self.timers.get(ref) is timer:
                    del self.timers[ref]
            out.extend(self._process({}, dict(by_user), at))
        return out

    def _process(
        self,
        events: dict[str, list[Event]],
        timers: dict[str, list[TimerDue]],
        now: datetime,
    ) -> list[FireRecord]:
        before = len(self.fires)
        self._now = now
        outcome = process_users(
            self.store, events, now=now, engine=self.engine, effects=self, timers_by_user=timers
        )
        if outcome.failed_users:  # in memory nothing is transient: a bug, say so
            raise next(iter(outcome.failed_users.values()))
        return self.fires[before:]

    def apply(self, user_id: str, decisions: Decisions) -> None:
        """Effects of the processing path: as TriggerEffects does live, minus the I/O."""
        now = self._now
        assert now is not None
        for timer in decisions.arm:
            self.arms += 1
            bucket = bucket_of(timer.due, now)
            if bucket not in self._buckets:
                self._buckets[bucket] = {}
                heapq.heappush(self._queue, bucket)
                self.wake_up_minutes += 1
            ref = (user_id, timer.trigger_id, timer.key)
            self._buckets[bucket][ref] = timer
            self.timers[ref] = timer
        self.fires.extend(FireRecord(user_id, f) for f in decisions.fires)


# ---- the report ---------------------------------------------------------------------------
@dataclass
class TriggerReport:
    trigger_id: str
    users_fired: int = 0
    fires: int = 0
    first_fire: datetime | None = None
    last_fire: datetime | None = None
    fires_per_user: dict[int, int] = field(default_factory=dict)  # n fires -> users
    max_fires_per_user: int = 0
    cooldown_suppressed: int = 0
    cap_suppressed: int = 0
    holdout: int = 0  # the global control group (config/fatigue.yaml)
    deferred: int = 0  # quiet hours or the send window: sent later, counted in would_send
    episodes: int = 0  # counted (the profiles' `fired`), `fires` plus the unsent ones

    @property
    def unsent(self) -> int:
        """Episodes counted without a message: past the trigger's lateness when decided, or
        revealed in the past by late events (docs/triggers.md)."""
        return max(0, self.episodes - self.fires)

    @property
    def would_send(self) -> int:
        return self.fires - self.cooldown_suppressed - self.cap_suppressed - self.holdout

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "users_fired": self.users_fired,
            "fires": self.fires,
            "first_fire": iso(self.first_fire),
            "last_fire": iso(self.last_fire),
            "fires_per_user": {str(k): v for k, v in sorted(self.fires_per_user.items())},
            "max_fires_per_user": self.max_fires_per_user,
            "mean_fires_per_user": round(self.fires / self.users_fired, 3)
            if self.users_fired
            else 0.0,
            "cooldown_suppressed": self.cooldown_suppressed,
            "cap_suppressed": self.cap_suppressed,
            "holdout": self.holdout,
            "deferred": self.deferred,
            "would_send": self.would_send,
            "episodes": self.episodes,
            "unsent": self.unsent,
        }


TABLE_COLUMNS = (
    "trigger",
    "users",
    "episodes",
    "fires",
    "max/user",
    "first fire",
    "last fire",
    "cooldown",
    "caps",
    "send",
)  # the backtest report's table, as `nudge triggers backtest` prints it


@dataclass
class BacktestReport:
    events: int
    users: int
    start: datetime | None
    end: datetime | None
    triggers: list[TriggerReport]
    fires: list[FireRecord]
    wake_up_minutes: int = 0  # minutes whose wake-up sweep had timers to check

    def trigger(self, trigger_id: str) -> TriggerReport:
        for t in self.triggers:
            if t.trigger_id == trigger_id:
                return t
        raise KeyError(trigger_id)

    def to_dict(self, *, with_fires: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events": self.events,
            "users": self.users,
            "start": iso(self.start),
            "end": iso(self.end),
            "wake_up_minutes": self.wake_up_minutes,
            "triggers": [t.to_dict() for t in self.triggers],
        }
        if with_fires:
            out["fires"] = [f.to_dict() for f in self.fires]
        return out

    def rows(self, when: Callable[[datetime | None], str] | None = None) -> list[tuple[str, ...]]:
        """One row a trigger, cells as TABLE_COLUMNS name them; `when` formats the fire
        times (ISO-8601 by default)."""
        fmt = when or (lambda at: iso(at) or "-")
        return [
            (
                t.trigger_id,
                str(t.users_fired),
                str(t.episodes),
                str(t.fires),
                str(t.max_fires_per_user),
                fmt(t.first_fire),
                fmt(t.last_fire),
                str(t.cooldown_suppressed),
                str(t.cap_suppressed),
                str(t.would_send),
            )
            for t in self.triggers
        ]

    def summary(self) -> str:
        span = f"{iso(self.start)} .. {iso(self.end)}" if self.start else "no events"
        return f"{self.events} events, {self.users} users, {span}"

    def table(self) -> str:
        head = TABLE_COLUMNS
        rows = self.rows()
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.ljust(w) if i in (0, 5, 6) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        lines = [
            self.summary(),
            "",
            line(head),
            line(tuple("-" * w for w in widths)),
        ]
        lines += [line(r) for r in rows]
        lines += [
            "",
            "episodes: times a condition was met; fires: those with a message (an episode",
            "decided past the trigger's lateness, or found in the past, counts without one);",
            "cooldown: fires within the trigger's cooldown of its previous message to the user;",
            "caps: fires over the caps of the fatigue config (or losing a last slot to priority);",
            "send: what would have gone out (quiet hours defer, they do not drop; the",
            "control group receives nothing).",
        ]
        return "\n".join(lines)


def _suppression(
    records: list[FireRecord],
    config: FatigueConfig,
    timezones: dict[str, str | None],
) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    """Per trigger: fires the fatigue guard (the deliver function's rules and config)
    would have stopped by a cooldown, by a cap (or the priority rule), held out in the
    global control group, and deferred by quiet hours (sent later: counted as sent at
    the time they become allowed). Each user's fires go in time order, then priority; a
    stopped fire takes no slot. Opt-outs and suppressions are today's state, not the
    past's, so they are not replayed."""
    cooled: Counter[str] = Counter()
    capped: Counter[str] = Counter()
    held: Counter[str] = Counter()
    deferred: Counter[str] = Counter()
    by_user: dict[str, list[Fire]] = defaultdict(list)
    for r in records:
        by_user[r.user_id].append(r.fire)
    for user_id, fires in by_user.items():
        fires.sort(key=lambda f: (f.at, -f.priority, f.trigger_id))
        prefs = UserPrefs(timezone=timezones.get(user_id))
        history: list[Sent] = []
        candidates = [
            Candidate(
                action_id=f.action_id,
                user_id=user_id,
                trigger_id=f.trigger_id,
                channel=cast(Channel, str(f.action.get("channel"))),
                priority=f.priority,
                cooldown_seconds=f.cooldown_seconds,
                fired_at=f.at,
                window=SendWindow.from_action(f.action.get("send_window")),
                holdout=holdout_of(f.experiment),
            )
            for f in fires
        ]
        for i, cand in enumerate(candidates):
            verdict = decide(
                cand,
                history=history,
                prefs=prefs,
                now=cand.fired_at,
                config=config,
                competing=candidates[i + 1 :],
            )
            if verdict.status == "capped":
                (cooled if verdict.reason == "cooldown" else capped)[cand.trigger_id] += 1
            elif verdict.status == "holdout":
                held[cand.trigger_id] += 1
            else:
                at = cand.fired_at
                if verdict.status == "deferred" and verdict.defer_until is not None:
                    deferred[cand.trigger_id] += 1
                    at = verdict.defer_until
                history.append(Sent(at, cand.channel, cand.trigger_id, cand.priority))
    return cooled, capped, held, deferred


def report(
    records: list[FireRecord],
    triggers: TriggerSet,
    *,
    events: int,
    users: int,
    start: datetime | None,
    end: datetime | None,
    fatigue: FatigueConfig | None = None,
    timezones: dict[str, str | None] | None = None,
) -> BacktestReport:
    config = fatigue or FatigueConfig.default()
    cooled, capped, held, deferred = _suppression(records, config, timezones or {})
    out = []
    for t in triggers:
        mine = [r for r in records if r.fire.trigger_id == t.id]
        per_user = Counter(r.user_id for r in mine)
        rep = TriggerReport(t.id, users_fired=len(per_user), fires=len(mine))
        if mine:
            rep.first_fire = min(r.fire.at for r in mine)
            rep.last_fire = max(r.fire.at for r in mine)
            rep.fires_per_user = dict(Counter(per_user.values()))
            rep.max_fires_per_user = max(per_user.values())
        rep.cooldown_suppressed = cooled[t.id]
        rep.cap_suppressed = capped[t.id]
        rep.holdout = held[t.id]
        rep.deferred = deferred[t.id]
        out.append(rep)
    ordered = sorted(records, key=lambda r: (r.fire.at, r.user_id, r.fire.trigger_id))
    return BacktestReport(events, users, start, end, out, ordered)


def backtest(
    events: Iterable[Event],
    triggers: TriggerSet,
    trigger_id: str | None = None,
    *,
    fatigue: FatigueConfig | None = None,
    on_delivered: Callable[[int], None] | None = None,
) -> BacktestReport:
    """Replays events (in any order) as they were received: sorted by `received_at`
    (then event time), the events received at the same moment delivered as one batch,
    the wake-up buckets due in between firing first; after the last event, the buckets
    due within the longest threshold of it (plus the minute rounding). `on_delivered`
    is told how many events each batch held, once it is processed (a progress bar)."""
    chosen = triggers.only(trigger_id) if trigger_id is not None else triggers
    sim = Simulation(chosen)
    ordered = sorted(
        events, key=lambda ev: (to_ms(ev.received_at), to_ms(ev.timestamp), ev.fingerprint)
    )
    i = 0
    while i < len(ordered):
        j = i + 1
        while j < len(ordered) and ordered[j].received_at == ordered[i].received_at:
            j += 1
        sim.deliver(ordered[i:j], ordered[i].received_at)
        if on_delivered is not None:
            on_delivered(j - i)
        i = j
    start = min((ev.timestamp for ev in ordered), default=None)
    end = max((ev.received_at for ev in ordered), default=None)
    if end is not None:
        sim.advance(end + timedelta(seconds=sim.engine.horizon + 120))
    timezones = {
        uid: (p.traits.get("timezone") if isinstance(p.traits.get("timezone"), str) else None)
        for uid, p in sim.profiles.items()
    }
    rep = report(
        sim.fires,
        chosen,
        events=sim.events,
        users=sum(1 for p in sim.profiles.values() if not p.merged_into),
        start=start,
        end=end,
        fatigue=fatigue,
        timezones=timezones,
    )
    rep.wake_up_minutes = sim.wake_up_minutes
    for t in rep.triggers:
        t.episodes = sum(
            int((p.triggers.get(t.trigger_id) or {}).get("fired", 0))
            for p in sim.profiles.values()
            if not p.merged_into
        )
    return rep
