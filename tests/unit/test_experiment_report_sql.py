"""aggregates_sql against DuckDB in memory, over a small synthetic `events` view."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pytest
from nudge.domain.archive import EVENTS_VIEW_SQL
from nudge.domain.experiment_report import (
    METRICS,
    PRE_EXPOSURE_DAYS,
    SUMS,
    aggregates_sql,
    sql_string,
    variant_aggregates,
)
from nudge.domain.report_stats import Moments

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


def query(rows: list[tuple[Any, ...]], goal: str = "Order Completed", within: int = 72 * 3600):
    result = _con(rows).execute(aggregates_sql(EXP, goal, within))
    columns = [d[0] for d in result.description]
    return columns, result.fetchall()


def run(rows: list[tuple[Any, ...]], goal: str = "Order Completed", within: int = 72 * 3600):
    """(variant, users, conversions) over all days."""
    columns, out = query(rows, goal, within)
    at = {c: i for i, c in enumerate(columns)}
    totals: dict[str, tuple[int, int]] = {}
    for r in out:
        users, conversions = totals.get(r[0], (0, 0))
        totals[r[0]] = (users + r[at["users"]], conversions + r[at["conversions"]])
    return sorted((v, u, c) for v, (u, c) in totals.items())


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


def _track(n: int, user: str, event: str, at: datetime, **props: Any) -> tuple[Any, ...]:
    return _row(n, user, event, at, **props)


def test_sums_the_outcomes_and_the_pre_exposure_covariates_per_variant_and_day() -> None:
    day = timedelta(days=1)
    before = T0 - (PRE_EXPOSURE_DAYS - 1) * day  # inside the pre-exposure window
    too_early = T0 - (PRE_EXPOSURE_DAYS + 1) * day
    rows = [
        # u1 (reminder, day 1): before: 2 orders (30 + 20), 1 page-like event; after: one
        # order of 50 (converts), an Email Opened (nudge's, not engagement), a view
        _track(1, "u1", "Order Completed", before, revenue=30),
        _track(2, "u1", "Order Completed", T0 - HOUR, revenue="20"),
        _track(3, "u1", "Product Viewed", T0 - 2 * HOUR),
        _track(4, "u1", "Order Completed", too_early, revenue=999),  # outside both windows
        viewed(5, "u1", "reminder", T0),
        _track(6, "u1", "Order Completed", T0 + HOUR, revenue=50),
        _track(7, "u1", "Email Opened", T0 + HOUR),
        _track(8, "u1", "Product Viewed", T0 + 2 * HOUR),
        _track(9, "u1", "Order Completed", T0 + 80 * HOUR, revenue=70),  # after the window
        # u2 (reminder, day 2): nothing before; after: an order without revenue
        viewed(10, "u2", "reminder", T0 + day),
        _track(11, "u2", "Order Completed", T0 + day + HOUR),
        # u3 (holdout, day 1): one view before, nothing after
        _track(12, "u3", "Cart Viewed", T0 - day),
        viewed(13, "u3", "holdout", T0),
    ]
    columns, out = query(rows)
    at = {c: i for i, c in enumerate(columns)}

    def sums(r: tuple[Any, ...], metric: str) -> tuple[float, ...]:
        return tuple(float(r[at[f"{metric}_{s}"]]) for s in SUMS)

    by_key = {(r[0], str(r[1])): r for r in out}
    assert set(by_key) == {
        ("holdout", "2026-03-01"),
        ("reminder", "2026-03-01"),
        ("reminder", "2026-03-02"),
    }
    u1, u2, u3 = (
        by_key[("reminder", "2026-03-01")],
        by_key[("reminder", "2026-03-02")],
        by_key[("holdout", "2026-03-01")],
    )
    # (Σy, Σy², Σx, Σx², Σxy) of one user: y, y², x, x², xy
    assert sums(u1, "conversion") == (1, 1, 2, 4, 2)
    assert sums(u1, "revenue") == (50, 2500, 50, 2500, 2500)
    # engagement counts the user's own events: 3 orders/views before, 2 after (the
    # exposure and the Email Opened are nudge's)
    assert sums(u1, "engagement") == (2, 4, 3, 9, 6)
    assert sums(u2, "conversion") == (1, 1, 0, 0, 0)
    assert sums(u2, "revenue") == (0, 0, 0, 0, 0)
    assert sums(u2, "engagement") == (1, 1, 0, 0, 0)
    assert sums(u3, "conversion") == (0, 0, 0, 0, 0)
    assert sums(u3, "engagement") == (0, 0, 1, 1, 0)
    assert (u1[at["users"]], u1[at["conversions"]]) == (1, 1)


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
    columns = ["variant", "day", "users", "conversions"] + [
        f"{m}_{s}" for m in METRICS for s in SUMS
    ]
    sums = [2, 2, 5, 9, 1] * len(METRICS)
    rows = [
        ["reminder", date(2026, 3, 2), 4, 2, *sums],
        ["reminder", date(2026, 3, 1), 5, 0, *([0] * len(sums))],
        ["gone", date(2026, 3, 1), 4, 1, *sums],
        [None, date(2026, 3, 1), 1, 1, *sums],
    ]
    out, unknown = variant_aggregates(variants, columns, rows)
    assert [(v.name, v.users, v.conversions, v.holdout) for v in out] == [
        ("holdout", 0, 0, True),
        ("reminder", 9, 2, False),
    ]
    assert unknown == 5
    reminder = out[1]
    assert [d.day for d in reminder.daily] == ["2026-03-01", "2026-03-02"]
    assert reminder.daily[1].moments["revenue"] == Moments(4, 2.0, 2.0, 5.0, 9.0, 1.0)
    assert out[0].daily == ()


def test_transpiles_for_athena() -> None:
    import sqlglot

    athena = sqlglot.transpile(
        aggregates_sql(EXP, "Order Completed", 60), read="duckdb", write="athena"
    )
    assert "JSON_EXTRACT_SCALAR" in athena[0] and "INTERVAL '60' SECOND" in athena[0]
