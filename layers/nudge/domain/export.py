"""A user's data as one JSON document: GDPR's right of access (`GET
/v1/users/{userId}/export`, `nudge users export USER_ID`, docs/erase.md "Export").

What nudge holds of the user, store by store (the same stores erase clears):
- `profile`: the profile as `GET /v1/users/{userId}` shows it, and `stored_profile`, the
  whole document as kept (the trigger engine's state and the dedup fingerprints too);
- `ids`: the user's id and every id merged into it (their profiles are pointers);
- `inbox` and `deliveries`: every in-app message and delivery-log entry of each id, the
  log's with what it kept of a sent message (address, subject, body);
- `devices`: the registered push devices (token and SNS endpoint);
- `suppressed_addresses`: those of the user's `email` and `phone` that are suppressed;
- `events`: the archived events whose `user_id` or `anonymous_id` is one of the ids (what
  they sent, their exposures and message outcomes), oldest first, in pages: an answer
  holds at most EXPORT_PAGE_EVENTS of them and about EXPORT_PAGE_BYTES (a Lambda answer
  stops at 6 MB), and `events_next` is the cursor of the next page (`after`), null on
  the last. The CLI follows it and prints one document.

Pure: the stores are ports; the archive is read with SQL through the QueryEngine port.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nudge.domain.archive import iso_ms
from nudge.domain.clock import utc
from nudge.domain.delivery import DeliveryEntry, DeliveryLog
from nudge.domain.errors import NotFoundError, ValidationFailedError
from nudge.domain.experiment_report import sql_string
from nudge.domain.ports import Inbox, ProfileStore, QueryEngine
from nudge.domain.query import json_safe
from nudge.domain.users import profile_of

EXPORT_PAGE_EVENTS = 1000
EXPORT_PAGE_BYTES = 4 * 1024 * 1024
MAX_INBOX = 1000  # the inbox keeps 30 days (its TTL): far fewer in practice
MAX_CURSOR_CHARS = 2048


class Suppressed(Protocol):
    def is_suppressed(self, address: str) -> bool: ...


@dataclass
class ExportStores:
    profiles: ProfileStore
    inbox: Inbox
    log: DeliveryLog
    query: QueryEngine | None = None  # None: no archive (`events` is then empty)
    suppressions: Suppressed | None = None


def user_ids(profile_id: str, requested: str, anonymous: Sequence[str]) -> list[str]:
    """The profile's id, the id asked for, and the ids merged into it, once each."""
    return list(dict.fromkeys(i for i in (profile_id, requested, *anonymous) if i))


def delivery_export(entry: DeliveryEntry) -> dict[str, Any]:
    """A delivery-log entry with everything the log keeps (GET .../deliveries shows less)."""
    out = entry.view()
    for name in ("fired_at", "defer_until"):
        value = getattr(entry, name)
        out[name] = iso_ms(value) if value is not None else None
    out.update(
        priority=entry.priority,
        variant=entry.variant,
        provider_id=entry.provider_id,
        to=entry.to,
        subject=entry.subject,
        body=entry.body,
    )
    return out


def encode_cursor(timestamp: str, message_id: str) -> str:
    raw = json.dumps([timestamp, message_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (timestamp as a SQL TIMESTAMP literal's text, message_id) an `after` cursor
    names; 400 for anything else."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        timestamp, message_id = json.loads(raw)
        if not isinstance(timestamp, str) or not isinstance(message_id, str):
            raise ValueError("not strings")
        at = utc(datetime.fromisoformat(timestamp.replace("Z", "+00:00")))
    except (ValueError, TypeError) as err:  # (JSONDecodeError and binascii.Error too)
        raise ValidationFailedError(
            "after: not a cursor of this export (pass events_next as given)",
            details=[{"field": "after", "message": str(err)}],
        ) from err
    return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"), message_id


def events_sql(ids: Sequence[str], after: tuple[str, str] | None, limit: int) -> str:
    """The user's archived events, oldest first (event time, then message_id), after the
    cursor, `limit` of them."""
    listed = ", ".join(sql_string(i) for i in ids)
    where = f"(user_id IN ({listed}) OR anonymous_id IN ({listed}))"
    if after is not None:
        ts, mid = sql_string(after[0]), sql_string(after[1])
        where += (
            f' AND ("timestamp" > CAST({ts} AS TIMESTAMP)'
            f' OR ("timestamp" = CAST({ts} AS TIMESTAMP) AND message_id > {mid}))'
        )
    return f'SELECT * FROM events WHERE {where} ORDER BY "timestamp", message_id LIMIT {int(limit)}'


def _events_page(
    engine: QueryEngine | None, ids: Sequence[str], after: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    if engine is None:
        return [], None
    cursor = decode_cursor(after) if after else None
    result = engine.query(events_sql(ids, cursor, EXPORT_PAGE_EVENTS + 1))
    page: list[dict[str, Any]] = []
    size = 0
    for row in result.rows[:EXPORT_PAGE_EVENTS]:
        event = {c: json_safe(v) for c, v in zip(result.columns, row, strict=True)}
        size += len(json.dumps(event, ensure_ascii=False).encode())
        if page and size > EXPORT_PAGE_BYTES:
            break
        page.append(event)
    more = len(page) < len(result.rows)
    if not more:
        return page, None
    last = page[-1]
    return page, encode_cursor(str(last["timestamp"]), str(last["message_id"]))


def export_user(
    stores: ExportStores, user_id: str, *, now: datetime, after: str | None = None
) -> dict[str, Any]:
    """Everything nudge holds of the user named `user_id` (or of the profile it was merged
    into), with a page of their archived events. NotFoundError for an unknown or erased
    user."""
    profile = profile_of(stores.profiles, user_id)
    if profile.erased:  # (profile_of refuses tombstones; kept explicit)
        raise NotFoundError(f"no user {user_id!r}")
    ids = user_ids(profile.user_id, user_id, profile.anonymous_ids)
    inbox = [m for uid in ids for m in stores.inbox.messages(uid, limit=MAX_INBOX)]
    entries = [e for uid in ids for e in stores.log.entries(uid)]
    addresses = [
        v.strip()
        for k in ("email", "phone")
        if isinstance(v := profile.traits.get(k), str) and v.strip()
    ]
    suppressed = [
        a for a in addresses if stores.suppressions and stores.suppressions.is_suppressed(a)
    ]
    events, following = _events_page(stores.query, ids, after)
    return {
        "user_id": profile.user_id,
        "exported_at": iso_ms(now),
        "ids": ids,
        "profile": profile.view(now),
        "stored_profile": json_safe(profile.to_dict()),
        "inbox": [
            {**m.view(), "action_id": m.action_id}
            for m in sorted(inbox, key=lambda m: m.id, reverse=True)
        ],
        "deliveries": [
            delivery_export(e) for e in sorted(entries, key=lambda e: e.at, reverse=True)
        ],
        "devices": [dict(d) for d in profile.extra.get("devices") or [] if isinstance(d, dict)],
        "suppressed_addresses": suppressed,
        "events": events,
        "events_next": following,
    }
