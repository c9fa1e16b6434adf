"""aggregates_sql against DuckDB in memory, over a small synthetic `events` view."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest
from nudge.domain.archive import EVENTS_VIEW_SQL
from nudge.domain.experiment_report import aggregates_sql, sql_string, variant_aggregates

T0 = datetime(2026, 3, 1, 12, 0, 0)
HOUR = timedelta(hours=1)
EXP = "cart_abandonment_holdout"


def _row(n: int, user: str | None, event: str, at: datetime, **props: Any) -> tuple[Any, ...]:
    stamp = at.isoformat(timespec="milliseconds") + "Z"
    return (f"m{n:04d}", "track", event, user, stamp, stamp, json.dumps(props))


def viewed(n: int, user: str, variant: str, at: datetime, exp: str = EXP) -> tuple[Any, ...]:
    return _row(
        n,
        user,
        "Experiment Viewed",
        at,
        experiment_id=exp,
        variation_id=variant,
        variation_name=variant,
    )


def _con(rows: list[tuple[Any, ...]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE archive_raw (v INTEGER, message_id VARCHAR, type VARCHAR, event VARCHAR,"
        " user_id VARCHAR, anonymous_id VARCHAR, timestamp VARCHAR, received_at VARCHAR,"
        " properties JSON, traits JSON, context JSON, historical BOOLEAN,"
        " previous_id VARCHAR, group_id VARCHAR)"
    )
    for m, t, e, u, ts, rec, props in rows:
        con.execute(
            "INSERT INTO archive_raw (v, message_id, type, event, user_id, timestamp,"
            " received_at, properties) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
            [m, t, e, u, ts, rec, props],
        )
    con.execute(f"CREATE VIEW events AS {EVENTS_VIEW_SQL}")
    return con


def run(rows: list[tuple[Any, ...]], goal: str = "Order Completed", within: int = 72 * 3600):
    con = _con(rows)
    return con.execute(aggregates_sql(EXP, goal, within)).fetchall()


def test_counts_first_exposure_and_window() -> None:
    rows = [
        # u1: reminder, orders 2 h later: converts
        viewed(1, "u1", "reminder", T0),
        _row(2, "u1", "Order Completed", T0 + 2 * HOUR),
        # u2: holdout first, later seen as reminder (kept in holdout); orders at 72 h exactly
        viewed(3, "u2", "holdout", T0),
        viewed(4, "u2", "reminder", T0 + HOUR),
        _row(5, "u2", "Order Completed", T0 + 72 * HOUR),
        # u3: reminder, ordered before the exposure and 73 h after: no conversion
        _row(6, "u3", "Order Completed", T0 - HOUR),
        viewed(7, "u3", "reminder", T0),
        _row(8, "u3", "Order Completed", T0 + 73 * HOUR),
        # u4: reminder, orders twice within the window: one conversion
        viewed(9, "u4", "reminder", T0),
        _row(10, "u4", "Order Completed", T0 + HOUR),
        _row(11, "u4", "Order Completed", T0 + 3 * HOUR),
        # u5: another experiment; u6 another goal event; a duplicate message id
        viewed(12, "u5", "reminder", T0, exp="other"),
        viewed(13, "u6", "holdout", T0),
        _row(14, "u6", "Product Viewed", T0 + HOUR),
        viewed(13, "u6", "holdout", T0),
        # an order at the same instant as the exposure does not count
        viewed(15, "u7", "holdout", T0),
        _row(16, "u7", "Order Completed", T0),
    ]
    assert run(rows) == [("holdout", 3, 1), ("reminder", 3, 2)]
    assert run(rows, within=3600) == [("holdout", 3, 0), ("reminder", 3, 1)]


def test_values_are_escaped() -> None:
    assert sql_string("it's") == "'it''s'"
    with pytest.raises(ValueError):
        sql_string("a\x00b")
    rows = [viewed(1, "u1", "a", T0), _row(2, "u1", "Bob's Order", T0 + HOUR)]
    assert run(rows, goal="Bob's Order") == [("a", 1, 1)]
    assert run(rows, goal="x' OR '1'='1") == [("a", 1, 0)]
    with pytest.raises(ValueError):
        aggregates_sql(EXP, "g", 0)


def test_empty_archive() -> None:
    assert run([]) == []


def test_variant_aggregates() -> None:
    variants = [("holdout", 0.1, True), ("reminder", 0.9, False)]
    out, unknown = variant_aggregates(variants, [("reminder", 9, 2), ("gone", 4, 1)])
    assert [(v.name, v.users, v.conversions, v.holdout) for v in out] == [
        ("holdout", 0, 0, True),
        ("reminder", 9, 2, False),
    ]
    assert unknown == 4


def test_transpiles_for_athena() -> None:
    import sqlglot

    athena = sqlglot.transpile(
        aggregates_sql(EXP, "Order Completed", 60), read="duckdb", write="athena"
    )
    assert "JSON_EXTRACT_SCALAR" in athena[0] and "INTERVAL '60' SECOND" in athena[0]
