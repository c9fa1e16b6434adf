"""SQL over the event archive: the result every query engine returns (the engines are
ports, see nudge.domain.ports.QueryEngine) and the arrival window a time range reads.

Pure: the engines (DuckDB over the S3 objects, Athena over the Glue table) live in
nudge.adapters.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from nudge.domain.clock import utc
from nudge.domain.errors import QueryError, QuerySyntaxError

T = TypeVar("T")

# An event received at t reaches the archive (Firehose's arrival-hour prefix) at t or
# later: after the process function's retries and Firehose's buffering (at most 15 min).
# A range ending at `until` therefore reads this much more of the archive, and filters
# the rows on received_at.
ARRIVAL_SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class QueryResult:
    """Columns and rows of one query, values as Python objects (datetimes, Decimals,
    parsed JSON). `types` holds the engine's type names, one per column (informative:
    DuckDB's `VARCHAR`, `JSON`, ...; Athena's `varchar`, `json`, ...)."""

    columns: list[str]
    rows: list[list[Any]]
    types: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """`{"columns": [...], "rows": [[...], ...]}` with JSON-safe values: datetimes as
        ISO-8601 strings (UTC, `Z`), Decimals as numbers, JSON values parsed."""
        return {
            "columns": list(self.columns),
            "rows": [[json_safe(v) for v in row] for row in self.rows],
        }


def json_safe(value: Any) -> Any:
    """A value json.dumps accepts and a reader understands."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def iso_utc(at: datetime) -> str:
    """ISO-8601 in UTC with `Z`; a naive datetime is UTC (the archive's timestamps are).
    Milliseconds, as archived, unless the value has finer digits."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    spec = "milliseconds" if at.microsecond % 1000 == 0 else "microseconds"
    return at.isoformat(timespec=spec) + "Z"


def iso_duration(delta: timedelta) -> str:
    """ISO-8601 duration (`P1DT2H3M4.5S`); a negative one is prefixed with `-`."""
    sign = "-" if delta < timedelta(0) else ""
    delta = abs(delta)
    seconds = delta.seconds + delta.microseconds / 1e6
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs:.6f}".rstrip("0").rstrip(".")
    return f"{sign}P{delta.days}DT{int(hours)}H{int(minutes)}M{secs_text}S"


def parse_json_value(text: Any) -> Any:
    """A JSON column's value (engines hand them over as text); None stays None and text
    that is not JSON is returned as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def received_bounds(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The range in UTC; QueryError when since is after until."""
    s = utc(since) if since is not None else None
    u = utc(until) if until is not None else None
    if s is not None and u is not None and s > u:
        raise QueryError(f"since ({s.isoformat()}) is after until ({u.isoformat()})")
    return s, u


def single_statement(statements: Sequence[T]) -> T:
    """The one statement a query may be (both engines parse it their own way);
    QuerySyntaxError for none or several."""
    if len(statements) != 1:
        raise QuerySyntaxError(
            f"give exactly one SQL statement (got {len(statements)})"
            if statements
            else "the query is empty"
        )
    return statements[0]
