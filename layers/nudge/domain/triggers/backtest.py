"""Backtest: historical events through the same engine, with a simulated clock, an
in-memory profile store and an in-memory scheduler. Nothing is sent.

`Simulation` is the live path in miniature (fold, on_events, arm; timers firing in
deadline order into on_timer, deleted once fired as ActionAfterCompletion=DELETE does);
`backtest` replays events through it in event-time order and reports per trigger who
would have fired, when, how often, and how often a cooldown or the default caps would
have stopped the message.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nudge.domain.clock import iso, to_ms
from nudge.domain.events import Event
from nudge.domain.profile import Profile
from nudge.domain.triggers.engine import Decisions, Engine, Fire, Timer
from nudge.domain.triggers.loader import TriggerSet

# SPEC §5 default caps, for the "would caps have cut in" estimate (config/fatigue.yaml
# may set others; quiet hours defer rather than drop, so they are not counted).
CAP_WINDOW_S = 24 * 3600
CAP_ALL_CHANNELS = 3
CAP_EMAIL = 1


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


class Simulation:
    """Users' profiles, the armed timers and a clock, driven by hand or by `backtest`."""

    def __init__(self, triggers: TriggerSet | Engine) -> None:
        self.engine = triggers if isinstance(triggers, Engine) else Engine(triggers)
        self.profiles: dict[str, Profile] = {}
        self.timers: dict[tuple[str, str], Timer] = {}  # (user, name) -> the current schedule
        self._queue: list[tuple[datetime, int, str, str]] = []
        self._seq = 0
        self.fires: list[FireRecord] = []
        self.arms = 0
        self.disarms = 0
        self.events = 0

    @property
    def scheduler_calls(self) -> int:
        return self.arms + self.disarms

    def profile(self, user_id: str) -> Profile:
        p = self.profiles.get(user_id)
        if p is None:
            p = self.profiles[user_id] = Profile(user_id=user_id)
        return p

    def deliver(self, events: Iterable[Event], now: datetime) -> list[FireRecord]:
        """The process function: timers due before `now` fire first, then each user's
        events are folded and evaluated as one batch."""
        self.advance(now, inclusive=False)
        by_user: dict[str, list[Event]] = defaultdict(list)
        for ev in events:
            by_user[ev.profile_id].append(ev)
        out: list[FireRecord] = []
        for user_id, batch in by_user.items():
            self.events += len(batch)
            profile = self.profile(user_id)
            fresh = profile.apply(batch)
            if fresh:
                out.extend(self._apply(user_id, self.engine.on_events(profile, fresh, now)))
        return out

    def advance(self, until: datetime, *, inclusive: bool = True) -> list[FireRecord]:
        """Fires the timers due up to `until` in deadline order, each at its due time."""
        out: list[FireRecord] = []
        while self._queue:
            due, _, user_id, name = self._queue[0]
            if due > until or (due == until and not inclusive):
                break
            heapq.heappop(self._queue)
            timer = self.timers.get((user_id, name))
            if timer is None or timer.due != due:
                continue  # replaced or deleted since
            del self.timers[(user_id, name)]  # ActionAfterCompletion=DELETE
            decisions = self.engine.on_timer(
                self.profile(user_id), timer.trigger_id, timer.key, due
            )
            out.extend(self._apply(user_id, decisions))
        return out

    def _apply(self, user_id: str, decisions: Decisions) -> list[FireRecord]:
        for name in decisions.disarm:
            self.disarms += 1
            self.timers.pop((user_id, name), None)
        for timer in decisions.arm:
            self.arms += 1
            self.timers[(user_id, timer.name)] = timer
            self._seq += 1
            heapq.heappush(self._queue, (timer.due, self._seq, user_id, timer.name))
        records = [FireRecord(user_id, f) for f in decisions.fires]
        self.fires.extend(records)
        return records


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

    @property
    def would_send(self) -> int:
        return self.fires - self.cooldown_suppressed - self.cap_suppressed

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
            "would_send": self.would_send,
        }


