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
import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nudge.constants import MAX_EVENT_BYTES
from nudge.domain.clock import utc

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: tuple[str, ...] = ("track", "identify", "page", "screen", "group", "alias")
PAGE_VIEWED = "Page Viewed"
SCREEN_VIEWED = "Screen Viewed"
# Admission (docs/api.md, "Limits"): what would fail later is refused here with a 400.
# An id (userId, anonymousId, previousId, groupId) is at most 256 characters and 256
# bytes of UTF-8: every DynamoDB key built from it then fits
# (a profile's partition key, 2,048 bytes; a wake-up's sort key, 1,024 bytes after JSON's
# ASCII escapes, nudge.adapters.scheduler.ref_of), and so does the profile document. A
# product id (`product_id`, `sku`) keys the cart and the engine's per-product state: at
# most 128 bytes.
MAX_ID_LENGTH = 256
MAX_ID_BYTES = 256
MAX_PRODUCT_ID_BYTES = 128
MAX_EVENT_NAME_LENGTH = 200
MAX_NESTING = 64  # well under the JSON depth pydantic parses back in the process function
MAX_FIELD_NAME_BYTES = 256  # a key of an object anywhere in the event
MAX_INTEGER = 2**63 - 1
PRODUCT_ID_FIELDS = ("product_id", "sku")


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

    @cached_property
    def fingerprint(self) -> str:
        """message_fingerprint(message_id), computed once per event (the fold, the dedup
        and the engine each read it)."""
        return message_fingerprint(self.message_id)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("fingerprint", None)  # the copy's own, were message_id updated
        return copied

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

    @field_validator("userId", "anonymousId", "previousId", "groupId", mode="before")
    @classmethod
    def _no_boolean_id(cls, value: Any) -> Any:
        # pydantic reads true/false as the integers 1/0: every client that sent a boolean
        # would become the user "1" or "0", one profile for all of them
        if isinstance(value, bool):
            raise ValueError("an id is a string or an integer, not true or false")
        return value

    @field_validator("userId", "anonymousId", "previousId", "groupId", mode="after")
    @classmethod
    def _id_to_str(cls, value: str | int | None) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        problem = id_problem(text)
        if problem:
            raise ValueError(problem)
        return text or None


def id_problem(text: str, max_bytes: int = MAX_ID_BYTES) -> str | None:
    """Why an id cannot be stored, or None (the id rule above)."""
    if len(text) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return f"{size} bytes in UTF-8, over the {max_bytes}-byte limit of an id"
    return None


class Rejection(BaseModel):
    index: int
    message: str


def _pydantic_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "event"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _bad_text(text: str) -> bool:
    """A lone surrogate (a JSON `\\ud800` escape with no pair): not Unicode, so neither
    DynamoDB, SQS nor the archive can store it."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _where(path: tuple[str | int, ...]) -> str:
    """A field's place as people write it, `properties.products[2].price` (cut at 200
    characters: field names may be long)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return (out[:200] + "..." if len(out) > 200 else out) or "event"


def unstorable(value: Any, path: tuple[str | int, ...] = ()) -> str | None:
    """The first part of a JSON value that could not be stored, as `where: rule`, or None:
    nesting deeper than MAX_NESTING, a number that is not finite (NaN, Infinity, or a
    literal like 1e999 that overflows), text with a lone surrogate, a field name over
    MAX_FIELD_NAME_BYTES, an integer beyond 64 bits (the archive's engines read integers
    as 64-bit)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if len(at) - len(path) > MAX_NESTING:
            return f"{_where(at)}: nested deeper than {MAX_NESTING} levels"
        if isinstance(item, str):
            if _bad_text(item):
                return f"{_where(at)}: invalid Unicode (an unpaired surrogate)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{_where(at)}: not a finite number (NaN and Infinity cannot be stored)"
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -MAX_INTEGER <= item <= MAX_INTEGER:
                return f"{_where(at)}: an integer beyond 64 bits (send it as a string)"
        elif isinstance(item, dict):
            for k, v in item.items():
                key = str(k)
                if _bad_text(key):
                    return (
                        f"{_where(at)}: a field name with invalid Unicode (an unpaired surrogate)"
                    )
                if len(key) * 4 > MAX_FIELD_NAME_BYTES and len(key.encode()) > MAX_FIELD_NAME_BYTES:
                    return (
                        f"{_where((*at, key[:40] + '...'))}: a field name over "
                        f"{MAX_FIELD_NAME_BYTES} bytes"
                    )
                stack.append((v, (*at, key)))
        elif isinstance(item, list):
            stack.extend((v, (*at, i)) for i, v in enumerate(item))
    return None


def _suspect(value: Any) -> bool:
    """Whether `unstorable` may find something json.dumps does not: nesting, a long field
    name, a large integer (a quick walk, no paths)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_NESTING:
                return True
            for k, v in item.items():
                if len(k) * 4 > MAX_FIELD_NAME_BYTES:
                    return True
                if type(v) is int:
                    if not -MAX_INTEGER <= v <= MAX_INTEGER:
                        return True
                elif isinstance(v, (dict, list)):
                    stack.append((v, depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_NESTING:
                return True
            for v in item:
                if type(v) is int:
                    if not -MAX_INTEGER <= v <= MAX_INTEGER:
                        return True
                elif isinstance(v, (dict, list)):
                    stack.append((v, depth + 1))
    return False


def product_id_of(properties: Mapping[str, Any]) -> str | None:
    """The product an event's properties (or an item of its `products`) name, as every
    reader takes it (the profile's cart and items, the trigger engine's keys): `product_id`,
    falling back to `sku` when there is no `product_id`; None when that names none (null,
    empty, an object, a list). Uncut: each reader cuts it to its own bound (ingest refused
    ids over MAX_PRODUCT_ID_BYTES)."""
    pid = properties.get("product_id", properties.get("sku"))
    if pid is None or isinstance(pid, (dict, list)):
        return None
    return str(pid) or None


def _product_id_problem(properties: dict[str, Any]) -> str | None:
    """A product id (`product_id`, `sku`, also in `products`) is an id: it keys the cart,
    the trigger engine's per-product state and wake-ups."""
    products = properties.get("products")
    places: list[tuple[str, Any]] = [
        (f"properties.{k}", properties.get(k)) for k in PRODUCT_ID_FIELDS
    ]
    if isinstance(products, list):
        for i, item in enumerate(products):
            if isinstance(item, dict):
                places += [
                    (f"properties.products[{i}].{k}", item.get(k)) for k in PRODUCT_ID_FIELDS
                ]
    for where, value in places:
        if value is None or isinstance(value, (dict, list, bool)):
            continue
        problem = id_problem(str(value), MAX_PRODUCT_ID_BYTES)
        if problem:
            return f"{where}: {problem}"
    return None


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
    try:  # the common case at C speed: NaN, Infinity and lone surrogates raise here
        text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(text.encode())
        suspect = _suspect(raw)
    except (ValueError, UnicodeEncodeError):
        suspect = True
    if suspect:  # then say where, and which rule
        problem = unstorable(raw)
        if problem:
            raise ValueError(problem)
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
    problem = _product_id_problem(properties)
    if problem:
        raise ValueError(problem)
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

    received_at = utc(received_at)
    stamp = ev.timestamp or ev.originalTimestamp
    sent_at = ev.sentAt or batch_sent_at
    if stamp is None:
        timestamp = received_at
    else:
        try:
            timestamp = utc(stamp)
            if sent_at is not None:
                timestamp = timestamp + (received_at - utc(sent_at))
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
