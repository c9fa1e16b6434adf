"""The fatigue guard (docs/delivery.md): decides whether one action may reach its user now.

Pure: no I/O besides reading `config/fatigue.yaml`, no clock. The caller passes the
user's past sends (their delivery log), their preferences and the current time, and
gets a `Verdict`. The rules apply in this order and the first that says no wins:

1. global control group (a stable hash of the user id)  -> holdout   control_group
2. opt-out of the channel (or of everything)            -> opted_out opted_out:<channel>
3. suppressed address (bounce or complaint)             -> suppressed suppressed:<channel>
4. cooldown: the same trigger sent within its cooldown  -> capped    cooldown
5. caps over sliding windows (global, channel, trigger) -> capped    cap:<scope>[:<name>]:<limit>/<window>
6. quiet hours in the user's time zone                  -> deferred  quiet_hours (defer_until)
7. the trigger's send window (days and hours, the
   user's time zone), every channel                     -> deferred  send_window (defer_until)
8. priority: the last slot of a cap goes to a
   higher-priority competitor fired close by            -> capped    priority

A `deferred` verdict reserves nothing: call `decide` again when the action comes due.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from nudge.domain.channels import ALL_CHANNELS
from nudge.domain.channels import Channel as Channel  # re-exported: the backtest imports it here
from nudge.domain.clock import utc
from nudge.domain.triggers.durations import parse_duration

Status = Literal["send", "deferred", "capped", "opted_out", "suppressed", "holdout"]

MINUTE = timedelta(minutes=1)
_CONTROL_SALT = b"nudge:control-group:"  # changing it reshuffles who is held out
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class FatigueConfigError(ValueError):
    """`config/fatigue.yaml` cannot be read as a fatigue configuration."""


# ---- configuration ------------------------------------------------------------------------------
def _duration_text(value: Any) -> str:
    parse_duration(value)  # raises DurationError (a ValueError) naming the accepted forms
    return str(value).strip()


def _positive_duration_text(value: Any) -> str:
    text = _duration_text(value)
    if parse_duration(text) <= 0:
        raise ValueError(f"a window of {value!r} holds nothing; use more than 0")
    return text


def _clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            "write the time in quotes, e.g. '21:00' (unquoted, YAML reads 21:00 as a number)"
        )
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"bad time {value!r}: write HH:MM on a 24-hour clock, e.g. '21:00'")
    return time(int(match.group(1)), int(match.group(2)))


# Durations keep their spelling (`24h`) so that reasons read as the config does.
DurationText = Annotated[str, BeforeValidator(_duration_text)]
WindowText = Annotated[str, BeforeValidator(_positive_duration_text)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cap(_Strict):
    """At most `limit` messages in any `window`, counted over every channel (`global`),
    over one channel (`channel`) or over one trigger's messages (`trigger`)."""

    scope: Literal["global", "channel", "trigger"]
    channel: Channel | None = None
    trigger: str | None = None
    limit: int = Field(ge=0)
    window: WindowText

    @model_validator(mode="after")
    def _named_as_its_scope(self) -> Self:
        wants = {"global": None, "channel": "channel", "trigger": "trigger"}[self.scope]
        for name in ("channel", "trigger"):
            given = getattr(self, name) is not None
            if given and name != wants:
                raise ValueError(f"`{name}` does not apply to a {self.scope} cap")
            if not given and name == wants:
                raise ValueError(f"a {self.scope} cap needs `{name}`")
        return self

    @property
    def window_seconds(self) -> int:
        return parse_duration(self.window)

    @property
    def rule(self) -> str:
        """The reason a capped action logs: `cap:global:3/24h`, `cap:channel:email:1/24h`."""
        name = {"global": None, "channel": self.channel, "trigger": self.trigger}[self.scope]
        scope = self.scope if name is None else f"{self.scope}:{name}"
        return f"cap:{scope}:{self.limit}/{self.window}"

    def counts(self, channel: str, trigger_id: str) -> bool:
        """Whether a message on `channel` from `trigger_id` uses this cap."""
        if self.scope == "channel":
            return channel == self.channel
        if self.scope == "trigger":
            return trigger_id == self.trigger
        return True


