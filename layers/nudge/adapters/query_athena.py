"""SQL over the event archive with Athena, over the archive's Glue table.

The user writes DuckDB's dialect against the view `events`, whichever engine runs it.
Here the statement is transpiled to Athena's (Trino) with sqlglot, and a CTE `events`
written for Athena is put in front of it: the Glue table's rows, the archive's ISO
timestamps parsed, JSON columns parsed, one row per message_id (the earliest received,
as nudge.domain.archive.EVENTS_VIEW_SQL does), and the partition column `dt`
(`yyyy/MM/dd/HH`, the arrival hour) bounded by since / until so that Athena reads only
those partitions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlglot
from botocore.exceptions import BotoCoreError, ClientError
from sqlglot import exp
from sqlglot.errors import SqlglotError

from nudge.domain.archive import iso_ms
from nudge.domain.errors import (
    QueryError,
    QueryForbiddenError,
    QuerySyntaxError,
    QueryTimeoutError,
)
from nudge.domain.query import (
    ARRIVAL_SLACK,
    QueryResult,
    parse_json_value,
    received_bounds,
    single_statement,
)

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_athena.type_defs import RowTypeDef

PAGE_SIZE = 1000  # GetQueryResults' maximum
ERROR_CATEGORY_USER = 2  # AthenaError.ErrorCategory: 1 system, 2 user, 3 other
CTE_ROW_NUMBER = "_nudge_rn"

_INTEGER_TYPES = {"tinyint", "smallint", "integer", "int", "bigint"}
_FLOAT_TYPES = {"double", "float", "real"}


class AthenaQueryEngine:
    """QueryEngine over the Glue table of the archive (nudge.domain.ports.QueryEngine)."""

    def __init__(
        self,
        workgroup: str,
        database: str,
        table: str,
        athena_client: AthenaClient,
        *,
        timeout_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        first_poll_seconds: float = 0.25,
        max_poll_seconds: float = 5.0,
        erased: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        # the digests of erased ids (nudge.adapters.erased): their events are left out
        self.erased = erased
        self.workgroup = workgroup
        self.database = database
        self.table = table
        self.athena = athena_client
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self.first_poll_seconds = first_poll_seconds
        self.max_poll_seconds = max_poll_seconds

    # ---- the port -----------------------------------------------------------------
    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        athena_sql = self.athena_sql(sql, since=since, until=until)
        execution_id = self._start(athena_sql)
        self._wait(execution_id)
        return self._results(execution_id)

    # ---- SQL ----------------------------------------------------------------------
    def athena_sql(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> str:
        """The statement Athena runs: the user's, transpiled, after the `events` CTE."""
        since, until = received_bounds(since, until)
        try:
            statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
        except SqlglotError as err:
            raise QuerySyntaxError(str(err)) from err
        query = single_statement(statements)
        if not isinstance(query, exp.Query):
            raise QueryForbiddenError(
                f"only queries may run on Athena (SELECT, WITH, ...); this is {query.key.upper()}"
            )
        events = sqlglot.parse_one(self.events_cte_sql(since, until), read="athena")
        cte = exp.CTE(this=events, alias=exp.TableAlias(this=exp.to_identifier("events")))
        with_key = "with_" if "with_" in type(query).arg_types else "with"
        existing = query.args.get(with_key)
        if existing is not None:
            existing.set("expressions", [cte, *existing.expressions])
        else:
            query.set(with_key, exp.With(expressions=[cte]))
        try:
            return query.sql(dialect="athena")
        except SqlglotError as err:
            raise QuerySyntaxError(f"cannot write this query for Athena: {err}") from err

    def events_cte_sql(self, since: datetime | None, until: datetime | None) -> str:
        """The view `events` for Athena, over the Glue table (Trino SQL)."""
        where = []
        if since is not None:
            where.append(f"dt >= '{since:%Y/%m/%d/%H}'")
            where.append(f"received_at >= '{iso_ms(since)}'")
        if until is not None:
            where.append(f"dt <= '{(until + ARRIVAL_SLACK).astimezone(UTC):%Y/%m/%d/%H}'")
            where.append(f"received_at <= '{iso_ms(until)}'")
        digests = sorted(d for d in (self.erased() if self.erased else ()) if d.isalnum())
        if digests:
            listed = ", ".join(f"'{d}'" for d in digests)
            for column in ("user_id", "anonymous_id"):
                where.append(
                    f"lower(to_hex(sha256(to_utf8(coalesce({column}, ''))))) NOT IN ({listed})"
                )
        table = f'"{_ident(self.database)}"."{_ident(self.table)}"'
        return f"""
SELECT message_id, type, event, user_id, anonymous_id,
       CAST(from_iso8601_timestamp("timestamp") AS timestamp) AS "timestamp",
       CAST(from_iso8601_timestamp(received_at) AS timestamp) AS received_at,
       json_parse(properties) AS properties, json_parse(traits) AS traits,
       json_parse(context) AS context, COALESCE(historical, false) AS historical,
       previous_id, group_id
FROM (
  SELECT *, row_number() OVER (PARTITION BY message_id ORDER BY received_at, user_id)
         AS {CTE_ROW_NUMBER}
  FROM {table}
  {"WHERE " + " AND ".join(where) if where else ""}
) AS archived
WHERE {CTE_ROW_NUMBER} = 1
"""

    # ---- calls --------------------------------------------------------------------
    def _start(self, sql: str) -> str:
        try:
            resp = self.athena.start_query_execution(
                QueryString=sql,
                WorkGroup=self.workgroup,
                QueryExecutionContext={"Database": self.database},
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "InvalidRequestException":
                raise QuerySyntaxError(_message(err)) from err
            raise QueryError(f"Athena did not start the query: {_message(err)}") from err
        except BotoCoreError as err:
            raise QueryError(f"cannot reach Athena: {err}") from err
        return str(resp["QueryExecutionId"])

    def _wait(self, execution_id: str) -> None:
        deadline = self._monotonic() + self.timeout_seconds
        delay = self.first_poll_seconds
        while True:
            try:
                execution = self.athena.get_query_execution(QueryExecutionId=execution_id)
            except (ClientError, BotoCoreError) as err:
                raise QueryError(f"cannot follow the Athena query: {err}") from err
            status = execution["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return
            if state in ("FAILED", "CANCELLED"):
                reason = status.get("StateChangeReason") or state.lower()
                category = (status.get("AthenaError") or {}).get("ErrorCategory")
                if state == "FAILED" and category == ERROR_CATEGORY_USER:
                    raise QuerySyntaxError(reason)
                raise QueryError(f"the Athena query {state.lower()}: {reason}")
            if self._monotonic() + delay > deadline:
                # it times out either way (and the workgroup's own limit would stop it)
                with contextlib.suppress(ClientError, BotoCoreError):
                    self.athena.stop_query_execution(QueryExecutionId=execution_id)
                raise QueryTimeoutError(
                    f"the Athena query ran longer than {self.timeout_seconds:g} s and was cancelled"
                )
            self._sleep(delay)
            delay = min(delay * 2, self.max_poll_seconds)

    def _results(self, execution_id: str) -> QueryResult:
        columns: list[str] = []
        types: list[str] = []
        rows: list[list[Any]] = []
        token: str | None = None
        first_page = True
        while True:
            kwargs: dict[str, Any] = {"QueryExecutionId": execution_id, "MaxResults": PAGE_SIZE}
            if token:
                kwargs["NextToken"] = token
            try:
                page = self.athena.get_query_results(**kwargs)
            except (ClientError, BotoCoreError) as err:
                raise QueryError(f"cannot read the Athena query's results: {err}") from err
            result_set = page.get("ResultSet", {})
            page_rows = result_set.get("Rows", [])
            if first_page:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [c.get("Label") or c.get("Name", "") for c in info]
                types = [str(c.get("Type", "varchar")).lower() for c in info]
                # a SELECT's first row holds the column labels
                if page_rows and _cells(page_rows[0]) == columns:
                    page_rows = page_rows[1:]
                first_page = False
            for r in page_rows:
                cells = _cells(r)
                rows.append([convert(v, t) for v, t in zip(cells, types, strict=False)])
            token = page.get("NextToken")
            if not token:
                return QueryResult(columns=columns, rows=rows, types=types)


def convert(value: str | None, athena_type: str) -> Any:
    """An Athena result cell (always text, or absent for NULL) as its Python value, by
    the column's type in ResultSetMetadata."""
    if value is None:
        return None
    athena_type = athena_type.lower()
    base = athena_type.replace("(", " ").split(" ", 1)[0]
    try:
        if base in _INTEGER_TYPES:
            return int(value)
        if base in _FLOAT_TYPES:
            return float(value)
        if base == "decimal":
            return Decimal(value)
        if base == "boolean":
            return value.lower() == "true"
        if base == "json":
            return parse_json_value(value)
        if base == "date":
            return date.fromisoformat(value)
        if base == "timestamp" and "with time zone" in athena_type:
            return _timestamp_tz(value)
        if base == "timestamp":
            return datetime.fromisoformat(value)
    except (ValueError, InvalidOperation):
        return value
    return value


def _timestamp_tz(value: str) -> datetime:
    """`2026-03-02 12:00:00.000 UTC` (or a zone name, or an offset)."""
    stamp, _, zone = value.rpartition(" ")
    if not stamp:
        return datetime.fromisoformat(value)
    at = datetime.fromisoformat(stamp)
    if zone in ("UTC", "Z"):
        return at.replace(tzinfo=UTC)
    if zone[:1] in "+-":
        return datetime.fromisoformat(f"{stamp}{zone}")
    try:
        return at.replace(tzinfo=ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return at.replace(tzinfo=UTC)


def _cells(row: RowTypeDef) -> list[str | None]:
    return [d.get("VarCharValue") for d in row.get("Data", [])]


def _ident(name: str) -> str:
    return name.replace('"', '""')


def _message(err: ClientError) -> str:
    error = err.response.get("Error", {})
    return str(error.get("Message") or error.get("Code") or err)
