"""The event archive's format: one JSON line per archived event, packed into Firehose
records, and the SQL view `events` that every reader (DuckDB, Athena) puts over it.

Format (schema version 1, documented for users in docs/archive.md). Each line is an
`ArchiveRecord` as JSON: an object with the keys of `ARCHIVE_COLUMNS`, always all present
(null when empty), so the Glue table and DuckDB's reader can declare fixed columns:

  v             1 (this format's version)
  message_id    Segment's messageId (generated at ingest when the SDK sent none)
  type          track | identify | page | screen | group | alias
  event         the counted name: track's event, `Page Viewed`, `Screen Viewed`; null
                for identify / group / alias
  user_id       the profile the event folded into (after alias / identify merges)
  anonymous_id  as sent
  timestamp     event time, UTC, ISO-8601 with milliseconds and `Z` (skew-corrected)
  received_at   when nudge received it, same format
  properties    JSON object (page / screen: name and category included)
  traits        JSON object
  context       JSON object
  historical    true for /v1/import
  previous_id   alias only
  group_id      group only

Objects land under `events/YYYY/MM/DD/HH/` (Firehose's arrival-time prefix, UTC), GZIP
compressed on AWS, plain in local mode (moto's Firehose does not compress): readers
accept both. The archive is at least once: a retried batch can archive an event twice,
so the view keeps one row per `message_id` (the earliest received).

Every producer (processing, ingest's tracking-plan violations, delivery outcomes) writes
`ArchiveRecord.of(event, user).line()`; Python reads a line back with
`ArchiveRecord.from_line`, which refuses a line of another version with the reason (the
train function skips and counts it).

This module is pure: no AWS calls. The writer (nudge.adapters.archive) sends what
`pack_records` returns; the readers put `EVENTS_VIEW_SQL` over the raw rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError

from nudge.constants import (
    ARCHIVE_BATCH_MAX_BYTES,
    ARCHIVE_BATCH_MAX_RECORDS,
    ARCHIVE_PREFIX,
    ARCHIVE_RECORD_MAX_BYTES,
)
from nudge.domain.clock import utc
from nudge.domain.events import Event
from nudge.domain.messages import reason_of

ARCHIVE_VERSION = 1

# (column, DuckDB type of the raw JSON value, Glue / Hive type): the one list the writer,
# the DuckDB reader and the Glue table are built from.
ARCHIVE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("v", "INTEGER", "int"),
    ("message_id", "VARCHAR", "string"),
    ("type", "VARCHAR", "string"),
    ("event", "VARCHAR", "string"),
    ("user_id", "VARCHAR", "string"),
    ("anonymous_id", "VARCHAR", "string"),
    ("timestamp", "VARCHAR", "string"),
    ("received_at", "VARCHAR", "string"),
    ("properties", "JSON", "string"),
    ("traits", "JSON", "string"),
    ("context", "JSON", "string"),
    ("historical", "BOOLEAN", "boolean"),
    ("previous_id", "VARCHAR", "string"),
    ("group_id", "VARCHAR", "string"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c for c, _, _ in ARCHIVE_COLUMNS)


def iso_ms(at: datetime) -> str:
    """UTC, milliseconds, `Z`: sortable as text and read by DuckDB and Athena alike."""
    at = utc(at)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class ArchiveRecord(BaseModel):
    """One archived event, a line of the archive (the fields are ARCHIVE_COLUMNS, in
    their order; times are `iso_ms` text, as the Glue table declares them)."""

    model_config = ConfigDict(frozen=True)

    v: int
    message_id: str
    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    event: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    timestamp: str
    received_at: str
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    context: dict[str, Any] = {}
    historical: bool = False
    previous_id: str | None = None
    group_id: str | None = None

    @classmethod
    def of(cls, event: Event, user_id: str | None) -> ArchiveRecord:
        """The archived form of an accepted event, folded into the profile `user_id`
        (None: an event of nudge's own about no user, such as a tracking-plan violation)."""
        return cls(
            v=ARCHIVE_VERSION,
            message_id=event.message_id,
            type=event.type,
            event=event.event,
            user_id=user_id,
            anonymous_id=event.anonymous_id,
            timestamp=iso_ms(event.timestamp),
            received_at=iso_ms(event.received_at),
            properties=event.properties,
            traits=event.traits,
            context=event.context,
            historical=event.historical,
            previous_id=event.previous_id,
            group_id=event.group_id,
        )

    def line(self) -> bytes:
        """The record as one JSON line (UTF-8, newline-terminated; non-finite numbers
        null). A value pydantic cannot encode (a lone surrogate) goes through archive_line."""
        try:
            return self.model_dump_json().encode() + b"\n"
        except PydanticSerializationError:
            return archive_line(self.model_dump())

    @classmethod
    def from_line(cls, line: bytes | str) -> ArchiveRecord:
        """A line of the archive; ValueError with the reason when it is not a record of
        this version."""
        try:
            record = cls.model_validate_json(line)
        except ValidationError as err:
            version = _version_of(line)
            if version is not None and version != ARCHIVE_VERSION:
                raise _unknown_version(version) from err  # its fields may differ too
            raise ValueError(reason_of(err)) from err
        if record.v != ARCHIVE_VERSION:
            raise _unknown_version(record.v)
        return record


def _version_of(line: bytes | str) -> Any:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("v") if isinstance(data, dict) else None


def _unknown_version(v: Any) -> ValueError:
    return ValueError(f"unknown archive record version {v!r} (this reader reads {ARCHIVE_VERSION})")


def archive_line(row: Mapping[str, Any]) -> bytes:
    """Any row as one JSON line (UTF-8, newline-terminated): ArchiveRecord.line's way for
    the values pydantic cannot encode, and tests' hand-made rows. Non-finite numbers,
    which JSON cannot hold, become null rather than failing the batch."""
    try:
        text = json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(row), ensure_ascii=False, separators=(",", ":"))
    # json.dumps escapes control characters, so a line holds no raw newline
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        # a lone surrogate (JSON can escape it, UTF-8 cannot encode it, and DuckDB's
        # reader rejects even its escape, failing the whole object) becomes U+FFFD;
        # a split pair is joined
        fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return fixed.encode("utf-8") + b"\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def pack_records(
    lines: Iterable[bytes], *, max_record_bytes: int = ARCHIVE_RECORD_MAX_BYTES
) -> list[bytes]:
    """Packs whole lines into as few Firehose records as fit (Firehose bills each record
    rounded up to 5 KB, so one record per event would cost up to 10x). A line is never
    split; a line longer than a record (cannot happen under ingest's 32 KB limit) is a
    record of its own."""
    records: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > max_record_bytes:
            records.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        records.append(b"".join(current))
    return records