class Cooldown(_Strict):
    """No second message from a trigger within its cooldown. The trigger's own
    `cooldown` (carried by its action message) wins over both values here."""

    default: DurationText = "24h"
    triggers: dict[str, DurationText] = Field(default_factory=dict)

    def seconds_for(self, trigger_id: str) -> int:
        return parse_duration(self.triggers.get(trigger_id, self.default))


class QuietHours(_Strict):
    """Local times in the user's time zone when messages on `channels` wait. The stretch
    is [start, end) and may cross midnight (21:00-08:00). In-app is never deferred.
    An empty `channels` list turns quiet hours off."""

    start: ClockTime = time(21, 0)
    end: ClockTime = time(8, 0)
    channels: tuple[Channel, ...] = ("email", "sms", "push")

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        if self.start == self.end:
            raise ValueError("`start` and `end` are equal: the quiet stretch would be empty")
        if "inapp" in self.channels:
            raise ValueError("in-app messages are never deferred: remove `inapp` from `channels`")
        return self

    def covers(self, local: time) -> bool:
        """Whether a local wall-clock time falls in the quiet stretch."""
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SendWindow(_Strict):
    """A trigger's allowed sending times in the user's time zone: `days` of the week and
    the local stretch [start, end) of each (it may cross midnight, as 20:00-02:00: then
    it opens on `days` and runs into the next morning). A message outside it waits for
    the next opening, on every channel."""

    days: tuple[Weekday, ...] = WEEKDAYS
    start: ClockTime = time(0, 0)
    end: ClockTime = time(0, 0)  # 00:00-00:00: the whole day

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        if not self.days:
            raise ValueError("`days` is empty: the window would never open")
        return self

    @classmethod
    def from_action(cls, value: Any) -> SendWindow | None:
        """The window as an action message carries it (`as_dict`), None without one."""
        return cls.model_validate(value) if isinstance(value, dict) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": list(self.days),
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
        }

    def _opening(
        self, day: date, zone: ZoneInfo, not_before: datetime
    ) -> tuple[datetime, datetime]:
        start = _first_instant_showing(
            datetime.combine(day, self.start), zone, not_before=not_before
        )
        end_day = day + timedelta(days=1) if self.end <= self.start else day
        end = _first_instant_showing(
            datetime.combine(end_day, self.end), zone, not_before=not_before
        )
        return start, end

    def next_open(self, now: datetime, tz: str | None) -> datetime:
        """`now` when the window is open in `tz`, else the instant it next opens."""
        now = utc(now)
        zone = zone_of(tz)
        today = now.astimezone(zone).date()
        for offset in range(-1, 8):  # yesterday's stretch may run past midnight
            day = today + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            opens = datetime.combine(day, self.start).replace(tzinfo=zone).astimezone(UTC)
            start, end = self._opening(day, zone, not_before=min(now, opens))
            if start <= now < end:
                return now
            if start > now:
                return start
        raise AssertionError("a window with days opens within a week")  # pragma: no cover


def _default_caps() -> tuple[Cap, ...]:
    return (
        Cap(scope="global", limit=3, window="24h"),
        Cap(scope="channel", channel="email", limit=1, window="24h"),
    )


class FatigueConfig(_Strict):
    """`config/fatigue.yaml`. Every key is optional; a missing one keeps its default
    (docs/delivery.md). `caps`, when given, replaces the default list as a whole."""

    caps: tuple[Cap, ...] = Field(default_factory=_default_caps)
    cooldown: Cooldown = Field(default_factory=Cooldown)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    control_group_percent: float = Field(default=0.0, ge=0.0, le=100.0)
    priority_window: DurationText = "10m"

    @classmethod
    def default(cls) -> FatigueConfig:
        return cls()

    @property
    def priority_window_seconds(self) -> int:
        return parse_duration(self.priority_window)


