"""Cohort retention and ordered funnels (nudge.domain.cohorts): the SQL run by DuckDB over
a generated archive (hundreds of users over months, /v1/import history, events received
out of order, duplicated message ids, repeated events, steps skipped or done out of order,
exposures to two experiments, nudge's own sending events) against an independent pandas
computation of the definitions in docs/measurement.md; the same SQL written for Athena
parses; bad parameters are 400s naming the parameter."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pytest
import sqlglot
from nudge.adapters.query_athena import AthenaQueryEngine
from nudge.domain.archive import COLUMN_NAMES, EVENTS_VIEW_SQL, iso_ms
from nudge.domain.cohorts import (
    SYSTEM_EVENTS,
    CohortQuery,
    FunnelQuery,
    cohort_report,
    cohorts_sql,
    experiments_sql,
    funnel_by_user_sql,
    funnel_by_variant_sql,
    funnel_report,
    funnel_sql,
    period_label,
    period_start,
)
from nudge.domain.errors import ValidationFailedError
from nudge.domain.query import QueryResult

NOW = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)  # a Wednesday of 2026-W25
FUNNEL = ("Product Viewed", "Product Added", "Order Completed")
EXPERIMENTS = {"cart_holdout": ("holdout", "reminder"), "subject_test": ("a", "b", "c")}
SEGMENTS = ("frequent buyers", "cart abandoners", "casual browsers", None)


# ---- the archive ------------------------------------------------------------------------


def raw_row(
    message_id: str,
    user: str | None,
    event: str | None,
    at: datetime,
    received: datetime,
    *,
    type_: str = "track",
    historical: bool = False,
    **props: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row.update(
        v=1,
        message_id=message_id,
        type=type_,
        event=event,
        user_id=user,
        timestamp=iso_ms(at),
        received_at=iso_ms(received),
        properties=json.dumps(props),
        traits="{}",
        context="{}",
        historical=historical,
    )
    return row


def generate(seed: int = 7, users: int = 480) -> list[dict[str, Any]]:
    """Raw archive lines (duplicates included), in arrival order shuffled."""
    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    mid = itertools.count()
    start_range = (datetime(2025, 12, 27, tzinfo=UTC), datetime(2026, 6, 16, tzinfo=UTC))
    span = (start_range[1] - start_range[0]).total_seconds()
    names = ["Page Viewed", "Song Played", "Cart Viewed", *FUNNEL]

    def add(user: str, event: str | None, at: datetime, *, type_: str = "track", **kw: Any) -> None:
        historical = kw.pop("historical", False)
        # imports arrive long after they happened; live events within minutes, in any order
        received = NOW - timedelta(hours=rnd.randint(1, 48)) if historical else at
        received += timedelta(seconds=rnd.randint(0, 900))
        received = min(received, NOW)
        row = raw_row(
            f"m{next(mid):06d}", user, event, at, received, type_=type_, historical=historical, **kw
        )
        rows.append(row)
        if rnd.random() < 0.04:  # archived twice (a retried batch), received later
            again = dict(row)
            again["received_at"] = iso_ms(min(NOW, received + timedelta(minutes=5)))
            rows.append(again)

    for i in range(users):
        user = f"u{i:04d}"
        first = start_range[0] + timedelta(seconds=rnd.random() * span)
        first = first.replace(microsecond=0)
        imported = rnd.random() < 0.3
        if rnd.random() < 0.1:  # an exposure before any activity does not start a cohort
            exp = rnd.choice(sorted(EXPERIMENTS))
            add(
                user,
                "Experiment Viewed",
                first - timedelta(days=rnd.randint(1, 40)),
                experiment_id=exp,
                variation_id=rnd.choice(EXPERIMENTS[exp]),
                variation_name=rnd.choice(EXPERIMENTS[exp]),
            )
        add(user, None, first, type_="identify", historical=imported)
        t = first
        while t < NOW and rnd.random() < 0.93:
            for _ in range(rnd.randint(1, 4)):
                name = rnd.choice(names)
                kind = "page" if name == "Page Viewed" else "track"
                add(user, name, t, type_=kind, historical=imported and t < NOW - timedelta(days=30))
                if rnd.random() < 0.15:  # the same instant, another event (ties)
                    add(user, rnd.choice(FUNNEL), t)
                t += timedelta(seconds=rnd.choice([0, 1, 30, 600, 3600, 86400]))
            if rnd.random() < 0.5:  # a funnel attempt: steps skipped, repeated, reordered
                steps = list(FUNNEL)
                if rnd.random() < 0.3:
                    rnd.shuffle(steps)
                if rnd.random() < 0.4:
                    steps = steps[: rnd.randint(1, 3)]
                if rnd.random() < 0.2:
                    steps.insert(rnd.randint(0, len(steps)), rnd.choice(FUNNEL))
                for name in steps:
                    add(user, name, t, product_id="p1")
                    t += timedelta(seconds=rnd.choice([0, 60, 3600, 86400, 2 * 86400, 5 * 86400]))
            if rnd.random() < 0.15:
                exp = rnd.choice(sorted(EXPERIMENTS))
                variant = rnd.choice(EXPERIMENTS[exp])
                add(
                    user,
                    "Experiment Viewed",
                    t,
                    experiment_id=exp,
                    variation_id=variant,
                    variation_name=variant,
                )
                add(user, "Email Delivered", t + timedelta(seconds=5))
            t += timedelta(seconds=rnd.randint(3600, 40 * 86400))
    # someone nudge only wrote about, and an event with no user
    add("ghost", "Email Delivered", datetime(2026, 2, 2, tzinfo=UTC))
    add("ghost", "Experiment Viewed", datetime(2026, 2, 3, tzinfo=UTC), experiment_id="x")
    rows = [r for r in rows if r["timestamp"] <= iso_ms(NOW)]
    rows.append(raw_row("no-user", None, "Page Viewed", NOW, NOW, type_="page"))
    rnd.shuffle(rows)
    return rows


class DuckEngine:
    """The QueryEngine port over an in-memory DuckDB holding `archive_raw` and the view
    `events` the real engine puts over it."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        frame = pd.DataFrame(list(rows), columns=list(COLUMN_NAMES))  # noqa: F841 (read by SQL)
        self.con.execute(
            "CREATE TABLE archive_raw AS SELECT CAST(v AS INTEGER) AS v, message_id, type,"
            " event, user_id, anonymous_id, timestamp, received_at, CAST(properties AS JSON)"
            " AS properties, CAST(traits AS JSON) AS traits, CAST(context AS JSON) AS context,"
            " CAST(historical AS BOOLEAN) AS historical, previous_id, group_id FROM frame"
        )
        self.con.execute(f"CREATE VIEW events AS {EVENTS_VIEW_SQL}")
        self.sql: list[str] = []

    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        self.sql.append(sql)
        cur = self.con.execute(sql)
        return QueryResult([d[0] for d in cur.description], [list(r) for r in cur.fetchall()])


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return generate()


