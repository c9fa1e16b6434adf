"""The event archive's format (nudge.domain.archive): the archived row and line, how lines
are packed into Firehose records and calls, the arrival-hour prefixes, and the view
`events` every reader puts over the raw rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pytest
from nudge.domain.archive import (
    ARCHIVE_COLUMNS,
    ARCHIVE_VERSION,
    COLUMN_NAMES,
    EVENTS_VIEW_SQL,
    ArchiveRecord,
    archive_line,
    batch_records,
    hour_prefixes,
    iso_ms,
    pack_records,
)
from nudge.domain.events import Event

AT = datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)


def event(**fields: object) -> Event:
    base: dict[str, object] = {
        "type": "track",
        "message_id": "m1",
        "user_id": "u1",
        "event": "Product Added",
        "properties": {"price": 89},
        "timestamp": AT,
        "received_at": AT + timedelta(seconds=1),
    }
    base.update(fields)
    return Event.model_validate(base)


def row_of(**fields: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(COLUMN_NAMES)
    row.update(v=1, message_id="m1", properties={}, traits={}, context={})
    row.update(fields)
    return row


# ---- ArchiveRecord / archive_line ------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"type": "identify", "event": None, "traits": {"email": "a@example.com"}},
        {"type": "alias", "event": None, "previous_id": "anon-1"},
        {"type": "group", "event": None, "group_id": "g1"},
        {"type": "page", "event": "Page Viewed", "user_id": None, "anonymous_id": "a1"},
    ],
)
def test_archived_row_always_has_every_column(fields: dict[str, object]) -> None:
    record = ArchiveRecord.of(event(**fields), "u1")

    assert tuple(ArchiveRecord.model_fields) == COLUMN_NAMES  # the Glue and DuckDB columns
    assert record.v == 1
    assert record.user_id == "u1"  # the profile it folded into, not necessarily the sent one
    line = json.loads(record.line())
    assert tuple(line) == COLUMN_NAMES
    assert ArchiveRecord.from_line(record.line()) == record


def test_archived_times_are_utc_milliseconds_with_z() -> None:
    record = ArchiveRecord.of(
        event(
            timestamp=datetime(2026, 3, 2, 13, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
        ),
        "u1",
    )

    assert record.timestamp == "2026-03-02T12:00:00.999Z"
    assert record.received_at == "2026-03-02T12:00:01.123Z"
    assert iso_ms(datetime(2026, 3, 2, 12, 0)) == "2026-03-02T12:00:00.000Z"  # naive is UTC


def test_line_is_one_json_line_even_with_newlines_in_values() -> None:
    line = archive_line(row_of(properties={"note": "a\nb\r\nc\u2028d"}))

    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line)["properties"]["note"] == "a\nb\r\nc\u2028d"


def test_non_finite_numbers_become_null_anywhere() -> None:
    line = archive_line(
        row_of(properties={"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf")}})
    )

    assert json.loads(line)["properties"] == {"a": None, "b": [1.5, None], "c": {"d": None}}


def test_lone_surrogate_does_not_break_the_line() -> None:
    line = archive_line(row_of(properties={"name": "a\udc80b", "emoji": "\U0001f600"}))

    text = line.decode("utf-8")  # valid UTF-8
    assert json.loads(text)["properties"] == {"name": "a\ufffdb", "emoji": "\U0001f600"}
    # DuckDB's reader rejects a lone surrogate even escaped; this line it accepts
    con = duckdb.connect()
    assert con.execute("SELECT json_valid(?)", [text]).fetchone() == (True,)
    assert con.execute("SELECT json_extract_string(?, '$.properties.name')", [text]).fetchone() == (
        "a\ufffdb",
    )


def test_a_record_s_line_is_archive_line_s_even_for_what_pydantic_cannot_encode() -> None:
    for props in ({"a": float("nan"), "b": [float("inf")]}, {"name": "a\udc80b"}):
        record = ArchiveRecord.of(event(properties=props), "u1")
        assert record.line() == archive_line(record.model_dump())
    odd = ArchiveRecord.of(event(properties={"name": "a\udc80b"}), "u1")
    assert ArchiveRecord.from_line(odd.line()).properties == {"name": "a\ufffdb"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"v": 2, "message_id": "m1", "type": "track"}', "unknown archive record version 2"),
        (b'{"v": 2, "type": "track", "future": {}}', "unknown archive record version 2"),
        (b'{"v": 1, "message_id": "m1", "type": "track"}', "timestamp: Field required"),
        (b'{"message_id": "m1"}', "v: Field required"),
        (b"not json", "Invalid JSON"),
    ],
)
def test_a_line_that_is_not_a_record_of_this_version_is_a_value_error(
    line: bytes, reason: str
) -> None:
    assert ARCHIVE_VERSION == 1
    with pytest.raises(ValueError, match=reason):
        ArchiveRecord.from_line(line)


# ---- pack_records / batch_records -----------------------------------------------------


def lines(n: int, size: int) -> list[bytes]:
    return [(f"{i:06d}".encode() + b"x" * (size - 7)) + b"\n" for i in range(n)]


def test_a_small_batch_is_one_record() -> None:
    ls = lines(10, 200)

    assert pack_records(ls) == [b"".join(ls)]


def test_records_respect_the_size_and_never_split_a_line() -> None:
    ls = lines(100, 300)

    records = pack_records(ls, max_record_bytes=1000)

    assert all(len(r) <= 1000 for r in records)
    assert b"".join(records) == b"".join(ls)
    for r in records:  # whole lines only
        assert r.endswith(b"\n")
        assert all(len(part) == 299 for part in r.split(b"\n")[:-1])
    assert len(records) == 34  # 3 lines of 300 bytes per 1000-byte record


def test_a_line_longer_than_a_record_is_a_record_of_its_own() -> None:
    big = b"y" * 1500 + b"\n"

    records = pack_records([b"a\n", big, b"b\n"], max_record_bytes=1000)

    assert records == [b"a\n", big, b"b\n"]


def test_no_lines_no_records() -> None:
    assert pack_records([]) == []
    assert batch_records([]) == []


def test_batches_hold_at_most_500_records() -> None:
    calls = batch_records([b"r"] * 1201)

    assert [len(c) for c in calls] == [500, 500, 201]


def test_batches_respect_the_byte_limit() -> None:
    records = [b"z" * 1000] * 10

    calls = batch_records(records, max_bytes=3500)

    assert [len(c) for c in calls] == [3, 3, 3, 1]
    assert all(sum(map(len, c)) <= 3500 for c in calls)


# ---- hour_prefixes ---------------------------------------------------------------------


def test_hour_prefixes_cover_every_arrival_hour_of_the_range() -> None:
    since = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
    until = datetime(2026, 3, 2, 1, 5, tzinfo=UTC)

    assert hour_prefixes(since, until) == [
        "events/2026/03/01/22/",
        "events/2026/03/01/23/",
        "events/2026/03/02/00/",
        "events/2026/03/02/01/",
    ]


def test_hour_prefixes_are_utc() -> None:
    paris = timezone(timedelta(hours=1))
    since = datetime(2026, 3, 2, 13, 10, tzinfo=paris)

    assert hour_prefixes(since, since + timedelta(minutes=5)) == ["events/2026/03/02/12/"]


# ---- the view `events` -------------------------------------------------------------------


def raw_table(rows: list[dict[str, object]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE archive_raw (" + ", ".join(f'"{c}" {t}' for c, t, _ in ARCHIVE_COLUMNS) + ")"
    )
    for r in rows:
        values = [json.dumps(r[c]) if t == "JSON" else r[c] for c, t, _ in ARCHIVE_COLUMNS]
        con.execute(f"INSERT INTO archive_raw VALUES ({', '.join('?' * len(values))})", values)
    con.execute(f"CREATE VIEW events AS {EVENTS_VIEW_SQL}")
    return con


def test_view_keeps_one_row_per_message_id_the_earliest_received() -> None:
    con = raw_table(
        [
            row_of(
                message_id="m1",
                event="A",
                user_id="u1",
                timestamp="2026-03-02T12:00:00.000Z",
                received_at="2026-03-02T12:00:05.000Z",
                properties={"copy": 2},
            ),
            row_of(
                message_id="m1",
                event="A",
                user_id="u1",
                timestamp="2026-03-02T12:00:00.000Z",
                received_at="2026-03-02T12:00:01.000Z",
                properties={"copy": 1},
            ),
            row_of(
                message_id="m2",
                event="B",
                user_id="u2",
                timestamp="2026-03-02T12:00:00.000Z",
                received_at="2026-03-02T12:00:02.000Z",
            ),
        ]
    )

    rows = con.execute(
        "SELECT message_id, properties->>'copy', received_at FROM events ORDER BY 1"
    ).fetchall()

    assert rows == [
        ("m1", "1", datetime(2026, 3, 2, 12, 0, 1)),
        ("m2", None, datetime(2026, 3, 2, 12, 0, 2)),
    ]


def test_view_types_its_columns() -> None:
    con = raw_table(
        [
            row_of(
                message_id="m1",
                timestamp="2026-03-02T12:00:00.123Z",
                received_at="2026-03-02T12:00:01.000Z",
                historical=None,
            )
        ]
    )

    described = dict(
        con.execute("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall()
    )

    assert list(described) == [
        "message_id",
        "type",
        "event",
        "user_id",
        "anonymous_id",
        "timestamp",
        "received_at",
        "properties",
        "traits",
        "context",
        "historical",
        "previous_id",
        "group_id",
    ]
    assert described["timestamp"] == "TIMESTAMP"
    assert described["properties"] == "JSON"
    assert con.execute('SELECT "timestamp", historical FROM events').fetchone() == (
        datetime(2026, 3, 2, 12, 0, 0, 123000),
        False,
    )