def load_fatigue_config(path: str | Path) -> FatigueConfig:
    """Reads the fatigue configuration; a missing file gives the defaults. Raises
    FatigueConfigError (a ValueError) naming the file and the field at fault."""
    path = Path(path)
    if not path.exists():
        return FatigueConfig.default()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise FatigueConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return FatigueConfig.default()
    if not isinstance(data, dict):
        raise FatigueConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        return FatigueConfig.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in err.errors())
        raise FatigueConfigError(f"{path}: {problems}") from err


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    where = ".".join(str(part) for part in loc) or "(top level)"
    return f"{where}: {msg.removeprefix('Value error, ')}"


# ---- what decide reads and returns ----------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    """A past send from the user's delivery log."""

    at: datetime
    channel: str
    trigger_id: str
    priority: int


@dataclass(frozen=True)
class Candidate:
    """An action waiting to be delivered. `cooldown_seconds` is the trigger's own
    cooldown from the action message; None falls back to the config."""

    action_id: str
    user_id: str
    trigger_id: str
    channel: Channel
    priority: int
    cooldown_seconds: int | None
    fired_at: datetime
    window: SendWindow | None = None  # the trigger's send window, if it has one
    holdout: str | None = None  # the experiment whose holdout variant the user is in


@dataclass(frozen=True)
class UserPrefs:
    timezone: str | None = None  # the `timezone` trait; UTC when absent or unknown
    opted_out: frozenset[str] = field(default_factory=frozenset)  # channels, or ALL_CHANNELS
    suppressed_channels: frozenset[str] = field(default_factory=frozenset)  # bounced, complained


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str
    defer_until: datetime | None = None

    @property
    def sends(self) -> bool:
        return self.status == "send"


SEND = Verdict("send", "ok")


def holdout_of(experiment: Any) -> str | None:
    """The experiment's id when an action's variant is its holdout (it sends nothing)."""
    if isinstance(experiment, dict) and experiment.get("holdout"):
        return str(experiment.get("id"))
    return None


# ---- the rules ----------------------------------------------------------------------------------
def in_control_group(user_id: str, percent: float) -> bool:
    """Whether the user is in the global control group. Stable across processes and
    releases: the user id's SHA-256 mapped into [0, 100)."""
    digest = hashlib.sha256(_CONTROL_SALT + user_id.encode("utf-8")).digest()
    # bucket / 2**64 * 100 < percent, in exact integer arithmetic (0 and 100 are exact)
    return int.from_bytes(digest[:8], "big") * 100 < percent * 2**64


def zone_of(tz: str | None) -> ZoneInfo:
    """The user's time zone; UTC when absent or not an IANA name."""
    if tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            pass
    return ZoneInfo("UTC")


def next_allowed(now: datetime, tz: str | None, quiet: QuietHours) -> datetime:
    """`now` when it is outside the quiet hours of `tz`, else the first instant at which
    the user's wall clock reaches `quiet.end`: a whole minute, never early, on the right
    side of daylight-saving changes (a repeated hour is quiet twice; an end the clocks
    skip over is reached when they jump)."""
    now = utc(now)
    zone = zone_of(tz)
    local = now.astimezone(zone)
    if not quiet.covers(local.time()):
        return now
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # the evening part of a stretch that crosses midnight
    return _first_instant_showing(datetime.combine(day, quiet.end), zone, not_before=now)


def _first_instant_showing(wall: datetime, zone: ZoneInfo, *, not_before: datetime) -> datetime:
    """The earliest instant >= `not_before` when the clock in `zone` shows `wall` or later."""
    for fold in (0, 1):  # fold=0 is the first of the two instants when clocks go back
        at = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if at >= not_before and _wall_clock(at, zone) == wall:
            return at
    # The clocks skip `wall` (they go forward over it): the answer is the jump itself.
    # fold=1 maps a skipped time to the instant the same distance before the jump.
    at = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    while _wall_clock(at, zone) < wall:
        at += MINUTE
    return max(at, not_before)