@pytest.fixture(scope="module")
def engine(rows: list[dict[str, Any]]) -> DuckEngine:
    return DuckEngine(rows)


@pytest.fixture(scope="module")
def events(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The view `events`, computed by pandas: one row per message_id, the earliest
    received (ties by user), with parsed times."""
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df["timestamp"], utc=True)
    df["rec"] = pd.to_datetime(df["received_at"], utc=True)
    df = df.sort_values(["rec", "user_id"]).drop_duplicates("message_id", keep="first")
    return df[df["user_id"].notna()].copy()


# ---- pandas: the definitions, independently ----------------------------------------------


def pandas_cohorts(
    events: pd.DataFrame, period: str, event: str | None, now: datetime = NOW
) -> list[dict[str, Any]]:
    """The report's cohorts from the view's rows (columns user_id, event, ts in UTC)."""
    freq = "W-SUN" if period == "week" else "M"  # weeks ending Sunday: Monday first
    activity = events[~events["event"].isin(SYSTEM_EVENTS)].copy()
    naive = activity["ts"].dt.tz_localize(None)
    activity["p"] = naive.dt.to_period(freq)
    cohort = activity.groupby("user_id")["p"].min().rename("cohort")
    if event is None:
        active = activity[["user_id", "p"]]
    else:
        named = events[events["event"] == event].copy()
        named["p"] = named["ts"].dt.tz_localize(None).dt.to_period(freq)
        active = named[["user_id", "p"]]
    active = active.drop_duplicates().join(cohort, on="user_id", how="inner")
    current = pd.Timestamp(now.astimezone(UTC).replace(tzinfo=None)).to_period(freq)
    out = []
    for c, members in cohort.groupby(cohort):
        size = len(members)
        length = (current - c).n + 1
        mine = active[active["cohort"] == c]
        counts = mine.assign(k=(mine["p"] - c).map(lambda o: o.n)).groupby("k")["user_id"].nunique()
        start = c.start_time.date()
        label = (
            f"{start.isocalendar().year:04d}-W{start.isocalendar().week:02d}"
            if period == "week"
            else f"{start.year:04d}-{start.month:02d}"  # ISO 8601: 0662-05, as the report
        )
        out.append(
            {
                "cohort": label,
                "size": size,
                "retention": [1.0] + [int(counts.get(k, 0)) / size for k in range(1, length)],
            }
        )
    return out


def furthest(names: list[str], times: list[pd.Timestamp], steps: Sequence[str], within: int) -> int:
    """The furthest step reached, by exhaustive search over every subsequence (no greedy
    shortcut): 0 when the user never did step 1."""
    window = pd.Timedelta(seconds=within)
    best = 0

    def search(pos: int, k: int, deadline: pd.Timestamp) -> int:
        if k == len(steps):
            return k
        got = k
        for j in range(pos + 1, len(names)):
            if times[j] > deadline:
                break
            if names[j] == steps[k]:
                got = max(got, search(j, k + 1, deadline))
                if got == len(steps):
                    break
        return got

    for i, name in enumerate(names):
        if name == steps[0]:
            best = max(best, search(i, 1, times[i] + window))
    return best


def pandas_funnel_depths(events: pd.DataFrame, steps: Sequence[str], within: int) -> pd.Series:
    """Users (index) -> furthest step, for users who did step 1."""
    rank = {n: i for i, n in reversed(list(enumerate(steps)))}
    mine = events[events["event"].isin(steps)].copy()
    mine["rank"] = mine["event"].map(rank)
    mine = mine.sort_values(["user_id", "ts", "rank", "message_id"])
    depth = {
        user: furthest(list(g["event"]), list(g["ts"]), steps, within)
        for user, g in mine.groupby("user_id")
    }
    s = pd.Series(depth, dtype=int)
    return s[s > 0]


def pandas_steps(depths: pd.Series, steps: Sequence[str]) -> list[dict[str, Any]]:
    users = [int((depths >= k).sum()) for k in range(1, len(steps) + 1)]
    return [
        {
            "event": name,
            "users": n,
            "conversion": n / users[0] if users[0] else None,
            "drop_off": None if k == 0 or not users[k - 1] else (users[k - 1] - n) / users[k - 1],
        }
        for k, (name, n) in enumerate(zip(steps, users, strict=True))
    ]


def first_variant(events: pd.DataFrame, experiment: str) -> pd.Series:
    exposures = events[events["event"] == "Experiment Viewed"].copy()
    props = exposures["properties"].map(json.loads)
    exposures["exp"] = props.map(lambda p: p.get("experiment_id"))
    exposures["variant"] = props.map(lambda p: p.get("variation_name"))
    exposures = exposures[exposures["exp"] == experiment].sort_values(["ts", "message_id"])
    return exposures.drop_duplicates("user_id").set_index("user_id")["variant"]


def assert_same_steps(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [(s["event"], s["users"]) for s in got] == [(s["event"], s["users"]) for s in want]
    for g, w in zip(got, want, strict=True):
        for key in ("conversion", "drop_off"):
            assert (g[key] is None) == (w[key] is None), (key, g, w)
            if w[key] is not None:
                assert g[key] == pytest.approx(w[key])


# ---- cohorts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "event"),
    [("week", None), ("month", None), ("week", "Order Completed"), ("month", "Page Viewed")],
)
def test_cohorts_match_pandas(
    engine: DuckEngine, events: pd.DataFrame, period: str, event: str | None
) -> None:
    query = CohortQuery.from_params({"period": period, **({"event": event} if event else {})})
    report = cohort_report(query, engine, now=NOW)
    want = pandas_cohorts(events, period, event)
    got = [{k: c[k] for k in ("cohort", "size", "retention")} for c in report["cohorts"]]
    assert [c["cohort"] for c in got] == [c["cohort"] for c in want]
    assert [c["size"] for c in got] == [c["size"] for c in want]
    for g, w in zip(got, want, strict=True):
        assert g["retention"] == pytest.approx(w["retention"]), g["cohort"]
    assert report["period"] == period
    # the data has what the test claims: months of cohorts, older ones with longer lists
    assert len(got) >= (20 if period == "week" else 6)
    assert len(got[0]["retention"]) > len(got[-1]["retention"]) == 1
    assert (
        sum(c["size"] for c in got)
        == events[~events["event"].isin(SYSTEM_EVENTS)]["user_id"].nunique()
    )


def test_a_cohort_starts_with_the_users_first_activity_not_with_what_nudge_wrote(
    engine: DuckEngine, events: pd.DataFrame
) -> None:
    report = cohort_report(CohortQuery(), engine, now=NOW)
    assert "ghost" in set(events["user_id"])  # only nudge's own events: in no cohort
    sizes = sum(c["size"] for c in report["cohorts"])
    assert sizes == events[~events["event"].isin(SYSTEM_EVENTS)]["user_id"].nunique()
    assert report["current"] == "2026-W25"
    # the ISO week of 2025-12-29 belongs to 2026: its users are 2026-W01, not 2025-W53
    assert report["cohorts"][0]["cohort"] in ("2025-W52", "2026-W01")
    assert report["cohorts"][0]["retained"][0] == report["cohorts"][0]["size"]


def test_period_labels_follow_iso_weeks_and_months() -> None:
    assert period_label(period_start(datetime(2025, 12, 31, 23, tzinfo=UTC), "week"), "week") == (
        "2026-W01"
    )
    assert period_start(datetime(2026, 1, 18, tzinfo=UTC), "week").isoformat() == "2026-01-12"
    assert period_label(period_start(datetime(2026, 1, 18, tzinfo=UTC), "week"), "week") == (
        "2026-W03"
    )
    assert period_label(period_start(datetime(2026, 1, 31, tzinfo=UTC), "month"), "month") == (
        "2026-01"
    )
    assert period_label(period_start(datetime(2027, 1, 3, tzinfo=UTC), "week"), "week") == (
        "2026-W53"
    )


# ---- funnels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "within"),
    [
        (FUNNEL, "2d"),
        (FUNNEL, "1h"),
        (("Page Viewed", "Product Added"), "7d"),
        (("Product Viewed", "Product Viewed", "Order Completed"), "3d"),
        (("Product Added", "Product Viewed", "Product Added", "Order Completed"), "10d"),
    ],
)
def test_funnel_matches_an_exhaustive_pandas_search(
    engine: DuckEngine, events: pd.DataFrame, steps: tuple[str, ...], within: str
) -> None:
    query = FunnelQuery.from_params({"steps": ",".join(steps), "within": within})
    report = funnel_report(query, engine)
    depths = pandas_funnel_depths(events, steps, query.within_seconds)
    assert_same_steps(report["steps"], pandas_steps(depths, steps))
    assert report["groups"] == {}
    users = [s["users"] for s in report["steps"]]
    assert users[0] > users[-1] > 0  # some convert, some do not
    assert report["steps"][0]["conversion"] == 1.0 and report["steps"][0]["drop_off"] is None


def test_funnel_by_variant_matches_pandas(engine: DuckEngine, events: pd.DataFrame) -> None:
    query = FunnelQuery.from_params(
        {"steps": ",".join(FUNNEL), "within": "3d", "by": "variant", "experiment": "subject_test"}
    )
    report = funnel_report(query, engine)
    depths = pandas_funnel_depths(events, FUNNEL, query.within_seconds)
    variant = first_variant(events, "subject_test").reindex(depths.index).fillna("none")
    assert set(report["groups"]) == set(variant) == {"a", "b", "c", "none"}
    for name, group in report["groups"].items():
        assert_same_steps(group["steps"], pandas_steps(depths[variant == name], FUNNEL))
    assert_same_steps(report["steps"], pandas_steps(depths, FUNNEL))
    assert report["experiment"] == "subject_test"


def test_funnel_by_variant_needs_the_experiment_when_several_were_run(engine: DuckEngine) -> None:
    query = FunnelQuery.from_params({"steps": ",".join(FUNNEL), "by": "variant"})
    with pytest.raises(ValidationFailedError) as err:
        funnel_report(query, engine)
    assert err.value.details == [
        {"parameter": "experiment", "message": "one of: cart_holdout, subject_test, x"}
    ]


def test_funnel_by_variant_takes_the_only_experiment() -> None:
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    rows = [
        raw_row("e1", "u1", "Experiment Viewed", t, t, experiment_id="solo", variation_name="v1"),
        raw_row("a1", "u1", "A", t, t),
        raw_row("b1", "u1", "B", t + timedelta(hours=1), t),
        raw_row("a2", "u2", "A", t, t),
    ]
    report = funnel_report(FunnelQuery(("A", "B"), 86400, "variant"), DuckEngine(rows))
    assert report["experiment"] == "solo"
    assert {k: [s["users"] for s in g["steps"]] for k, g in report["groups"].items()} == {
        "none": [1, 0],
        "v1": [1, 1],
    }


def test_funnel_by_segment_looks_the_segments_up(engine: DuckEngine, events: pd.DataFrame) -> None:
    users = sorted(events["user_id"].unique())
    segment = {u: SEGMENTS[i % len(SEGMENTS)] for i, u in enumerate(users)}
    asked: list[int] = []

    def lookup(ids: Sequence[str]) -> dict[str, str | None]:
        asked.append(len(ids))
        return {u: segment[u] for u in ids if u in segment and u != users[1]}

    query = FunnelQuery.from_params({"steps": ",".join(FUNNEL), "by": "segment"})
    report = funnel_report(query, engine, segments=lookup)
    depths = pandas_funnel_depths(events, FUNNEL, query.within_seconds)
    names = pd.Series({u: segment[u] if u != users[1] else None for u in depths.index})
    names = names.fillna("none")
    assert set(report["groups"]) == set(names)
    for name, group in report["groups"].items():
        assert_same_steps(group["steps"], pandas_steps(depths[names == name], FUNNEL))
    assert sum(asked) == len(depths)


def test_funnel_rules_on_a_small_case() -> None:
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    h = timedelta(hours=1)

    def ev(mid: str, user: str, name: str, at: datetime) -> dict[str, Any]:
        return raw_row(mid, user, name, at, at)

    rows = [
        # u1: A, B, C in order within 2 h: all three
        ev("1", "u1", "A", t),
        ev("2", "u1", "B", t + h),
        ev("3", "u1", "C", t + 2 * h),
        # u2: C before B: A and B only
        ev("4", "u2", "A", t),
        ev("5", "u2", "C", t + h),
        ev("6", "u2", "B", t + 2 * h),
        # u3: the first A leads nowhere in time, a later one does
        ev("7", "u3", "A", t),
        ev("8", "u3", "A", t + 10 * h),
        ev("9", "u3", "B", t + 11 * h),
        ev("10", "u3", "C", t + 12 * h),
        # u4: all at the same instant, written in reverse: they count in step order
        ev("13", "u4", "C", t),
        ev("12", "u4", "B", t),
        ev("11", "u4", "A", t),
        # u5: B and C exactly at the window's end count; u6: one second later does not
        ev("14", "u5", "A", t),
        ev("15", "u5", "B", t + 3 * h),
        ev("16", "u5", "C", t + 3 * h),
        ev("17", "u6", "A", t),
        ev("18", "u6", "B", t + 3 * h + timedelta(seconds=1)),
        # u7: no A at all
        ev("19", "u7", "B", t),
        ev("20", "u7", "C", t),
    ]
    report = funnel_report(FunnelQuery(("A", "B", "C"), 3 * 3600), DuckEngine(rows))
    assert [s["users"] for s in report["steps"]] == [6, 5, 4]
    assert [s["conversion"] for s in report["steps"]] == [1.0, 5 / 6, 4 / 6]
    assert report["steps"][1]["drop_off"] == pytest.approx(1 / 6)
    assert report["steps"][2]["drop_off"] == pytest.approx(1 / 5)
    assert report["within"] == "3h"


def test_an_empty_archive_gives_empty_reports() -> None:
    engine = DuckEngine([])
    assert cohort_report(CohortQuery("month"), engine, now=NOW)["cohorts"] == []
    report = funnel_report(FunnelQuery(("A", "B")), engine)
    assert [(s["users"], s["conversion"], s["drop_off"]) for s in report["steps"]] == [
        (0, None, None),
        (0, None, None),
    ]


# ---- parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"period": "day"}, "period"),
        ({"period": "week", "event": " "}, "event"),
    ],
)
def test_bad_cohort_parameters(params: dict[str, str], parameter: str) -> None:
    with pytest.raises(ValidationFailedError) as err:
        CohortQuery.from_params(params)
    assert [d["parameter"] for d in err.value.details] == [parameter]


@pytest.mark.parametrize(
    ("params", "parameters"),
    [
        ({}, ["steps"]),
        ({"steps": "A"}, ["steps"]),
        ({"steps": "A,,B"}, ["steps"]),
        ({"steps": ",".join("ABCDEFGHIJK")}, ["steps"]),
        ({"steps": "A,B", "within": "7"}, ["within"]),
        ({"steps": "A,B", "within": "0d"}, ["within"]),
        ({"steps": "A,B", "within": "400d"}, ["within"]),
        ({"steps": "A,B", "by": "country"}, ["by"]),
        ({"steps": "A,B", "experiment": "x"}, ["experiment"]),
        ({"steps": "A", "within": "soon", "by": "x"}, ["steps", "within", "by"]),
    ],
)
def test_bad_funnel_parameters(params: dict[str, str], parameters: list[str]) -> None:
    with pytest.raises(ValidationFailedError) as err:
        FunnelQuery.from_params(params)
    assert [d["parameter"] for d in err.value.details] == parameters


def test_funnel_parameters() -> None:
    q = FunnelQuery.from_params({"steps": "Page Viewed, Screen Viewed ,Order Completed"})
    assert q.steps == ("Page Viewed", "Screen Viewed", "Order Completed")
    assert q.within_seconds == 7 * 86400 and q.by is None
    assert FunnelQuery.from_params({"steps": "A,A", "within": "15m"}).within_seconds == 900


# ---- Athena ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        cohorts_sql("week"),
        cohorts_sql("month", "Bob's Order"),
        funnel_sql(FUNNEL, 3600),
        funnel_by_user_sql(("A", "B", "A"), 60),
        funnel_by_variant_sql(FUNNEL, 86400, "cart_holdout"),
        experiments_sql(),
    ],
)
def test_the_sql_is_written_for_athena(sql: str) -> None:
    engine = AthenaQueryEngine("wg", "nudge", "events", None)  # type: ignore[arg-type]
    athena = engine.athena_sql(sql)
    parsed = sqlglot.parse_one(athena, read="athena")  # Trino's dialect: it parses back
    assert parsed.find(sqlglot.exp.Qualify) is None  # Athena has no QUALIFY
    assert "json_extract_string" not in athena.lower()
    assert "Bob''s Order" in athena or "Bob" not in sql
