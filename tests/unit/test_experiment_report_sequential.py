"""The experiment report's sequential tests, CUPED and Holm (nudge.domain.experiment_report
on nudge.domain.report_stats, plain Python as on Lambda):

- the issue's "done when": 1,000 simulated A/A tests read every day for 30 days cross the
  report's sequential 5 % boundary in at most 5 % of runs, while its fixed-horizon
  p-value read the same way crosses far more often; CUPED reduces the variance of the
  lift estimate on a workload with correlated pre-period behavior;
- the report's JSON: every documented key, `sequential` per variant, `metrics.<name>` with
  `p_value_holm`, `sequential` and `cuped`;
- the whole path from archived events: the SQL's sums over DuckDB give the same numbers
  as scipy / nudge.domain.stats on the users' raw values.

`pytest -s` prints the measured figures (docs/measurement.md quotes them)."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from jsonschema.exceptions import ValidationError
from nudge.domain import stats as S
from nudge.domain.archive import EVENTS_VIEW_SQL
from nudge.domain.experiment_report import (
    METRICS,
    DayAggregate,
    VariantAggregate,
    build_report,
    experiment_report,
    z_test_p,
)
from nudge.domain.query import QueryResult
from nudge.domain.report_stats import Moments, cuped, holm
from nudge.domain.triggers.loader import load_triggers
from openapi_schema_validator import OAS31Validator
from scipy import stats as sps

approx = pytest.approx
ROOT = Path(__file__).resolve().parents[2]
GOAL = {"event": "Order Completed", "within_seconds": 72 * 3600}
RUNS, DAYS, USERS_PER_DAY, RATE, MDE = 1000, 30, 200, 0.10, 0.02


def _days(xs: np.ndarray) -> tuple[DayAggregate, ...]:
    """One arm's conversions per day (USERS_PER_DAY users each) as the SQL's rows."""
    return tuple(
        DayAggregate(f"2026-03-{d + 1:02d}", {"conversion": Moments(USERS_PER_DAY, x, x)})
        for d, x in enumerate(map(float, xs))
    )


def _reports_read_daily(rate_t: float, rate_c: float, seed: int) -> tuple[np.ndarray, ...]:
    """RUNS experiments of two arms, each read at the end of every day on the report's
    cumulative counts: the report's sequential p-value of that day (it includes every
    look so far) and its fixed-horizon z-test p-value of that day."""
    rng = np.random.default_rng(seed)
    xt = rng.binomial(USERS_PER_DAY, rate_t, (RUNS, DAYS))
    xc = rng.binomial(USERS_PER_DAY, rate_c, (RUNS, DAYS))
    final_sequential = np.empty(RUNS)
    verdicts = []
    naive = np.empty((RUNS, DAYS))
    for r in range(RUNS):
        ct, cc = xt[r].cumsum(), xc[r].cumsum()
        for d in range(DAYS):
            n = USERS_PER_DAY * (d + 1)
            p = z_test_p(int(ct[d]), n, int(cc[d]), n)
            naive[r, d] = 1.0 if p is None else p
        # the report on day 30 holds every daily look; its p-value is their running
        # minimum, so it crossed 5 % on some day if and only if it is below 5 % now
        report = build_report(
            "sim",
            GOAL,
            [
                VariantAggregate("holdout", 1, True, USERS_PER_DAY * DAYS, int(cc[-1]), _days(xc[r])),
                VariantAggregate("reminder", 1, False, USERS_PER_DAY * DAYS, int(ct[-1]), _days(xt[r])),
            ],
            minimum_detectable_effect=MDE,
        )  # fmt: skip
        seq = report["variants"][1]["sequential"]
        final_sequential[r] = seq["p_value"]
        verdicts.append(seq["verdict"])
    return final_sequential, naive, np.array(verdicts)


def test_an_aa_test_read_daily_rarely_crosses_the_sequential_boundary_and_often_the_naive_one():
    sequential, naive, verdicts = _reports_read_daily(RATE, RATE, seed=20261)
    sequential_rate = float((sequential < 0.05).mean())
    naive_rate = float((naive.min(axis=1) < 0.05).mean())
    once_rate = float((naive[:, -1] < 0.05).mean())
    print(
        f"\nA/A through the report, {RUNS} runs x {DAYS} daily reads ({USERS_PER_DAY} users"
        f" per arm per day, rate {RATE}, tau = MDE = {MDE}): sequential crossed 5 % in "
        f"{sequential_rate:.1%} of runs, naive daily peeking at the z-test in "
        f"{naive_rate:.1%} (read once on day {DAYS}: {once_rate:.1%})"
    )
    assert sequential_rate <= 0.05
    assert naive_rate >= 0.15 and naive_rate >= 3 * max(sequential_rate, 0.01)
    assert 0.03 <= once_rate <= 0.07  # read once, the fixed-horizon test is right
    assert ((verdicts != "continue") == (sequential < 0.05)).all()


def test_a_real_effect_reaches_a_variant_better_verdict():
    # the reminder (second variant) +2 points on 10 %
    _, naive, verdicts = _reports_read_daily(RATE + MDE, RATE, seed=20262)
    power = float((verdicts == "variant_better").mean())
    print(
        f"\n+{MDE} on {RATE}: variant_better by day {DAYS} in {power:.1%} of runs "
        f"(the day-{DAYS} z-test read once: {(naive[:, -1] < 0.05).mean():.1%})"
    )
    assert power >= 0.65 and not (verdicts == "variant_worse").any()


def _arm_moments(y: np.ndarray, x: np.ndarray) -> list[Moments]:
    """Per row (one simulated experiment's arm) the sums SQL would give."""
    return [
        Moments(y.shape[1], *map(float, row))
        for row in zip(y.sum(1), (y * y).sum(1), x.sum(1), (x * x).sum(1), (x * y).sum(1), strict=True)
    ]  # fmt: skip


def test_cuped_reduces_the_variance_of_the_lift_on_correlated_pre_period_behavior():
    # each user has a propensity to order (gamma); X counts their orders in the 28 days
    # before exposure, Y those in the 72 h window after it; the message adds 10 %
    rng = np.random.default_rng(20263)
    experiments, users, effect = 2000, 400, 0.10
    propensity = rng.gamma(0.8, 0.5, (2, experiments, users))
    x = rng.poisson(propensity * 28 / 3).astype(float)
    y = rng.poisson(propensity * np.array([1 + effect, 1.0])[:, None, None]).astype(float)
    results = [
        cuped(t, c) for t, c in zip(_arm_moments(y[0], x[0]), _arm_moments(y[1], x[1]), strict=True)
    ]
    assert all(r is not None for r in results)
    adjusted = np.array([r.difference for r in results if r])
    plain = y[0].mean(axis=1) - y[1].mean(axis=1)
    measured = float(adjusted.var() / plain.var())
    reported = float(np.mean([r.variance_ratio for r in results if r]))
    truth = effect * 0.4  # E[Y_t] - E[Y_c] = effect * E[propensity]
    coverage = float(np.mean([r.ci_low <= truth <= r.ci_high for r in results if r]))
    rho = float(np.corrcoef(x[1].ravel(), y[1].ravel())[0, 1])
    print(
        f"\nCUPED through the report over {experiments} simulated experiments of {users} users"
        f" per arm (corr(X, Y) = {rho:.2f}): variance of the lift estimate x{measured:.3f} of"
        f" the plain difference's (reported: x{reported:.3f}, 1 - rho² = {1 - rho * rho:.3f});"
        f" 95 % interval coverage {coverage:.1%}"
    )
    assert measured < 0.8
    assert reported == approx(measured, rel=0.1)  # the measured ratio is itself noisy (~4 %)
    assert reported == approx(1 - rho * rho, abs=0.03)
    assert abs(adjusted.mean() - truth) < 4 * adjusted.std() / math.sqrt(experiments)
    assert 0.93 <= coverage <= 0.97


# ---- the report's JSON -----------------------------------------------------------------
def _variant(name: str, weight: float, holdout: bool, days: list[dict[str, Moments]]) -> VariantAggregate:  # fmt: skip
    daily = tuple(DayAggregate(f"2026-03-0{i + 1}", m) for i, m in enumerate(days))
    users = sum(d["conversion"].n for d in days)
    conversions = sum(int(d["conversion"].sum_y) for d in days)
    return VariantAggregate(name, weight, holdout, users, conversions, daily)


def _simulated_variants(seed: int = 9) -> tuple[list[VariantAggregate], dict[str, Any]]:
    """Two arms over three days from raw per-user values (kept for the references)."""
    rng = np.random.default_rng(seed)
    raw: dict[str, Any] = {}
    out = []
    for name, weight, holdout, n, boost in (("holdout", 1, True, 150, 1.0), ("reminder", 9, False, 1350, 1.3)):  # fmt: skip
        days, per_day = [], []
        for _ in range(3):
            p = rng.gamma(0.8, 0.5, n)
            values = {
                "conversion": ((rng.poisson(p * boost) > 0).astype(float), rng.poisson(p * 9).astype(float)),
                "revenue": (rng.poisson(p * boost) * rng.gamma(2, 30, n), rng.poisson(p * 9) * 60.0),
                "engagement": (rng.poisson(3 * p * boost + 1).astype(float), rng.poisson(27 * p).astype(float)),
            }  # fmt: skip
            per_day.append(values)
            days.append({m: _sums(*values[m]) for m in METRICS})
        raw[name] = per_day
        out.append(_variant(name, weight, holdout, days))
    return out, raw


def _sums(y: np.ndarray, x: np.ndarray) -> Moments:
    return Moments(int(y.size), *(float(v) for v in (y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum())))  # fmt: skip


def _all(raw: dict[str, Any], arm: str, metric: str, days: int = 3) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    ys = [raw[arm][d][metric][0] for d in range(days)]
    xs = [raw[arm][d][metric][1] for d in range(days)]
    return np.concatenate(ys), np.concatenate(xs)


def test_the_report_keeps_the_spec_keys_and_adds_sequential_cuped_and_holm() -> None:
    variants, raw = _simulated_variants()
    report = build_report("e", GOAL, variants, minimum_detectable_effect=0.02)
    assert set(report) == {"experiment", "goal", "variants", "srm_p_value", "metrics"}
    holdout, reminder = report["variants"]
    spec = {"name", "users", "conversions", "conversion_rate", "ci_low", "ci_high", "lift", "p_value"}  # fmt: skip
    assert set(reminder) == spec | {"sequential"} and holdout["sequential"] is None
    assert set(reminder["sequential"]) == {
        "difference", "p_value", "p_value_holm", "ci_low", "ci_high", "verdict", "looks", "tau2",
    }  # fmt: skip
    assert reminder["sequential"]["looks"] == 3 and reminder["sequential"]["tau2"] == approx(4e-4)
    metrics = report["metrics"]
    assert metrics["methods"]["holm_family"] == list(METRICS)
    assert metrics["methods"]["cuped_pre_exposure_days"] == S.CUPED_PRE_EXPOSURE_DAYS
    json.dumps(report, allow_nan=False)  # no NaN or infinity anywhere

    fixed, always_valid = [], []
    for metric in METRICS:
        rows = metrics[metric]["variants"]
        assert [r["name"] for r in rows] == ["holdout", "reminder"]
        assert rows[0]["p_value"] is None and rows[0]["cuped"] is None
        yt, xt = _all(raw, "reminder", metric)
        yc, xc = _all(raw, "holdout", metric)
        row = rows[1]
        assert (row["users"], row["mean"], row["std"]) == (1350 * 3, approx(yt.mean()), approx(yt.std(ddof=1)))  # fmt: skip
        assert row["pre_exposure_mean"] == approx(xt.mean())
        if metric == "conversion":
            want = S.two_proportion_z_test(S.Counts(int(yt.sum()), yt.size), S.Counts(int(yc.sum()), yc.size))  # fmt: skip
            assert row["p_value"] == approx(want.p_value) == approx(reminder["p_value"])
            assert row["sequential"] == reminder["sequential"]
            assert (row["ci_low"], row["ci_high"]) == approx(
                S.newcombe_interval(
                    S.Counts(int(yt.sum()), yt.size), S.Counts(int(yc.sum()), yc.size)
                )
            )
        else:
            ref = sps.ttest_ind(yt, yc, equal_var=False)
            assert row["p_value"] == approx(float(ref.pvalue), rel=1e-8)
            looks = [
                S.msprt_means(
                    S.Summary.from_values(_all(raw, "reminder", metric, k)[0]),
                    S.Summary.from_values(_all(raw, "holdout", metric, k)[0]),
                )
                for k in (1, 2, 3)
            ]
            want_seq = S.sequential_over_looks([r for r in looks if r])
            assert row["sequential"]["p_value"] == approx(want_seq.always_valid_p_value, rel=1e-8)
            assert row["sequential"]["ci_low"] == approx(want_seq.cs_low, rel=1e-8)
        want_cuped = S.cuped(S.CovariateSummary.from_values(yt, xt), S.CovariateSummary.from_values(yc, xc))  # fmt: skip
        assert row["cuped"]["difference"] == approx(want_cuped.difference, rel=1e-9)
        assert row["cuped"]["variance_ratio"] == approx(want_cuped.variance_ratio, rel=1e-9)
        assert row["cuped"]["variance_ratio"] < 1  # X is correlated with Y here
        fixed.append(row["p_value"])
        always_valid.append(row["sequential"]["p_value"])
    got_holm = [metrics[m]["variants"][1]["p_value_holm"] for m in METRICS]
    assert got_holm == approx(list(S.holm(fixed)))
    got_seq_holm = [metrics[m]["variants"][1]["sequential"]["p_value_holm"] for m in METRICS]
    assert got_seq_holm == approx(holm(always_valid))


def test_a_report_without_daily_data_has_one_look_and_only_the_conversion_metric() -> None:
    report = build_report(
        "e",
        GOAL,
        [
            VariantAggregate("holdout", 1, True, 400, 20),
            VariantAggregate("reminder", 9, False, 3600, 270),
        ],
        minimum_detectable_effect=0.02,
    )
    seq = report["variants"][1]["sequential"]
    want = S.msprt_proportions(S.Counts(270, 3600), S.Counts(20, 400), tau2=0.02**2)
    assert want is not None and seq["looks"] == 1
    assert (seq["p_value"], seq["ci_low"], seq["ci_high"]) == approx(
        (want.always_valid_p_value, want.cs_low, want.cs_high)
    )
    assert [m for m in METRICS if m in report["metrics"]] == ["conversion"]
    row = report["metrics"]["conversion"]["variants"][1]
    assert row["cuped"] is None and row["p_value_holm"] == approx(row["p_value"])


def test_an_empty_experiment_reports_nothing_it_cannot_know() -> None:
    report = build_report(
        "e",
        GOAL,
        [_variant("holdout", 1, True, []), _variant("reminder", 9, False, [])],
        minimum_detectable_effect=0.02,
    )
    seq = report["variants"][1]["sequential"]
    assert seq["p_value_holm"] is None
    assert (seq["p_value"], seq["verdict"], seq["ci_low"], seq["looks"]) == (
        1.0,
        "continue",
        None,
        0,
    )
    for metric in METRICS:
        row = report["metrics"][metric]["variants"][1]
        assert row["mean"] is None and row["cuped"] is None and row["p_value"] is None
    json.dumps(report, allow_nan=False)


def test_holm_counts_only_the_metrics_that_have_data() -> None:
    # conversions, but no revenue and no engagement yet: those tests do not exist, so the
    # conversion's p-values are not adjusted for them
    def day(n: int, x: int) -> dict[str, Moments]:
        nothing = Moments(n, 0.0, 0.0)
        return {"conversion": Moments(n, x, x), "revenue": nothing, "engagement": nothing}

    report = build_report(
        "e",
        GOAL,
        [
            _variant("holdout", 1, True, [day(500, 40)]),
            _variant("reminder", 1, False, [day(500, 70)]),
        ],
        minimum_detectable_effect=0.02,
    )
    metrics = report["metrics"]
    conversion = metrics["conversion"]["variants"][1]
    assert conversion["p_value_holm"] == conversion["p_value"]
    assert conversion["sequential"]["p_value_holm"] == conversion["sequential"]["p_value"]
    for metric in ("revenue", "engagement"):
        row = metrics[metric]["variants"][1]
        assert row["p_value_holm"] is None and row["sequential"]["p_value_holm"] is None
        assert row["sequential"]["looks"] == 0 and row["sequential"]["verdict"] == "continue"


# ---- from archived events to the report ------------------------------------------------
class DuckEngine:
    """The QueryEngine port over an in-memory DuckDB `events` view (the fake of
    nudge.adapters.query_duckdb, without the S3 cache)."""

    def __init__(self, rows: list[dict[str, Any]], tmp: Path) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(
            "CREATE TABLE archive_raw (v INTEGER, message_id VARCHAR, type VARCHAR, event VARCHAR,"
            " user_id VARCHAR, anonymous_id VARCHAR, timestamp VARCHAR, received_at VARCHAR,"
            " properties JSON, traits JSON, context JSON, historical BOOLEAN,"
            " previous_id VARCHAR, group_id VARCHAR)"
        )
        lines = tmp / "events.jsonl"
        lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
        names = ("id", "type", "event", "user", "at", "props")
        columns = "{" + ", ".join(f"\"{n}\": 'VARCHAR'" for n in names) + "}"
        self.con.execute(
            "INSERT INTO archive_raw (v, message_id, type, event, user_id, timestamp,"
            ' received_at, properties) SELECT 1, id, type, event, "user", "at", "at", props'
            f" FROM read_json('{lines}', columns = {columns})"
        )
        self.con.execute(f"CREATE VIEW events AS {EVENTS_VIEW_SQL}")

    def query(self, sql: str, *, since: datetime | None = None, until: datetime | None = None) -> QueryResult:  # fmt: skip
        result = self.con.execute(sql)
        return QueryResult([d[0] for d in result.description], [list(r) for r in result.fetchall()])


def test_the_report_from_archived_events_equals_the_references_on_the_users_values(
    tmp_path: Path,
) -> None:
    experiment = load_triggers(ROOT / "triggers").experiment("cart_abandonment_holdout")
    assert experiment is not None
    rng = np.random.default_rng(12)
    t0 = datetime(2026, 3, 1, 9, 0, 0)
    rows: list[dict[str, Any]] = []
    users: dict[str, dict[str, list[float]]] = {"holdout": {}, "reminder": {}}

    def add(user: str, event: str, at: datetime, **props: Any) -> None:
        stamp = at.isoformat(timespec="milliseconds") + "Z"
        rows.append({"id": f"m{len(rows)}", "type": "track", "event": event, "user": user, "at": stamp, "props": json.dumps(props)})  # fmt: skip

    for i in range(300):
        variant = "holdout" if i % 10 == 0 else "reminder"
        user, exposed = f"u{i}", t0 + timedelta(days=int(i % 3), minutes=i)
        propensity = rng.gamma(0.8, 0.5)
        boost = 1.5 if variant == "reminder" else 1.0
        orders_before = rng.poisson(propensity * 9)
        for k in range(orders_before):
            add(user, "Order Completed", exposed - timedelta(days=1 + k % 20), revenue=40.0)
        views_before = rng.poisson(propensity * 20)
        for k in range(views_before):
            add(user, "Product Viewed", exposed - timedelta(hours=1 + k))
        add(user, "Experiment Viewed", exposed, experiment_id=experiment.id, variation_id=variant)
        orders_after = rng.poisson(propensity * boost)
        revenue = [float(rng.integers(10, 200)) for _ in range(orders_after)]
        for k, amount in enumerate(revenue):
            add(user, "Order Completed", exposed + timedelta(hours=2 + k), revenue=amount)
        add(user, "Email Opened", exposed + timedelta(minutes=5))  # nudge's: not engagement
        users[variant][user] = [
            float(orders_after > 0), float(orders_before),
            sum(revenue), 40.0 * orders_before,
            float(orders_after), float(orders_before + views_before),
        ]  # fmt: skip
    report = experiment_report(experiment, DuckEngine(rows, tmp_path))

    def values(variant: str, k: int) -> np.ndarray:
        return np.array([v[k] for v in users[variant].values()])

    holdout, reminder = report["variants"]
    assert (holdout["users"], reminder["users"]) == (30, 270)
    assert reminder["conversions"] == int(values("reminder", 0).sum())
    assert reminder["sequential"]["looks"] == 3
    for m, metric in enumerate(METRICS):
        yt, xt = values("reminder", 2 * m), values("reminder", 2 * m + 1)
        yc, xc = values("holdout", 2 * m), values("holdout", 2 * m + 1)
        row = report["metrics"][metric]["variants"][1]
        assert row["mean"] == approx(yt.mean()) and row["pre_exposure_mean"] == approx(xt.mean())
        want = S.cuped(S.CovariateSummary.from_values(yt, xt), S.CovariateSummary.from_values(yc, xc))  # fmt: skip
        assert row["cuped"]["theta"] == approx(want.theta, rel=1e-9), metric
        assert row["cuped"]["variance_ratio"] == approx(want.variance_ratio, rel=1e-9), metric
        if metric != "conversion":
            assert row["p_value"] == approx(float(sps.ttest_ind(yt, yc, equal_var=False).pvalue), rel=1e-8)  # fmt: skip
    assert report["metrics"]["unknown_variant_users"] == 0
    # and the document fits the ExperimentReport schema that docs/openapi.json publishes
    doc = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    schema = {"$ref": "#/components/schemas/ExperimentReport", "components": doc["components"]}
    OAS31Validator(schema).validate(json.loads(json.dumps(report, allow_nan=False)))
    broken = copy.deepcopy(report)
    broken["variants"][1]["sequential"]["verdict"] = "stop"
    with pytest.raises(ValidationError):
        OAS31Validator(schema).validate(broken)