def _wall_clock(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


class Ranked(Protocol):
    """What ranks an action against the user's others: a Candidate, or a queued action."""

    @property
    def priority(self) -> int: ...

    @property
    def fired_at(self) -> datetime: ...

    @property
    def action_id(self) -> str: ...


R = TypeVar("R", bound=Ranked)


def _rank(candidate: Ranked) -> tuple[int, datetime, str]:
    return (-candidate.priority, utc(candidate.fired_at), candidate.action_id)


def order_by_priority(candidates: Iterable[R]) -> list[R]:
    """One user's actions in the order they should claim slots: highest priority first,
    then the earliest fired, then by action id (the order `decide` ranks competitors in,
    and the one the deliver function takes a user's actions in)."""
    return sorted(candidates, key=_rank)


def _used(cap: Cap, history: Sequence[Sent], now: datetime) -> int:
    # A send stamped after `now` (a concurrent delivery on a clock a little ahead) counts.
    since = now - timedelta(seconds=cap.window_seconds)
    return sum(1 for s in history if utc(s.at) >= since and cap.counts(s.channel, s.trigger_id))


def decide(
    candidate: Candidate,
    *,
    history: Sequence[Sent],
    prefs: UserPrefs,
    now: datetime,
    config: FatigueConfig,
    competing: Sequence[Candidate] = (),
) -> Verdict:
    """Whether `candidate` may be sent `now` (see the module docstring for the rules).
    `competing` are the user's other pending actions; only they can win a last slot."""
    now = utc(now)
    channel = candidate.channel

    if in_control_group(candidate.user_id, config.control_group_percent):
        return Verdict("holdout", "control_group")
    if candidate.holdout is not None:
        return Verdict("holdout", f"experiment:{candidate.holdout}")
    if channel in prefs.opted_out or ALL_CHANNELS in prefs.opted_out:
        which = channel if channel in prefs.opted_out else ALL_CHANNELS
        return Verdict("opted_out", f"opted_out:{which}")
    if channel in prefs.suppressed_channels:
        return Verdict("suppressed", f"suppressed:{channel}")

    cooldown = candidate.cooldown_seconds
    if cooldown is None:
        cooldown = config.cooldown.seconds_for(candidate.trigger_id)
    if cooldown > 0:
        since = now - timedelta(seconds=cooldown)
        if any(s.trigger_id == candidate.trigger_id and utc(s.at) >= since for s in history):
            return Verdict("capped", "cooldown")

    last_slots: list[Cap] = []
    for cap in config.caps:
        if not cap.counts(channel, candidate.trigger_id):
            continue
        used = _used(cap, history, now)
        if used >= cap.limit:
            return Verdict("capped", cap.rule)
        if used == cap.limit - 1:
            last_slots.append(cap)

    if channel in config.quiet_hours.channels:
        at = next_allowed(now, prefs.timezone, config.quiet_hours)
        if at > now:
            return Verdict("deferred", "quiet_hours", defer_until=at)
    if candidate.window is not None:
        at = candidate.window.next_open(now, prefs.timezone)
        if at > now:
            return Verdict("deferred", "send_window", defer_until=at)

    if last_slots and _outranked(candidate, last_slots, history, prefs, now, config, competing):
        return Verdict("capped", "priority")
    return SEND


def _outranked(
    candidate: Candidate,
    last_slots: Sequence[Cap],
    history: Sequence[Sent],
    prefs: UserPrefs,
    now: datetime,
    config: FatigueConfig,
    competing: Sequence[Candidate],
) -> bool:
    """Whether a competitor that ranks higher, fired within the priority window of the
    candidate and could itself go out (sent now or after quiet hours) wants one of the
    last slots the candidate would take."""
    window = timedelta(seconds=config.priority_window_seconds)
    for rival in competing:
        if (
            rival.user_id != candidate.user_id
            or rival.action_id == candidate.action_id
            or _rank(rival) >= _rank(candidate)
            or abs(utc(rival.fired_at) - utc(candidate.fired_at)) > window
            or not any(cap.counts(rival.channel, rival.trigger_id) for cap in last_slots)
        ):
            continue
        verdict = decide(rival, history=history, prefs=prefs, now=now, config=config)
        if verdict.status in ("send", "deferred"):
            return True
    return False
