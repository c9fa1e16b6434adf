"""Segment-format events: validation and normalization at the edge.

Follows Segment's HTTP Tracking API: `userId` or `anonymousId` is required, `track`
needs `event`, a missing `messageId` is generated, batch-level `context` and
`integrations` merge into each item, `timestamp` is corrected for client clock skew
with `sentAt` and never lies after `receivedAt`. `page` and `screen` calls count as the
events `Page Viewed` and `Screen Viewed`, their `name` and `category` as properties.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nudge.constants import MAX_EVENT_BYTES

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: tuple[str, ...] = ("track", "identify", "page", "screen", "group", "alias")
PAGE_VIEWED = "Page Viewed"
SCREEN_VIEWED = "Screen Viewed"
MAX_ID_LENGTH = 256
MAX_EVENT_NAME_LENGTH = 200
MAX_NESTING = 64  # well under the JSON depth pydantic parses back in the process function


class Event(BaseModel):
    """A normalized event, as queued for the process function and folded into state."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: EventType
    message_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None  # the counted name: track's event, Page Viewed, Screen Viewed
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime
    received_at: datetime
    previous_id: str | None = None
    group_id: str | None = None
    historical: bool = False  # from /v1/import: updates state, never fires or sends

    @property
    def profile_id(self) -> str:
        """The user whose state this event folds into (and the FIFO message group)."""
        return self.user_id or self.anonymous_id or ""

    @property
    def fingerprint(self) -> str:
        return message_fingerprint(self.message_id)

    def to_json(self) -> str:
        # ASCII only: SQS rejects bodies with some code points (U+FFFE, U+FFFF) raw
        return self.model_dump_json(exclude_defaults=True, ensure_ascii=True)


def message_fingerprint(message_id: str) -> str:
    """A short stable digest of a messageId, kept in the profile for deduplication."""
    return hashlib.blake2b(message_id.encode(), digest_size=8).hexdigest()


class SegmentCall(BaseModel):
    """What an SDK may send for one call (track, identify, ...) of Segment's HTTP Tracking
    API. Also the request schema of the ingest routes in the OpenAPI document."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str | None = Field(None, description="implied by the path; required in a batch")
    messageId: str | None = Field(None, description="deduplicates for 24 h; generated if absent")
    userId: str | int | None = Field(None, description="userId or anonymousId is required")
    anonymousId: str | int | None = None
    event: str | None = Field(None, description="track: the event name (required)")
    name: str | None = Field(None, description="page/screen: counted as a property")
    category: str | None = Field(None, description="page/screen: counted as a property")
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    timestamp: datetime | None = Field(None, description="event time; corrected with sentAt")
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = Field(None, description="the client's clock when it sent")
    previousId: str | int | None = Field(None, description="alias: the id merged into userId")
    groupId: str | int | None = Field(None, description="group: required")

    @field_validator("userId", "anonymousId", "previousId", "groupId", mode="after")
    @classmethod
    def _id_to_str(cls, value: str | int | None) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        if len(text) > MAX_ID_LENGTH:
            raise ValueError(f"longer than {MAX_ID_LENGTH} characters")
        return text or None


class Rejection(BaseModel):
    index: int
    message: str


def _pydantic_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "event"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _nested_deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def normalize_event(
    raw: Any,
    *,
    kind: str | None,
    received_at: datetime,
    batch_context: dict[str, Any] | None = None,
    batch_integrations: dict[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
    historical: bool = False,
) -> Event:
    """Validate one raw event and return its normalized form.

    `kind` is the type implied by the path (`/v1/track`), or None inside a batch where
    each item names its own. Raises ValueError with a user-facing message.
    """
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    if _nested_deeper_than(raw, MAX_NESTING):
        raise ValueError(f"event is nested deeper than {MAX_NESTING} levels")
    try:
        size = len(json.dumps(raw, separators=(",", ":"), default=str, ensure_ascii=False).encode())
    except UnicodeEncodeError:
        raise ValueError("event contains invalid Unicode (an unpaired surrogate)") from None
    if size > MAX_EVENT_BYTES:
        raise ValueError(f"event is {size} bytes, over the {MAX_EVENT_BYTES // 1024} KB limit")
    try:
        ev = SegmentCall.model_validate(raw)
    except ValidationError as err:
        raise ValueError(_pydantic_message(err)) from None

    etype = ev.type or kind
    if kind is not None and ev.type is not None and ev.type != kind:
        raise ValueError(f"type '{ev.type}' sent to the /v1/{kind} endpoint")
    if etype not in EVENT_TYPES:
        raise ValueError(
            f"unknown type {etype!r}; expected one of {', '.join(EVENT_TYPES)}"
            if etype
            else "type is required in a batch item"
        )
    user_id, anonymous_id = ev.userId, ev.anonymousId
    if not user_id and not anonymous_id:
        raise ValueError("userId or anonymousId is required")

    name: str | None
    properties = dict(ev.properties or {})
    if etype == "track":
        name = (ev.event or "").strip()
        if not name:
            raise ValueError("track needs a non-empty event name")
        if len(name) > MAX_EVENT_NAME_LENGTH:
            raise ValueError(f"event name longer than {MAX_EVENT_NAME_LENGTH} characters")
    elif etype in ("page", "screen"):
        name = PAGE_VIEWED if etype == "page" else SCREEN_VIEWED
        if ev.name is not None:
            properties.setdefault("name", ev.name)
        if ev.category is not None:
            properties.setdefault("category", ev.category)
    else:
        name = None
    if etype == "alias" and not ev.previousId:
        raise ValueError("alias needs previousId")
    if etype == "alias" and not user_id:
        raise ValueError("alias needs userId")
    if etype == "group" and not ev.groupId:
        raise ValueError("group needs groupId")

    context = dict(batch_context or {})
    context.update(ev.context or {})
    integrations = dict(batch_integrations or {})
    integrations.update(ev.integrations or {})
    traits = dict(ev.traits or {})
    if etype == "identify" and not traits and isinstance(context.get("traits"), dict):
        traits = dict(context["traits"])

    received_at = _utc(received_at)
    stamp = ev.timestamp or ev.originalTimestamp
    sent_at = ev.sentAt or batch_sent_at
    if stamp is None:
        timestamp = received_at
    else:
        try:
            timestamp = _utc(stamp)
            if sent_at is not None:
                timestamp = timestamp + (received_at - _utc(sent_at))
        except OverflowError:
            raise ValueError("timestamp or sentAt out of range") from None
        if timestamp > received_at:
            timestamp = received_at

    # arg-type: etype was checked against EVENT_TYPES above, and SegmentCall's id fields
    # are declared str | int (what a caller may send) but _id_to_str made them str | None
    return Event(
        type=etype,  # type: ignore[arg-type]
        message_id=(ev.messageId or "").strip() or f"nudge-{uuid.uuid4()}",
        user_id=user_id,  # type: ignore[arg-type]
        anonymous_id=anonymous_id,  # type: ignore[arg-type]
        event=name,
        properties=properties,
        traits=traits,
        context=context,
        integrations=integrations,
        timestamp=timestamp,
        received_at=received_at,
        previous_id=ev.previousId,  # type: ignore[arg-type]
        group_id=ev.groupId,  # type: ignore[arg-type]
        historical=historical,
    )
