"""The triggers report (nudge.domain.trigger_report): its SQL on DuckDB against a small
hand-computed archive, its Athena transpilation, the report built from the rows, and the
false-alarm rate of its daily anomaly flags on simulated stable series."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pytest
from nudge.domain.archive import EVENTS_VIEW_SQL
from nudge.domain.trigger_report import (
    DEFAULT_WINDOW_SECONDS,
    TriggerGoal,
    build_report,
    daily_rows,
    period,
    report_sql,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
GOALS = [
    TriggerGoal("cart_abandonment", "Order Completed", DEFAULT_WINDOW_SECONDS),
    TriggerGoal("inactivity_winback", "Order Completed", DEFAULT_WINDOW_SECONDS),
]


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute)


class Archive:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def add(self, mid: str, user: str, event: str, when: datetime, **props: Any) -> None:
        stamp = when.isoformat(timespec="milliseconds") + "Z"
        self.rows.append((mid, "track", event, user, stamp, stamp, json.dumps(props)))

    def outcome(self, action: str, user: str, status: str, when: datetime, trigger: str) -> None:
        self.add(
            f"outcome-{action}-{status}",
            user,
            "Message Outcome",
            when,
            trigger_id=trigger,
            action_id=action,
            status=status,
            channel="email",
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            "CREATE TABLE archive_raw (v INTEGER, message_id VARCHAR, type VARCHAR,"
            " event VARCHAR, user_id VARCHAR, anonymous_id VARCHAR, timestamp VARCHAR,"
            " received_at VARCHAR, properties JSON, traits JSON, context JSON,"
            " historical BOOLEAN, previous_id VARCHAR, group_id VARCHAR)"
        )
        for m, t, e, u, ts, rec, props in self.rows:
            con.execute(
                "INSERT INTO archive_raw (v, message_id, type, event, user_id, timestamp,"
                " received_at, properties) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                [m, t, e, u, ts, rec, props],
            )
        con.execute(f"CREATE VIEW events AS {EVENTS_VIEW_SQL}")
        return con.execute(sql).fetchall()


def fixture() -> Archive:
    a = Archive()
    cart = "cart_abandonment"
    # a1 (u1): sent 03-05 10:00, opened, ordered 2 h later; session: views at 11:00,
    # 11:10, 11:50 and the order at 12:00 -> gaps 600 + (2400: a new session) + 600
    a.outcome("a1", "u1", "sent", at(5, 10), cart)
    a.outcome("a1", "u1", "sent", at(5, 10), cart)  # archived twice: once in the view
    a.add("o1", "u1", "Email Opened", at(5, 11, 5), action_id="a1", trigger_id=cart)
    a.add("v1", "u1", "Product Viewed", at(5, 11))
    a.add("v2", "u1", "Product Viewed", at(5, 11, 10))
    a.add("v3", "u1", "Product Viewed", at(5, 11, 50))
    a.add("c1", "u1", "Order Completed", at(5, 12))
    # a2 (u2): deferred 03-06 22:00, sent 03-07 08:00; orders 73 h later (outside the
    # window, inside the retention days)
    a.outcome("a2", "u2", "deferred", at(6, 22), cart)
    a.outcome("a2", "u2", "sent", at(7, 8), cart)
    a.add("c2", "u2", "Order Completed", at(10, 9))
    # a3 (u3) and a4 (u4): held out; u3 comes back, u4 does not
    a.outcome("a3", "u3", "holdout", at(6, 10), cart)
    a.add("v4", "u3", "Product Viewed", at(8, 10))
    a.outcome("a4", "u4", "holdout", at(8, 10), cart)
    # a5 (u1): capped; a6 (u5): sent before the period (history only)
    a.outcome("a5", "u1", "capped", at(6, 9), cart)
    a.outcome("a6", "u5", "sent", at(20, 9, month=2), cart)
    # a trigger no longer defined, a response linked to no action of ours
    a.outcome("g1", "u1", "sent", at(6, 9), "gone")
    a.add("o2", "u1", "Email Opened", at(6, 9), action_id="zz")
    return a


def test_the_kpis_of_a_hand_computed_archive() -> None:
    start, history, today = period(7, NOW)
    assert (start, today) == (datetime(2026, 3, 4, tzinfo=UTC), date(2026, 3, 10))
    rows = fixture().query(report_sql(GOALS, start=start, history_start=history, now=NOW))

    report = build_report(GOALS, rows, days=7, today=today)

    cart, quiet = report["triggers"]
    assert {k: cart[k] for k in cart if k not in ("daily", "goal")} == {
        "id": "cart_abandonment",
        "fired": 5,  # a1..a5 (a6 is before the period)
        "sent": 2,  # a1, a2 (deferred, then sent)
        "response_rate": 0.5,  # a1 opened
        "conversion_rate": 0.5,  # u1 of u1, u2
        "engagement_seconds": 600.0,  # (1200 + 0) / 2
        "retention_vs_holdout": 0.5,  # 2/2 treated active - 1/2 held out
    }
    days = {d["date"]: d for d in cart["daily"]}
    assert list(days) == [(date(2026, 3, 4) + timedelta(days=i)).isoformat() for i in range(7)]
    assert [(d["fired"], d["sent"], d["conversions"]) for d in cart["daily"]] == [
        (0, 0, 0),
        (1, 1, 1),  # 03-05: a1
        (3, 0, 0),  # 03-06: a2 (deferred), a3, a5
        (0, 1, 0),  # 03-07: a2 sent
        (1, 0, 0),  # 03-08: a4
        (0, 0, 0),
        (0, 0, 0),
    ]
    assert not any(d["anomaly"] for d in cart["daily"])
    assert quiet == {
        "id": "inactivity_winback",
        "fired": 0,
        "sent": 0,
        "response_rate": None,
        "conversion_rate": None,
        "engagement_seconds": None,
        "retention_vs_holdout": None,
        "goal": {"event": "Order Completed", "within_seconds": DEFAULT_WINDOW_SECONDS},
        "daily": [
            {
                "date": (date(2026, 3, 4) + timedelta(days=i)).isoformat(),
                "fired": 0,
                "sent": 0,
                "conversions": 0,
                "anomaly": False,
            }
            for i in range(7)
        ],
    }


def _cart(goal: str, within: int) -> dict[str, Any]:
    start, history, today = period(7, NOW)
    goals = [TriggerGoal("cart_abandonment", goal, within)]
    rows = fixture().query(report_sql(goals, start=start, history_start=history, now=NOW))
    [cart] = build_report(goals, rows, days=7, today=today)["triggers"]
    return cart


def test_the_window_bounds_responses_conversions_and_engagement() -> None:
    # 1 h after the 10:00 send: the view at 11:00 (alone: no gap); the open (11:05) and
    # the order (12:00) are outside
    hour = _cart("Order Completed", 3600)
    assert (hour["response_rate"], hour["conversion_rate"], hour["engagement_seconds"]) == (
        0.0,
        0.0,
        0.0,
    )
    # 70 min: the open, and the views at 11:00 and 11:10 (600 s over 2 sends)
    longer = _cart("Order Completed", 4200)
    assert (longer["response_rate"], longer["conversion_rate"]) == (0.5, 0.0)
    assert longer["engagement_seconds"] == 300.0
    # another goal event: u1's views after the send convert
    assert _cart("Product Viewed", DEFAULT_WINDOW_SECONDS)["conversion_rate"] == 0.5


def test_one_day_reports_today_only_and_history_still_counts() -> None:
    now = datetime(2026, 3, 5, 23, 0, tzinfo=UTC)
    start, history, today = period(1, now)
    rows = fixture().query(report_sql(GOALS, start=start, history_start=history, now=now))
    cart = build_report(GOALS, rows, days=1, today=today)["triggers"][0]
    assert (cart["fired"], cart["sent"]) == (1, 1)
    assert cart["daily"] == [
        {"date": "2026-03-05", "fired": 1, "sent": 1, "conversions": 1, "anomaly": False}
    ]


def test_values_are_quoted_and_the_sql_transpiles_for_athena() -> None:
    import sqlglot

    start, history, _ = period(28, NOW)
    goals = [TriggerGoal("it's", "Bob's Order", 60)]
    sql = report_sql(goals, start=start, history_start=history, now=NOW)
    assert "'it''s'" in sql and "'Bob''s Order'" in sql
    [athena] = sqlglot.transpile(sql, read="duckdb", write="athena")
    sqlglot.parse_one(athena, read="athena")  # Athena's parser takes it back
    assert "TO_UNIXTIME" in athena and "JSON_EXTRACT_SCALAR" in athena
    assert "epoch(" not in athena.lower()
    with pytest.raises(ValueError):
        report_sql([], start=start, history_start=history, now=NOW)


# ---- anomalies ---------------------------------------------------------------------------
START = date(2026, 1, 5)  # a Monday
DAYS = 120
WEEK = np.array([1.3, 1.0, 1.0, 1.0, 1.0, 0.6, 0.6])
LEVELS = (0.5, 2.0, 10.0, 50.0, 2000.0)
SERIES_PER_LEVEL = 60


def _span(n: int = DAYS) -> list[date]:
    return [START + timedelta(days=i) for i in range(n)]


def test_a_stable_trigger_is_rarely_flagged_on_any_of_its_three_series() -> None:
    # given stable series: fired Poisson with a weekly shape, sent 85 % and conversions
    # 8 % of them (binomial)
    rng = np.random.default_rng(33)
    span = _span()
    weekly = WEEK[[d.weekday() for d in span]]
    flagged = judged = 0
    for level in LEVELS:
        for _ in range(SERIES_PER_LEVEL):
            fired = rng.poisson(level * weekly)
            sent = rng.binomial(fired, 0.85)
            conversions = rng.binomial(sent, 0.08)
            series = {
                "fired": dict(zip(span, fired.tolist(), strict=True)),
                "sent": dict(zip(span, sent.tolist(), strict=True)),
                "conversions": dict(zip(span, conversions.tolist(), strict=True)),
            }
            days = daily_rows(span, series, report_from=span[14], today=span[-1] + timedelta(1))
            flagged += sum(d["anomaly"] for d in days)
            judged += len(days)
    rate = flagged / judged
    print(f"\nfalse alarms: {flagged} of {judged} days ({rate:.3%})")
    assert rate <= 0.01


def test_a_drop_to_nothing_is_flagged_but_not_today_s_incomplete_count() -> None:
    span = _span(40)
    fired = {d: 30.0 for d in span}
    fired[span[35]] = 0.0  # a broken tracking day
    fired[span[-1]] = 3.0  # today, not over yet
    days = daily_rows(span, {"fired": fired}, report_from=span[30], today=span[-1])
    assert [d["date"] for d in days if d["anomaly"]] == [span[35].isoformat()]
    fired[span[-1]] = 300.0  # a spike today is flagged at once
    days = daily_rows(span, {"fired": fired}, report_from=span[30], today=span[-1])
    assert [d["date"] for d in days if d["anomaly"]] == [span[35].isoformat(), span[-1].isoformat()]


def test_no_flag_before_the_archive_has_two_weeks_of_history() -> None:
    span = _span(40)
    fired = {d: (0.0 if i < 30 else 50.0) for i, d in enumerate(span)}
    fired[span[-1]] = 500.0
    # the archive starts on day 30: ten days of history, no usual range yet
    days = daily_rows(
        span, {"fired": fired}, report_from=span[30], today=span[-1], history_from=span[30]
    )
    assert not any(d["anomaly"] for d in days)
