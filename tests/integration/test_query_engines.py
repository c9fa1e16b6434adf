"""The query engines under moto: DuckDB over archive objects in S3 (gzip and plain, with
duplicates, a local cache) and Athena over the Glue table (the calls it makes, paging and
typed values of queued moto results)."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlglot
from moto import mock_aws
from nudge.adapters.query import query_engine
from nudge.adapters.query_athena import AthenaQueryEngine
from nudge.adapters.query_duckdb import DuckDbQueryEngine
from nudge.domain.archive import COLUMN_NAMES, archive_line
from nudge.domain.clock import SettableClock
from nudge.domain.errors import (
    QueryError,
    QueryForbiddenError,
    QuerySyntaxError,
    QueryTimeoutError,
)
from nudge.settings import QuerySettings

BUCKET = "nudge-archive-test"
REGION = "us-east-1"
NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # the archive's hours 12-14 are recent


def line(
    message_id: str,
    event: str | None,
    user_id: str,
    received_at: str,
    *,
    type_: str = "track",
    properties: dict[str, Any] | None = None,
) -> bytes:
    row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row.update(
        v=1,
        message_id=message_id,
        type=type_,
        event=event,
        user_id=user_id,
        timestamp=received_at,
        received_at=received_at,
        properties=properties or {},
        traits={},
        context={"library": {"name": "test"}},
        historical=False,
    )
    return archive_line(row)


@dataclass
class Archive:
    s3: Any
    gets: list[str] = field(default_factory=list)
    lists: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, key: str, *lines: bytes, gzipped: bool = False) -> None:
        body = b"".join(lines)
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body) if gzipped else body)

    def client(self) -> Any:
        """An S3 client whose GetObject calls are counted (by key)."""
        client = boto3.client("s3", region_name=REGION)

        def count(params: dict[str, Any], **_: Any) -> None:
            with self._lock:
                self.gets.append(params["Key"])

        def listed(params: dict[str, Any], **_: Any) -> None:
            with self._lock:
                self.lists.append(dict(params))

        client.meta.events.register("before-parameter-build.s3.GetObject", count)
        client.meta.events.register("before-parameter-build.s3.ListObjectsV2", listed)
        return client

    def clear(self) -> None:
        self.gets.clear()
        self.lists.clear()

    def engine(self, cache: Path, *, now: datetime = NOW, **kw: Any) -> DuckDbQueryEngine:
        return DuckDbQueryEngine(
            BUCKET,
            cache_dir=cache,
            s3_client_factory=self.client,
            clock=SettableClock(now, frozen=True),
            **kw,
        )


@pytest.fixture
def archive() -> Iterator[Archive]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield Archive(s3)


@pytest.fixture
def filled(archive: Archive) -> Archive:
    """Three hours; m2 archived twice (plain and gzip objects), m5 twice in two hours;
    one object without its final newline, one empty object, one two-member gzip."""
    h12, h13, h14 = "events/2026/03/02/12/", "events/2026/03/02/13/", "events/2026/03/02/14/"
    archive.put(
        h12 + "nudge-archive-1-a",
        line("m1", "Product Added", "u1", "2026-03-02T12:00:01.000Z", properties={"price": 89}),
        line("m2", "Product Added", "u2", "2026-03-02T12:00:02.000Z"),
    )
    archive.put(
        h12 + "nudge-archive-1-b",
        line("m2", "Product Added", "u2", "2026-03-02T12:00:09.000Z"),  # a retried batch
        line("m3", "Order Completed", "u1", "2026-03-02T12:10:00.000Z"),
        gzipped=True,
    )
    archive.put(h12 + "nudge-archive-1-empty")
    archive.put(
        h13 + "nudge-archive-1-c",
        line("m4", None, "u3", "2026-03-02T13:05:00.000Z", type_="identify"),
        line("m5", "Page Viewed", "u3", "2026-03-02T13:59:59.000Z", type_="page").rstrip(b"\n"),
    )
    two_members = gzip.compress(
        line("m5", "Page Viewed", "u3", "2026-03-02T13:59:59.500Z", type_="page")
    ) + gzip.compress(line("m6", "Product Added", "u1", "2026-03-02T14:01:00.000Z"))
    archive.s3.put_object(Bucket=BUCKET, Key=h14 + "nudge-archive-1-d", Body=two_members)
    return archive


# ---- DuckDB ---------------------------------------------------------------------------


def test_counts_are_exact_across_gzip_plain_and_duplicate_objects(
    filled: Archive, tmp_path: Path
) -> None:
    engine = filled.engine(tmp_path)

    by_event = engine.query("select event, count(*) n from events group by 1 order by 2 desc, 1")
    by_user = engine.query("select user_id, count(*) n from events group by 1 order by 1")

    assert by_event.columns == ["event", "n"]
    assert by_event.rows == [
        ["Product Added", 3],
        ["Order Completed", 1],
        ["Page Viewed", 1],
        [None, 1],
    ]
    assert by_user.rows == [["u1", 3], ["u2", 1], ["u3", 2]]


def test_duplicates_keep_the_earliest_received_copy(filled: Archive, tmp_path: Path) -> None:
    result = filled.engine(tmp_path).query(
        "select message_id, received_at from events where message_id in ('m2', 'm5') order by 1"
    )

    assert result.rows == [
        ["m2", datetime(2026, 3, 2, 12, 0, 2)],
        ["m5", datetime(2026, 3, 2, 13, 59, 59)],
    ]


def test_result_to_json_parses_json_columns_and_formats_times(
    filled: Archive, tmp_path: Path
) -> None:
    result = filled.engine(tmp_path).query(
        "select message_id, timestamp, properties, properties->'price' price, "
        "sum((properties->>'price')::decimal(10,2)) over () total "
        "from events where message_id = 'm1'"
    )

    assert result.types[2] == "JSON"
    assert result.to_json() == {
        "columns": ["message_id", "timestamp", "properties", "price", "total"],
        "rows": [["m1", "2026-03-02T12:00:01.000Z", {"price": 89}, 89, 89]],
    }
    json.dumps(result.to_json(), allow_nan=False)


def test_since_reads_only_the_hours_it_needs(filled: Archive, tmp_path: Path) -> None:
    engine = filled.engine(tmp_path)

    result = engine.query(
        "select message_id from events order by 1", since=datetime(2026, 3, 2, 13, 30, tzinfo=UTC)
    )

    assert result.rows == [["m5"], ["m6"]]  # received at or after 13:30
    assert sorted(filled.gets) == [
        "events/2026/03/02/13/nudge-archive-1-c",
        "events/2026/03/02/14/nudge-archive-1-d",
    ]


def test_since_and_until_bound_the_received_range(filled: Archive, tmp_path: Path) -> None:
    engine = filled.engine(tmp_path)

    result = engine.query(
        "select message_id from events order by 1",
        since=datetime(2026, 3, 2, 12, 5, tzinfo=UTC),
        until=datetime(2026, 3, 2, 13, 10, tzinfo=UTC),
    )

    assert result.rows == [["m3"], ["m4"]]
    assert "events/2026/03/02/14/nudge-archive-1-d" in filled.gets  # within the arrival slack


def test_a_warm_cache_downloads_nothing(filled: Archive, tmp_path: Path) -> None:
    first = filled.engine(tmp_path).query("select count(*) from events")
    cold_gets = len(filled.gets)
    filled.gets.clear()

    second_engine = filled.engine(tmp_path)  # a second CLI run, a warm Lambda
    second = second_engine.query("select count(*) from events")

    assert cold_gets == 4  # the empty object is never fetched
    assert filled.gets == []
    assert second_engine.downloaded == 0
    assert first.rows == second.rows == [[6]]
    hour_files = sorted(p.parent.name for p in tmp_path.rglob("*.parquet"))
    assert hour_files == ["2026-03-02-12", "2026-03-02-13", "2026-03-02-14"]  # one per hour


def _counting_loads(engine: DuckDbQueryEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    loads: list[int] = []
    original = engine._load

    def counted(*args: Any) -> None:
        loads.append(1)
        original(*args)

    monkeypatch.setattr(engine, "_load", counted)
    return loads


def test_queries_of_an_unchanged_archive_share_one_load_and_a_new_object_is_seen(
    filled: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given one engine (a warm function) asked several questions in a row
    engine = filled.engine(tmp_path)
    loads = _counting_loads(engine, monkeypatch)
    assert engine.query("select count(*) from events").rows == [[6]]
    assert engine.query("select count(distinct user_id) from events").rows == [[3]]
    assert loads == [1]  # the archive was loaded once for both

    # when an object arrives, the next query loads again and sees it
    filled.put(
        "events/2026/03/02/14/nudge-archive-1-e",
        line("m7", "Order Completed", "u2", "2026-03-02T14:30:00.000Z"),
    )
    assert engine.query("select count(*) from events").rows == [[7]]
    assert loads == [1, 1]
    # and another range is a database of its own, the first one kept
    since = datetime(2026, 3, 2, 14, tzinfo=UTC)
    assert engine.query("select count(*) from events", since=since).rows == [[2]]
    assert engine.query("select count(*) from events").rows == [[7]]
    assert loads == [1, 1, 1]


def test_an_archive_larger_than_the_memory_kept_is_loaded_for_each_query(
    filled: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = filled.engine(tmp_path, kept_bytes=0)
    loads = _counting_loads(engine, monkeypatch)
    for _ in range(2):
        assert engine.query("select count(*) from events").rows == [[6]]
    assert loads == [1, 1]


def test_queries_asked_at_once_load_the_archive_once(
    filled: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = filled.engine(tmp_path)
    loads = _counting_loads(engine, monkeypatch)
    with ThreadPoolExecutor(6) as pool:
        counts = list(
            pool.map(lambda _: engine.query("select count(*) from events").rows, range(6))
        )

    assert counts == [[[6]]] * 6
    assert loads == [1]
    assert len(filled.gets) == 4  # each object downloaded once, not once per query


def test_a_shared_database_stays_locked_for_every_query(filled: Archive, tmp_path: Path) -> None:
    engine = filled.engine(tmp_path)
    engine.query("select 1")
    with pytest.raises(QueryForbiddenError):
        engine.query("select * from read_csv('/etc/passwd')")
    with pytest.raises(QueryForbiddenError):
        engine.query("set enable_external_access = true")
    with pytest.raises(QueryForbiddenError):  # still: the database the queries share
        engine.query("select * from read_csv('/etc/passwd')")
    assert engine.query("select count(*) from events").rows == [[6]]


def test_a_new_object_is_the_only_download(filled: Archive, tmp_path: Path) -> None:
    filled.engine(tmp_path).query("select 1")
    filled.gets.clear()
    filled.put(
        "events/2026/03/02/14/nudge-archive-1-e",
        line("m7", "Order Completed", "u2", "2026-03-02T14:30:00.000Z"),
        line("m1", "Product Added", "u1", "2026-03-02T14:30:00.000Z"),  # an old duplicate
    )

    result = filled.engine(tmp_path).query("select count(*) from events")

    assert filled.gets == ["events/2026/03/02/14/nudge-archive-1-e"]
    assert result.rows == [[7]]
    assert len(list((tmp_path / "v1" / "events" / "2026-03-02-14").glob("*.parquet"))) == 1


def test_removed_objects_and_hours_leave_the_cache(filled: Archive, tmp_path: Path) -> None:
    filled.engine(tmp_path).query("select 1")
    filled.s3.delete_object(Bucket=BUCKET, Key="events/2026/03/02/12/nudge-archive-1-b")
    filled.s3.delete_object(Bucket=BUCKET, Key="events/2026/03/02/14/nudge-archive-1-d")
    filled.gets.clear()

    result = filled.engine(tmp_path).query("select message_id from events order by 1")

    assert result.rows == [["m1"], ["m2"], ["m4"], ["m5"]]
    assert filled.gets == ["events/2026/03/02/12/nudge-archive-1-a"]  # hour 12 rebuilt
    assert not (tmp_path / "v1" / "events" / "2026-03-02-14").exists()


LATER = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)  # every hour of `filled` is sealed


def full_listings(archive: Archive) -> int:
    return sum(1 for p in archive.lists if p["Prefix"] == "events/" and "StartAfter" not in p)


def test_sealed_hours_are_read_from_the_cache_without_listing(
    filled: Archive, tmp_path: Path
) -> None:
    first = filled.engine(tmp_path, now=LATER).query("select count(*) from events")
    assert full_listings(filled) == 1  # listed once, in full
    filled.clear()

    second = filled.engine(tmp_path, now=LATER).query("select count(*) from events")

    assert first.rows == second.rows == [[6]]
    assert filled.gets == []
    # only the recent hours (none of them holds objects) and what is after them
    assert sorted((p["Prefix"], p.get("StartAfter")) for p in filled.lists) == [
        ("events/", "events/2026/03/03/130"),
        *((f"events/2026/03/03/{h:02d}/", None) for h in (10, 11, 12, 13)),
    ]


def test_a_late_object_in_a_sealed_hour_shows_at_the_daily_reverification(
    filled: Archive, tmp_path: Path
) -> None:
    filled.engine(tmp_path, now=LATER).query("select 1")
    filled.put(
        "events/2026/03/02/12/nudge-archive-1-late",
        line("m9", "Order Completed", "u9", "2026-03-02T12:30:00.000Z"),
    )
    count = "select count(*) from events"

    assert filled.engine(tmp_path, now=LATER).query(count).rows == [[6]]  # trusted
    assert filled.engine(tmp_path, now=LATER, refresh=True).query(count).rows == [[7]]
    filled.s3.delete_object(Bucket=BUCKET, Key="events/2026/03/02/12/nudge-archive-1-late")
    later = LATER + timedelta(hours=25)
    assert filled.engine(tmp_path, now=later).query(count).rows == [[6]]


def test_since_over_sealed_hours_downloads_only_its_range(filled: Archive, tmp_path: Path) -> None:
    since = datetime(2026, 3, 2, 13, 30, tzinfo=UTC)
    filled.engine(tmp_path, now=LATER).query("select 1", since=since)
    assert not any("/12/" in key for key in filled.gets)
    filled.clear()

    result = filled.engine(tmp_path, now=LATER).query("select count(*) from events")

    assert result.rows == [[6]]
    assert sorted(filled.gets) == [
        "events/2026/03/02/12/nudge-archive-1-a",
        "events/2026/03/02/12/nudge-archive-1-b",
    ]
    assert full_listings(filled) == 0  # the sealed hours' listing was kept


def test_a_busy_recent_hour_is_relisted_from_its_tail(archive: Archive, tmp_path: Path) -> None:
    hour = "events/2026/03/02/14/"
    for i in range(250):  # local mode: one object per PutRecordBatch call
        archive.put(
            f"{hour}nudge-archive-1-2026-03-02-14-{i:05d}",
            line(f"m{i}", "A", "u1", "2026-03-02T14:00:00.000Z"),
        )
    archive.engine(tmp_path).query("select 1")
    archive.clear()
    archive.put(
        f"{hour}nudge-archive-1-2026-03-02-14-99999",
        line("new", "B", "u2", "2026-03-02T14:20:00.000Z"),
    )

    result = archive.engine(tmp_path).query(
        "select event, count(*) from events group by 1 order by 1"
    )

    assert result.rows == [["A", 250], ["B", 1]]
    assert archive.gets == [f"{hour}nudge-archive-1-2026-03-02-14-99999"]
    (tail,) = [p for p in archive.lists if p["Prefix"] == hour]
    assert tail["StartAfter"] == f"{hour}nudge-archive-1-2026-03-02-14-00150"


def test_hours_ahead_of_our_clock_are_read(filled: Archive, tmp_path: Path) -> None:
    # a local mode whose clock was moved days ahead writes there
    filled.put(
        "events/2026/03/09/10/nudge-archive-1-ahead",
        line("m8", "Order Completed", "u1", "2026-03-09T10:00:00.000Z"),
    )

    result = filled.engine(tmp_path).query("select count(*) from events")

    assert result.rows == [[7]]


def test_an_empty_archive_has_an_empty_events_view(archive: Archive, tmp_path: Path) -> None:
    result = archive.engine(tmp_path).query("select count(*) n, min(timestamp) from events")

    assert result.rows == [[0, None]]


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/passwd')",
        "select * from read_json_auto('/etc/hostname')",
        "select * from glob('/*')",
        "copy (select * from events) to '/tmp/nudge-leak.csv'",
        "copy events to '/tmp/nudge-leak.parquet' (format parquet)",
        "attach '/tmp/nudge-leak.db'",
        "set enable_external_access = true",
        "install httpfs",
        "load httpfs",
        "create table t as select 1",
    ],
)
def test_a_query_cannot_touch_the_host(filled: Archive, tmp_path: Path, sql: str) -> None:
    with pytest.raises(QueryForbiddenError):
        filled.engine(tmp_path).query(sql)
    assert not Path("/tmp/nudge-leak.csv").exists()
    assert not Path("/tmp/nudge-leak.parquet").exists()


def test_a_query_cannot_read_the_cache_files(filled: Archive, tmp_path: Path) -> None:
    engine = filled.engine(tmp_path)
    engine.query("select 1")
    cached = next(tmp_path.rglob("*.parquet"))

    with pytest.raises(QueryForbiddenError, match="Permission Error"):
        engine.query(f"select * from read_parquet('{cached}')")


def test_a_syntax_error_carries_duckdbs_message(filled: Archive, tmp_path: Path) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        filled.engine(tmp_path).query("selec event from events")

    assert 'syntax error at or near "selec"' in err.value.message


@pytest.mark.parametrize(
    "sql", ["select nope from events", "select * from nope", "select 1; select 2", "  "]
)
def test_invalid_queries_are_query_syntax_errors(filled: Archive, tmp_path: Path, sql: str) -> None:
    with pytest.raises(QuerySyntaxError):
        filled.engine(tmp_path).query(sql)


def test_a_failing_query_is_a_query_error(filled: Archive, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="Conversion Error"):
        filled.engine(tmp_path).query("select event::int from events")


def test_a_malformed_object_names_its_key(archive: Archive, tmp_path: Path) -> None:
    archive.put("events/2026/03/02/12/a", line("m1", "A", "u1", "2026-03-02T12:00:00.000Z"))
    archive.put("events/2026/03/02/12/b", b'{"v":1,"message_id":\n')

    with pytest.raises(QueryError, match=r"events/2026/03/02/12/b, line 1"):
        archive.engine(tmp_path).query("select count(*) from events")


def test_a_missing_bucket_is_a_clear_query_error(archive: Archive, tmp_path: Path) -> None:
    engine = DuckDbQueryEngine(
        "no-such-bucket", cache_dir=tmp_path, s3_client_factory=archive.client
    )

    with pytest.raises(QueryError, match=r"no-such-bucket.*does not exist"):
        engine.query("select 1")


def test_a_long_query_times_out(archive: Archive, tmp_path: Path) -> None:
    engine = archive.engine(tmp_path, timeout_seconds=0.2)

    with pytest.raises(QueryTimeoutError):
        engine.query("select count(*) from range(100000000000) a")


def test_the_factory_builds_the_configured_engine(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUDGE_ARCHIVE_BUCKET", BUCKET)
    monkeypatch.setenv("NUDGE_ARCHIVE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NUDGE_QUERY_ENGINE", raising=False)

    engine = query_engine(QuerySettings())  # type: ignore[call-arg]

    assert isinstance(engine, DuckDbQueryEngine)
    assert engine.query("select count(*) from events").rows == [[0]]

    monkeypatch.setenv("NUDGE_QUERY_ENGINE", "athena")
    with pytest.raises(ValueError, match="NUDGE_ATHENA_WORKGROUP"):
        QuerySettings()  # type: ignore[call-arg]
    monkeypatch.setenv("NUDGE_ATHENA_WORKGROUP", "nudge")
    monkeypatch.setenv("NUDGE_GLUE_DATABASE", "nudge")
    athena = query_engine(QuerySettings(), athena_client=object())  # type: ignore[call-arg]
    assert isinstance(athena, AthenaQueryEngine)
    assert athena.table == "events"


# ---- Athena ---------------------------------------------------------------------------

WORKGROUP = "nudge"
DATABASE = "nudge"
TABLE = "events"


@dataclass
class Athena:
    client: Any
    starts: list[dict[str, Any]] = field(default_factory=list)
    result_calls: list[dict[str, Any]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def queue(self, column_info: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
        """What moto returns for the next query (it executes no SQL): the header row
        first, as Athena does for a SELECT."""
        from moto.athena.models import QueryResults, athena_backends
        from moto.core import DEFAULT_ACCOUNT_ID

        def data(cells: list[str | None]) -> dict[str, Any]:
            return {"Data": [{} if c is None else {"VarCharValue": c} for c in cells]}

        info = [
            {
                "Name": n,
                "Label": n,
                "Type": t,
                "CatalogName": "hive",
                "SchemaName": "",
                "TableName": "",
                "Precision": 0,
                "Scale": 0,
                "Nullable": "UNKNOWN",
                "CaseSensitive": False,
            }
            for n, t in column_info
        ]
        header = [n for n, _ in column_info]
        athena_backends[DEFAULT_ACCOUNT_ID][REGION].query_results_queue.append(
            QueryResults(rows=[data(header)] + [data(r) for r in rows], column_info=info)
        )

    def engine(self, **kw: Any) -> AthenaQueryEngine:
        return AthenaQueryEngine(
            WORKGROUP, DATABASE, TABLE, PagedResults(self), sleep=self.sleeps.append, **kw
        )


class PagedResults:
    """The moto client, with GetQueryResults served a few rows per page and a NextToken
    (moto returns every row at once), as Athena pages large results."""

    PAGE = 2

    def __init__(self, athena: Athena) -> None:
        self._athena = athena
        self._client = athena.client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_query_results(self, **kwargs: Any) -> dict[str, Any]:
        self._athena.result_calls.append(dict(kwargs))
        token = kwargs.pop("NextToken", None)
        size = min(kwargs.pop("MaxResults", 1000), self.PAGE)
        full = self._client.get_query_results(**kwargs)
        rows = full["ResultSet"]["Rows"]
        start = int(token or 0)
        page = dict(full)
        page["ResultSet"] = dict(full["ResultSet"], Rows=rows[start : start + size])
        if start + size < len(rows):
            page["NextToken"] = str(start + size)
        return page


@pytest.fixture
def athena() -> Iterator[Athena]:
    from moto.moto_api import state_manager

    with mock_aws():
        # each GetQueryExecution moves the query on one state: QUEUED, RUNNING, SUCCEEDED
        state_manager.set_transition(
            model_name="athena::execution", transition={"progression": "manual", "times": 1}
        )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="athena-results")
        client = boto3.client("athena", region_name=REGION)
        client.create_work_group(
            Name=WORKGROUP,
            Configuration={"ResultConfiguration": {"OutputLocation": "s3://athena-results/"}},
        )
        a = Athena(client)

        def started(params: dict[str, Any], **_: Any) -> None:
            a.starts.append(dict(params))

        client.meta.events.register("before-parameter-build.athena.StartQueryExecution", started)
        try:
            yield a
        finally:
            state_manager.unset_transition("athena::execution")


def test_athena_runs_the_transpiled_query_in_the_workgroup(athena: Athena) -> None:
    athena.queue([("event", "varchar"), ("n", "bigint")], [["Product Added", "3"]])

    result = athena.engine().query(
        "select event, count(*) n from events where properties->>'price' is not null "
        "group by all order by 2 desc",
        since=datetime(2026, 3, 2, 12, 30, tzinfo=UTC),
        until=datetime(2026, 3, 3, 0, 0, tzinfo=UTC),
    )

    assert result.columns == ["event", "n"]
    assert result.rows == [["Product Added", 3]]
    (start,) = athena.starts
    assert start["WorkGroup"] == WORKGROUP
    assert start["QueryExecutionContext"] == {"Database": DATABASE}
    sql = start["QueryString"]
    parsed = sqlglot.parse_one(sql, read="athena")  # Athena's dialect
    tables = {(t.db, t.name) for t in parsed.find_all(sqlglot.exp.Table)}
    assert (DATABASE, TABLE) in tables
    assert "dt >= '2026/03/02/12'" in sql  # partitions pruned on the arrival hour
    assert "dt <= '2026/03/03/01'" in sql  # until plus the arrival slack
    assert "received_at >= '2026-03-02T12:30:00.000Z'" in sql
    assert "FROM_ISO8601_TIMESTAMP" in sql
    assert "ROW_NUMBER() OVER (PARTITION BY message_id ORDER BY received_at, user_id)" in sql
    assert "JSON_EXTRACT_SCALAR(properties, '$.price')" in sql
    assert athena.sleeps == [0.25]  # polled (RUNNING, then SUCCEEDED)


def test_athena_keeps_the_users_own_ctes_after_events(athena: Athena) -> None:
    athena.queue([("n", "bigint")], [["1"]])

    athena.engine().query(
        "with u as (select distinct user_id from events) select count(*) n from u"
    )

    sql = athena.starts[0]["QueryString"]
    parsed = sqlglot.parse_one(sql, read="athena")
    assert [c.alias for c in parsed.args["with_"].expressions] == ["events", "u"]
    assert "dt >=" not in sql and "dt <=" not in sql  # no range, no partition filter


def test_athena_pages_results_and_converts_types(athena: Athena) -> None:
    columns = [
        ("s", "varchar"),
        ("i", "integer"),
        ("b", "bigint"),
        ("d", "double"),
        ("dec", "decimal(10,2)"),
        ("ok", "boolean"),
        ("ts", "timestamp"),
        ("tz", "timestamp with time zone"),
        ("day", "date"),
        ("j", "json"),
    ]
    rows: list[list[str | None]] = [
        [
            "a",
            "1",
            "9007199254740993",
            "1.5",
            "12.50",
            "true",
            "2026-03-02 12:00:01.123",
            "2026-03-02 12:00:01.000 UTC",
            "2026-03-02",
            '{"price":89,"tags":["x"]}',
        ],
        [None, None, None, "NaN", None, "false", None, None, None, None],
        [
            "c",
            "-3",
            "0",
            "Infinity",
            "0.01",
            None,
            "2026-03-02 00:00:00.000",
            "2026-03-02 13:00:00.000 Europe/Paris",
            "2026-01-31",
            "null",
        ],
        ["d", "4", "4", "-0.0", "1", "true", None, None, None, "[1,2]"],
        ["e", "5", "5", "2", "2", "false", None, None, None, '"text"'],
    ]
    athena.queue(columns, rows)

    result = athena.engine().query("select * from events")

    assert result.columns == [n for n, _ in columns]
    assert len(result.rows) == 5  # the header row is not data
    assert len(athena.result_calls) == 3  # 6 rows, 2 per page
    assert [c.get("NextToken") for c in athena.result_calls] == [None, "2", "4"]
    first, second, third = result.rows[:3]
    assert first == [
        "a",
        1,
        9007199254740993,
        1.5,
        Decimal("12.50"),
        True,
        datetime(2026, 3, 2, 12, 0, 1, 123000),
        datetime(2026, 3, 2, 12, 0, 1, tzinfo=UTC),
        date(2026, 3, 2),
        {"price": 89, "tags": ["x"]},
    ]
    assert second[0] is None and second[1] is None and second[5] is False
    assert third[3] == float("inf")
    assert third[7].utcoffset().total_seconds() == 3600
    assert third[9] is None  # JSON null
    assert result.rows[3][9] == [1, 2] and result.rows[4][9] == "text"
    assert json.loads(json.dumps(result.to_json()))["rows"][0][6] == "2026-03-02T12:00:01.123Z"


def test_athena_checks_the_sql_before_calling(athena: Athena) -> None:
    engine = athena.engine()

    with pytest.raises(QuerySyntaxError):
        engine.query("selec 1 from events")
    with pytest.raises(QueryForbiddenError):
        engine.query("drop table events")
    with pytest.raises(QuerySyntaxError, match="exactly one"):
        engine.query("select 1; select 2")
    assert athena.starts == []


class FakeAthena:
    """Athena states moto does not produce: a failed query, one that never ends."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self.stopped: list[str] = []

    def start_query_execution(self, **_: Any) -> dict[str, Any]:
        return {"QueryExecutionId": "q1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        return {"QueryExecution": {"QueryExecutionId": QueryExecutionId, "Status": self.status}}

    def stop_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        self.stopped.append(QueryExecutionId)
        return {}


def test_athena_user_errors_are_query_syntax_errors() -> None:
    fake = FakeAthena(
        {
            "State": "FAILED",
            "StateChangeReason": "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved",
            "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006},
        }
    )

    with pytest.raises(QuerySyntaxError, match="COLUMN_NOT_FOUND"):
        AthenaQueryEngine(WORKGROUP, DATABASE, TABLE, fake).query("select nope from events")


def test_athena_system_failures_are_query_errors() -> None:
    fake = FakeAthena({"State": "FAILED", "AthenaError": {"ErrorCategory": 1}})

    with pytest.raises(QueryError, match="failed") as err:
        AthenaQueryEngine(WORKGROUP, DATABASE, TABLE, fake).query("select 1 from events")
    assert not isinstance(err.value, QuerySyntaxError)


def test_athena_times_out_and_stops_the_query() -> None:
    fake = FakeAthena({"State": "RUNNING"})
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    engine = AthenaQueryEngine(
        WORKGROUP, DATABASE, TABLE, fake, timeout_seconds=10, sleep=sleep, monotonic=lambda: now[0]
    )

    with pytest.raises(QueryTimeoutError):
        engine.query("select 1 from events")
    assert fake.stopped == ["q1"]
    assert now[0] <= 10
    assert slept == [0.25, 0.5, 1.0, 2.0, 4.0]  # backoff, capped at max_poll_seconds
