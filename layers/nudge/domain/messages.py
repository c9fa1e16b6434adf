"""The messages that cross the events queue, produced and consumed through these classes
(docs/architecture.md, "Messages between functions").

- `EventsMessage`: the events of one request for one user (the ingest function packs
  them: one FIFO message in the user's group instead of one per event, so a user's
  request costs one queue entry and one profile write). Each event keeps its own
  messageId: the profile deduplicates per event inside the message, whatever was
  packed with what.
- `TimersMessage`: the timers of one user that a wake-up bucket holds (the check
  function sends them).

Each carries a schema version `v`. The consumer accepts the versions it knows and the
formats queued before packing (one event per message, one `timer` per message), so a
deploy never strands what is in flight; a message of an unknown version is refused
with ValueError (the process function moves it to the dead-letter queue, with the
reason). Bodies stay ASCII (SQS refuses some code points raw).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from nudge.domain.events import Event

EVENTS_VERSION = 1
TIMERS_VERSION = 1
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
        return self.model_dump_json(exclude_none=True)


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
        raise ValueError(str(err.errors()[0]["msg"]) if err.errors() else str(err)) from err


def _check_version(data: dict[str, Any], known: int, kind: str) -> None:
    v = data.get("v")
    if v != known:
        raise ValueError(f"unknown {kind} message version {v!r} (this function reads {known})")
