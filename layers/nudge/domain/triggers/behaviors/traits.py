"""Behaviors read from traits: a trait that changes (`trait_change`, instant, at the
`identify` that changes it) and a moment a trait names (`date`, durable: a deadline read
from the profile's traits, every year for `annual`)."""

from __future__ import annotations

import calendar
from bisect import insort
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nudge.domain.clock import iso, to_ms
from nudge.domain.events import Event
from nudge.domain.fatigue import zone_of
from nudge.domain.triggers.behaviors.base import NO, RETAIN_MS, Check, Moment, Pattern
from nudge.domain.triggers.contract import NONE_KEY
from nudge.domain.triggers.model import DateCondition, TraitChangeCondition
from nudge.domain.triggers.values import MISSING, ValuePred, compile_filter

MAX_CHANGES = 4  # changes kept, newest first out last
VALUE_TEXT = 200  # a trait value kept in state is cut to this many characters


def _kept(value: Any) -> Any:
    """A trait value as the state keeps it: scalars (text cut), else None."""
    if isinstance(value, str):
        return value[:VALUE_TEXT]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return None


class TraitChangePattern(Pattern):
    """State: {"": {"v": value, "t": ms of the identify that set it, "c": [[ms, from, to],
    ...]}}: the newest value in event time and the newest MAX_CHANGES changes. An identify
    older than the newest value changes nothing (it is history). A value set before the
    trigger existed is not known: the first identify seen sets the baseline."""

    def __init__(self, node: TraitChangeCondition) -> None:
        super().__init__(node)
        spec = node.trait_change
        self.trait = spec.trait
        self.from_: ValuePred | None = None if spec.from_ is None else compile_filter(spec.from_)
        self.to: ValuePred | None = None if spec.to is None else compile_filter(spec.to)
        self.horizon_ms = 0

    def matches(self, ev: Event) -> bool:
        return ev.type == "identify" and self.trait in ev.traits

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        if not self.matches(ev):
            return False
        value = _kept(ev.traits[self.trait])
        entry = ps.setdefault(NONE_KEY, {})
        if "t" in entry and t <= entry["t"]:
            return True
        if "t" in entry and entry.get("v") != value:
            changes = entry.setdefault("c", [])
            insort(changes, [t, entry.get("v"), value], key=lambda c: c[0])
            del changes[: max(0, len(changes) - MAX_CHANGES)]
        entry["v"], entry["t"] = value, t
        return True

    def prune(self, ps: dict[str, Any], ref: int, held: int | None = None) -> None:
        entry = ps.get(NONE_KEY) or {}
        kept = [c for c in entry.get("c") or [] if c[0] >= ref - RETAIN_MS]
        if kept:
            entry["c"] = kept
        else:
            entry.pop("c", None)

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        ev = m.event
        if ev is None or not self.matches(ev):
            return NO
        t = to_ms(ev.timestamp)
        if since is not None and t <= since:
            return NO
        for at, old, new in (ps.get(NONE_KEY) or {}).get("c") or []:
            if at == t and self._wanted(old, new):
                context = {"event": "identify", "trait": self.trait, "from": old, "to": new}
                return Check(True, at=t, anchor=t, context=context)
        return NO

    def _wanted(self, old: Any, new: Any) -> bool:
        return (self.from_ is None or self.from_(MISSING if old is None else old)) and (
            self.to is None or self.to(MISSING if new is None else new)
        )


def read_moment(value: Any, tz: str | None, spec_at: Any) -> tuple[datetime, bool] | None:
    """A trait value as an instant: an ISO date-time (with its offset, UTC without), or
    an ISO date at `spec_at` local time in `tz`; the flag says it was a plain date."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            local = datetime.combine(day, spec_at).replace(tzinfo=zone_of(tz))
            return local.astimezone(UTC), True
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC), False


def _same_day_in(year: int, moment: datetime, tz: str | None, plain: bool) -> datetime:
    """The moment's month, day and time of day in another year (29 February: the 28th)."""
    zone = zone_of(tz) if plain else UTC
    local = moment.astimezone(zone)
    day = min(local.day, calendar.monthrange(year, local.month)[1])
    return local.replace(year=year, day=day).astimezone(UTC)


class DatePattern(Pattern):
    """A deadline read from a trait: the trait's moment, `before` earlier or `after`
    later; `annual`: that moment every year. No state: the profile's traits and the
    trait's `trait_at` (when it was set) are read at each check. A moment that passed
    before the trait was set is no episode; each moment is one (anchored at itself)."""

    instant = False

    def __init__(self, node: DateCondition) -> None:
        super().__init__(node)
        spec = node.date
        self.trait = spec.trait
        self.shift = timedelta(seconds=spec.after - spec.before)
        self.at = spec.at
        self.annual = self.recurring = spec.annual
        self.horizon_ms = 0

    def relevant(self, ev: Event) -> bool:
        return ev.type == "identify"

    def _moments(self, m: Moment) -> list[int]:
        traits = m.profile.traits
        read = read_moment(traits.get(self.trait), _tz(traits), self.at)
        if read is None:
            return []
        moment, plain = read
        if not self.annual:
            return [to_ms(moment + self.shift)]
        year = datetime.fromtimestamp(m.now / 1000, UTC).year
        return [
            to_ms(_same_day_in(y, moment, _tz(traits), plain) + self.shift)
            for y in (year - 1, year, year + 1)
        ]

    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        if m.key != NONE_KEY:
            return NO
        set_at = int((m.profile.trait_at.get(self.trait) or [0])[0])
        for moment in self._moments(m):
            if moment < set_at or (since is not None and moment <= since):
                continue  # before the trait said so, or already decided
            if moment > m.now:
                return Check(False, due=moment, anchor=moment)
            context = {
                "event": None,
                "trait": self.trait,
                "date": iso(datetime.fromtimestamp(moment / 1000, UTC)),
            }
            return Check(True, at=moment, anchor=moment, context=context)
        return NO


def _tz(traits: dict[str, Any]) -> str | None:
    tz = traits.get("timezone")
    return tz if isinstance(tz, str) else None