def batch_records(
    records: Sequence[bytes],
    *,
    max_records: int = ARCHIVE_BATCH_MAX_RECORDS,
    max_bytes: int = ARCHIVE_BATCH_MAX_BYTES,
) -> list[list[bytes]]:
    """Splits records into PutRecordBatch calls (500 records, 4 MiB each). One SQS batch
    of the events queue (10 messages of at most 256 KB) always fits in one call."""
    calls: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if current and (len(current) >= max_records or size + len(record) > max_bytes):
            calls.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        calls.append(current)
    return calls


def hour_prefixes(since: datetime, until: datetime) -> list[str]:
    """The arrival-hour prefixes (`events/YYYY/MM/DD/HH/`) that can hold objects of events
    received in [since, until]."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    out: list[str] = []
    hour = start
    while hour <= end:
        out.append(f"{ARCHIVE_PREFIX}{hour:%Y/%m/%d/%H}/")
        hour += timedelta(hours=1)
    return out


# The view every reader queries. `archive_raw` is the raw rows (the Glue table on Athena,
# a table loaded from the objects in DuckDB); the dialect here is DuckDB's, transpiled for
# Athena with sqlglot. One row per message_id: the earliest received copy wins (ties by
# user, so the choice is deterministic).
# A predicate over `events`: what users and their SDKs sent (what processing folded),
# leaving out what nudge archives about itself: exposures (`exposure-<action id>`),
# message outcomes, SES events, reads, unsubscribes and tracking-plan violations, all
# marked `context.library.name = 'nudge'` (nudge.domain.outcomes, nudge.domain.tracking)
SENT_BY_USERS_SQL = (
    "(coalesce(json_extract_string(context, '$.library.name'), '') <> 'nudge' "
    "AND message_id NOT LIKE 'exposure-%')"
)

EVENTS_VIEW_SQL = """
SELECT message_id, type, event, user_id, anonymous_id,
       CAST("timestamp" AS TIMESTAMP) AS "timestamp",
       CAST(received_at AS TIMESTAMP) AS received_at,
       properties, traits, context, COALESCE(historical, FALSE) AS historical,
       previous_id, group_id
FROM archive_raw
QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY received_at, user_id) = 1
"""


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return utc(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _as_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value) if value else {}
    return value if isinstance(value, dict) else {}


def event_from_row(row: dict[str, Any]) -> Event:
    """An archived event back as the processing path's Event (for the backtest): the
    row of the view `events` or a raw archive line. `user_id` is the profile it folded
    into, so the replay folds it there too."""
    return Event(
        type=row["type"],
        message_id=row["message_id"],
        user_id=row.get("user_id"),
        anonymous_id=row.get("anonymous_id"),
        event=row.get("event"),
        properties=_as_object(row.get("properties")),
        traits=_as_object(row.get("traits")),
        context=_as_object(row.get("context")),
        timestamp=_parse_time(row["timestamp"]),
        received_at=_parse_time(row["received_at"]),
        previous_id=row.get("previous_id"),
        group_id=row.get("group_id"),
        historical=bool(row.get("historical")),
    )