@dataclass
class BacktestReport:
    events: int
    users: int
    start: datetime | None
    end: datetime | None
    triggers: list[TriggerReport]
    fires: list[FireRecord]
    scheduler_calls: int = 0

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
            "scheduler_calls": self.scheduler_calls,
            "triggers": [t.to_dict() for t in self.triggers],
        }
        if with_fires:
            out["fires"] = [f.to_dict() for f in self.fires]
        return out

    def table(self) -> str:
        head = (
            "trigger",
            "users",
            "fires",
            "max/user",
            "first fire",
            "last fire",
            "cooldown",
            "caps",
            "send",
        )
        rows = [
            (
                t.trigger_id,
                str(t.users_fired),
                str(t.fires),
                str(t.max_fires_per_user),
                iso(t.first_fire) or "-",
                iso(t.last_fire) or "-",
                str(t.cooldown_suppressed),
                str(t.cap_suppressed),
                str(t.would_send),
            )
            for t in self.triggers
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.ljust(w) if i in (0, 4, 5) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        span = f"{iso(self.start)} .. {iso(self.end)}" if self.start else "no events"
        lines = [
            f"{self.events} events, {self.users} users, {span}",
            "",
            line(head),
            line(tuple("-" * w for w in widths)),
        ]
        lines += [line(r) for r in rows]
        lines += [
            "",
            "cooldown: fires within the trigger's cooldown of its previous message to the user;",
            f"caps: fires over the default caps ({CAP_ALL_CHANNELS} messages / 24 h, {CAP_EMAIL} email / 24 h);",
            "send: what would have gone out (quiet hours defer, they do not drop).",
        ]
        return "\n".join(lines)


def _suppression(
    records: list[FireRecord], cooldowns: dict[str, int]
) -> tuple[Counter[str], Counter[str]]:
    """Per trigger: fires a cooldown would have stopped, fires the caps would have stopped.
    A user's fires go in time order (then priority): a suppressed fire does not restart
    the cooldown, as no message went out."""
    cooled: Counter[str] = Counter()
    capped: Counter[str] = Counter()
    by_user: dict[str, list[Fire]] = defaultdict(list)
    for r in records:
        by_user[r.user_id].append(r.fire)
    for fires in by_user.values():
        fires.sort(key=lambda f: (f.at, -f.priority, f.trigger_id))
        last_sent: dict[str, datetime] = {}
        sent: list[tuple[datetime, str]] = []
        for f in fires:
            prev = last_sent.get(f.trigger_id)
            if prev is not None and (f.at - prev).total_seconds() < cooldowns.get(f.trigger_id, 0):
                cooled[f.trigger_id] += 1
                continue
            window = f.at - timedelta(seconds=CAP_WINDOW_S)
            recent = [c for t, c in sent if t > window]
            channel = str(f.action.get("channel"))
            if len(recent) >= CAP_ALL_CHANNELS or (
                channel == "email" and recent.count("email") >= CAP_EMAIL
            ):
                capped[f.trigger_id] += 1
                continue
            last_sent[f.trigger_id] = f.at
            sent.append((f.at, channel))
    return cooled, capped


def report(
    records: list[FireRecord],
    triggers: TriggerSet,
    *,
    events: int,
    users: int,
    start: datetime | None,
    end: datetime | None,
) -> BacktestReport:
    cooldowns = {t.id: t.cooldown_seconds for t in triggers}
    cooled, capped = _suppression(records, cooldowns)
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
        out.append(rep)
    ordered = sorted(records, key=lambda r: (r.fire.at, r.user_id, r.fire.trigger_id))
    return BacktestReport(events, users, start, end, out, ordered)


def backtest(
    events: Iterable[Event], triggers: TriggerSet, trigger_id: str | None = None
) -> BacktestReport:
    """Replays events (in any order: they are sorted by event time) through the engine.
    Before each event the timers due before it fire, at their due time; after the last
    event, those due within the longest threshold of it."""
    chosen = triggers.only(trigger_id) if trigger_id is not None else triggers
    sim = Simulation(chosen)
    ordered = sorted(events, key=lambda ev: (to_ms(ev.timestamp), ev.fingerprint))
    for ev in ordered:
        sim.deliver([ev], ev.timestamp)
    start = ordered[0].timestamp if ordered else None
    end = ordered[-1].timestamp if ordered else None
    if end is not None:
        # a timer is due in the whole second after its deadline
        sim.advance(end + timedelta(seconds=sim.engine.horizon + 1))
    rep = report(
        sim.fires, chosen, events=sim.events, users=len(sim.profiles), start=start, end=end
    )
    rep.scheduler_calls = sim.scheduler_calls
    return rep
