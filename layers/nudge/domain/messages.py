"""The messages that cross the queues, produced and consumed through these classes
(docs/architecture.md, "Messages between functions").

- `EventsMessage`: the events of one request for one user (the ingest function packs
  them: one FIFO message in the user's group instead of one per event, so a user's
  request costs one queue entry and one profile write). Each event keeps its own
  messageId: the profile deduplicates per event inside the message, whatever was
  packed with what.
- `TimersMessage`: the timers of one user that a wake-up bucket holds (the check
  function sends them).
- `ActionMessage`: one fired episode for the deliver function on the actions queue (the
  process function sends it, the deliver function defers it back through Scheduler),
  with the variant of the trigger's experiment (`ExperimentArm`) as typed fields.

Each carries a schema version `v`. The consumer accepts the versions it knows and the
formats queued before packing (one event per message, one `timer` per message, an
action without `kind` and `v`), so a deploy never strands what is in flight; a message
of an unknown version is refused with ValueError (the process and deliver functions
move it to their dead-letter queue, with the reason). Bodies stay ASCII (SQS refuses
some code points raw).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_serializer,
)

from nudge.domain.clock import iso, utc
from nudge.domain.events import Event
from nudge.domain.fatigue import SendWindow
from nudge.domain.triggers.contract import Fire

EVENTS_VERSION = 1
TIMERS_VERSION = 1
ACTION_VERSION = 1
MAX_BODY_BYTES = 200 * 1024  # under SQS's 256 KB per message, with room for the envelope


class TimerItem(BaseModel):
    """One timer of a bucket: check (trigger, key) of the user again."""

    trigger_id: str
    key: str | None = None
    due: int | None = None  # epoch ms, for logs


class TimersMessage(BaseModel):
    kind: Literal["timers"] = "timers"
    v: int = TIMERS_VERSION
    user_id: str
    bucket: str
    timers: list[TimerItem]

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True, ensure_ascii=True)


def timers_messages(bucket: str, due: Iterable[tuple[str, TimerItem]]) -> list[TimersMessage]:
    """A wake-up bucket's timers (user, timer) as one TimersMessage per user, users in
    the order they first come."""
    by_user: dict[str, list[TimerItem]] = {}
    for user_id, timer in due:
        by_user.setdefault(user_id, []).append(timer)
    return [TimersMessage(user_id=u, bucket=bucket, timers=ts) for u, ts in by_user.items()]


class _LegacyTimer(BaseModel):
    """One timer per message, as the check function sent them before TimersMessage."""

    kind: Literal["timer"]
    user_id: str
    trigger_id: str
    key: str | None = None


@dataclass(frozen=True)
class Parsed:
    """A queue message, read: whose it is, and its events or its timers."""

    user_id: str
    events: list[Event]
    timers: list[TimerItem]


def pack_events(events: Sequence[Event]) -> list[tuple[str, str, list[Event]]]:
    """The events as EventsMessage bodies: (user, body, the events in it), one message
    per user in arrival order, split where a body would pass MAX_BODY_BYTES."""
    by_user: dict[str, list[tuple[Event, str]]] = {}
    for ev in events:
        by_user.setdefault(ev.profile_id, []).append((ev, ev.to_json()))
    out: list[tuple[str, str, list[Event]]] = []
    for user, items in by_user.items():
        for chunk in _split(items):
            out.append((user, _events_body(user, [j for _, j in chunk]), [e for e, _ in chunk]))
    return out


def _split(items: list[tuple[Event, str]]) -> Iterable[list[tuple[Event, str]]]:
    chunk: list[tuple[Event, str]] = []
    size = 0
    for item in items:
        n = len(item[1]) + 1
        if chunk and size + n > MAX_BODY_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


def _events_body(user: str, event_json: list[str]) -> str:
    head = json.dumps({"kind": "events", "v": EVENTS_VERSION, "user_id": user})
    return head[:-1] + ',"events":[' + ",".join(event_json) + "]}"


def parse_message(body: str) -> Parsed:
    """A queue message of any known format; ValueError (with the reason) otherwise."""
    data: Any = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("a queue message is a JSON object")
    kind = data.get("kind")
    try:
        if kind == "events":
            _check_version(data, EVENTS_VERSION, kind)
            user = data.get("user_id")
            raw = data.get("events")
            if not isinstance(user, str) or not isinstance(raw, list) or not raw:
                raise ValueError("an events message has a user_id and events")
            events = [Event.model_validate(e) for e in raw]
            if any(ev.profile_id != user for ev in events):
                raise ValueError("an events message holds the events of one user")
            return Parsed(user, events, [])
        if kind == "timers":
            _check_version(data, TIMERS_VERSION, kind)
            msg = TimersMessage.model_validate(data)
            return Parsed(msg.user_id, [], msg.timers)
        if kind == "timer":
            old = _LegacyTimer.model_validate(data)
            return Parsed(old.user_id, [], [TimerItem(trigger_id=old.trigger_id, key=old.key)])
        ev = Event.model_validate(data)  # one event, as queued before EventsMessage
        return Parsed(ev.profile_id, [ev], [])
    except ValidationError as err:
        raise ValueError(reason_of(err)) from err


def _check_version(data: dict[str, Any], known: int, kind: str) -> None:
    v = data.get("v")
    if v != known:
        raise ValueError(f"unknown {kind} message version {v!r} (this function reads {known})")


# ---- the actions queue ----------------------------------------------------------------------------
# A time on the wire as nudge writes every time (UTC, milliseconds, `Z`); read as UTC
Instant = Annotated[datetime, AfterValidator(utc), PlainSerializer(iso, when_used="json")]
ACTION_REQUIRED = ("user_id", "action_id", "trigger_id", "action")


class ActionSpec(BaseModel):
    """What to send: the trigger's action as its variant sends it. The channels stay
    strings: the trigger loader accepted only known ones, and a channel delivery cannot
    use is logged (`no_contact`), not dead-lettered."""

    model_config = ConfigDict(frozen=True)

    channel: str | None = None  # none: in-app
    template: str | None = None  # none: the trigger's id
    fallback: str | None = None
    send_window: SendWindow | None = None

    @field_serializer("send_window")
    def _window(self, window: SendWindow | None) -> dict[str, Any] | None:
        return window.as_dict() if window is not None else None


class ExperimentArm(BaseModel):
    """The trigger's experiment as the action carries it: the variant the user is in
    (nudge.domain.triggers.experiments.exposure), and the recommendation strategy the
    variant names, if it names one (nudge.domain.recommend.STRATEGIES)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None = None
    variant: str
    holdout: bool = False
    strategy: str | None = None


class ActionMessage(BaseModel):
    """One fired episode for the deliver function (its id is deterministic: delivery
    claims it once). `at` is when the episode fired, `enqueued_at` when the process
    function queued it, `deferred_until` set when delivery put it back for later."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["action"] = "action"
    v: int = ACTION_VERSION
    user_id: str
    action_id: str
    trigger_id: str
    key: str | None = None
    episode: int | None = None
    at: Instant | None = None
    action: ActionSpec
    priority: int = 0
    cooldown_seconds: int | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    experiment: ExperimentArm | None = None
    enqueued_at: Instant | None = None
    deferred_until: Instant | None = None

    @classmethod
    def of(cls, user_id: str, fire: Fire, *, enqueued_at: datetime) -> ActionMessage:
        """The message of an episode the engine fired for the user."""
        return cls(
            user_id=user_id,
            action_id=fire.action_id,
            trigger_id=fire.trigger_id,
            key=fire.key,
            episode=fire.episode,
            at=fire.at,
            action=ActionSpec.model_validate(fire.action),
            priority=fire.priority,
            cooldown_seconds=fire.cooldown_seconds,
            context=fire.context,
            experiment=ExperimentArm.model_validate(fire.experiment) if fire.experiment else None,
            enqueued_at=enqueued_at,
        )

    @property
    def variant(self) -> str | None:
        return self.experiment.variant if self.experiment is not None else None

    @property
    def experiment_id(self) -> str | None:
        return self.experiment.id if self.experiment is not None else None

    @property
    def holdout(self) -> str | None:
        """The experiment's id when the user is in its holdout variant (it sends nothing)."""
        exp = self.experiment
        return exp.id if exp is not None and exp.holdout else None

    def deferred(self, until: datetime) -> ActionMessage:
        """The message as delivery puts it back on the queue for `until`."""
        return self.model_copy(update={"deferred_until": until})

    def to_json(self) -> str:
        return self.model_dump_json(ensure_ascii=True)


def parse_action(body: str) -> ActionMessage:
    """An actions queue message: an ActionMessage of a known version, or an action queued
    before it (the same fields without `kind` and `v`); ValueError with the reason
    otherwise."""
    data: Any = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("an action message is a JSON object")
    if data.get("kind", "action") != "action":
        raise ValueError(f"not an action message (kind {data.get('kind')!r})")
    if "kind" in data or "v" in data:
        _check_version(data, ACTION_VERSION, "action")
    if any(k not in data for k in ACTION_REQUIRED):
        raise ValueError(f"an action needs {', '.join(ACTION_REQUIRED)}")
    try:
        return ActionMessage.model_validate(data)
    except ValidationError as err:
        raise ValueError(reason_of(err)) from err


def reason_of(err: ValueError) -> str:
    """Why a message cannot be read, in a line (a dead letter's reason): the first
    validation error, with the field it is about."""
    if not isinstance(err, ValidationError) or not err.errors():
        return str(err)
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
