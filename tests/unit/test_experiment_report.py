"""The plain-Python experiment report against scipy, statsmodels and nudge.domain.stats."""

from __future__ import annotations

import math

import pytest
from nudge.domain import stats
from nudge.domain.experiment_report import (
    Z_ALPHA,
    Z_POWER,
    VariantAggregate,
    build_report,
    chi2_sf,
    chi_square_independence,
    gamma_q,
    normal_sf,
    required_users,
    srm_p_value,
    wilson,
    z_test_p,
)
from scipy import special
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

TOL = 1e-6


def close(a: float | None, b: float | None, tol: float = TOL) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=tol, abs_tol=1e-12)


def test_constants() -> None:
    assert close(Z_ALPHA, float(sps.norm.ppf(0.975)), 1e-12)
    assert close(Z_POWER, float(sps.norm.ppf(0.8)), 1e-12)


@pytest.mark.parametrize("z", [-3.0, -0.5, 0.0, 0.7, 1.96, 4.0, 8.0])
def test_normal_sf(z: float) -> None:
    assert close(normal_sf(z), float(sps.norm.sf(z)), 1e-10)


@pytest.mark.parametrize("a", [0.5, 1.0, 1.5, 2.0, 4.5, 10.0, 50.0])
@pytest.mark.parametrize("x", [0.01, 0.3, 1.0, 2.5, 7.0, 20.0, 80.0])
def test_gamma_q(a: float, x: float) -> None:
    assert close(gamma_q(a, x), float(special.gammaincc(a, x)), 1e-9)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("statistic", [0.0, 0.1, 1.0, 3.84, 12.0, 40.0])
def test_chi2_sf(df: int, statistic: float) -> None:
    assert close(chi2_sf(statistic, df), float(sps.chi2.sf(statistic, df)), 1e-9)


@pytest.mark.parametrize("x,n", [(0, 10), (1, 10), (5, 10), (10, 10), (81, 263), (3, 1000)])
def test_wilson(x: int, n: int) -> None:
    low, high = wilson(x, n)
    want_low, want_high = proportion_confint(x, n, alpha=0.05, method="wilson")
    assert low is not None and high is not None
    assert abs(low - want_low) < TOL and abs(high - want_high) < TOL
    assert wilson(0, 0) == (None, None)


@pytest.mark.parametrize("xt,nt,xc,nc", [(30, 100, 20, 100), (5, 900, 1, 100), (0, 50, 3, 40)])
def test_z_test(xt: int, nt: int, xc: int, nc: int) -> None:
    _, want = proportions_ztest([xt, xc], [nt, nc])
    assert close(z_test_p(xt, nt, xc, nc), float(want))
    assert z_test_p(0, 10, 0, 10) is None
    assert z_test_p(1, 10, 0, 0) is None


def test_chi_square_independence() -> None:
    rows = [(30, 100), (20, 100), (45, 120), (2, 0 + 10)]
    got = chi_square_independence(rows)
    table = [[x, n - x] for x, n in rows]
    want = sps.chi2_contingency(table, correction=False)
    assert got is not None
    assert close(got[0], float(want.statistic)) and close(got[1], float(want.pvalue))
    assert got[2] == 3
    assert chi_square_independence([(0, 10), (0, 20), (0, 5)]) is None


def test_srm() -> None:
    # Kohavi, Tang & Xu (2020): 821,588 vs 815,482 on 50/50, p = 1.8e-6
    p = srm_p_value([821_588, 815_482], [1, 1])
    assert close(p, float(sps.chisquare([821_588, 815_482]).pvalue))
    assert p is not None and abs(p - 1.8e-6) < 0.05e-6
    users, weights = [98, 905, 431], [0.1, 0.6, 0.3]
    expected = [sum(users) * w for w in weights]
    assert close(srm_p_value(users, weights), float(sps.chisquare(users, expected).pvalue))
    assert srm_p_value([0, 0], [1, 9]) is None


@pytest.mark.parametrize(
    "baseline,mde,ratio", [(0.1, 0.02, 9.0), (0.3, 0.05, 1.0), (0.02, 0.01, 2)]
)
def test_required_users(baseline: float, mde: float, ratio: float) -> None:
    got = required_users(baseline, mde, ratio)
    assert got == stats.required_sample_size(baseline, mde, relative=False, ratio=ratio)
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = proportion_effectsize(baseline + mde, baseline)
    n1 = NormalIndPower().solve_power(h, alpha=0.05, power=0.8, ratio=ratio)
    assert got is not None and abs(got[0] - n1) <= 1.0 + 1e-9
    assert required_users(0.99, 0.02, 1.0) is None


def _variants() -> list[VariantAggregate]:
    return [
        VariantAggregate("reminder", 0.9, False, 905, 120),
        VariantAggregate("holdout", 0.1, True, 98, 8),
    ]


def test_report_two_variants() -> None:
    report = build_report(
        "cart_abandonment_holdout",
        {"event": "Order Completed", "within_seconds": 259200},
        _variants(),
        minimum_detectable_effect=0.02,
    )
    assert set(report) == {"experiment", "goal", "variants", "srm_p_value", "metrics"}
    reminder, holdout = report["variants"]
    assert set(reminder) == {
        "name",
        "users",
        "conversions",
        "conversion_rate",
        "ci_low",
        "ci_high",
        "lift",
        "p_value",
        "sequential",  # beyond the documented keys: tests/unit/test_experiment_report_sequential.py
    }
    assert holdout["lift"] is None and holdout["p_value"] is None
    assert holdout["sequential"] is None and reminder["sequential"]["verdict"] == "continue"
    assert close(reminder["conversion_rate"], 120 / 905)
    assert close(reminder["lift"], (120 / 905) / (8 / 98) - 1)
    counts_t, counts_c = stats.Counts(120, 905), stats.Counts(8, 98)
    assert close(reminder["lift"], stats.relative_lift(counts_t, counts_c).lift)
    assert close(reminder["p_value"], stats.two_proportion_z_test(counts_t, counts_c).p_value)
    low, high = stats.wilson_interval(counts_c)
    assert close(holdout["ci_low"], low) and close(holdout["ci_high"], high)
    want_srm = stats.sample_ratio_mismatch([905, 98], [0.9, 0.1]).srm_p_value
    assert want_srm is not None and close(report["srm_p_value"], want_srm)
    metrics = report["metrics"]
    assert metrics["control"] == "holdout" and "chi_square" not in metrics
    want = stats.sample_size_needed(
        [counts_t, counts_c], [0.9, 0.1], control=1, mde=0.02, relative=False
    )
    assert want is not None
    size = metrics["sample_size"]
    assert tuple(size["per_variant"].values()) == want.per_arm
    assert size["remaining_exposures"] == want.remaining
    assert size["still_needed"]["holdout"] == max(0, want.per_arm[1] - 98)


def test_report_three_variants_first_is_control_without_holdout() -> None:
    variants = [
        VariantAggregate("a", 1, False, 300, 30),
        VariantAggregate("b", 1, False, 310, 45),
        VariantAggregate("c", 2, False, 590, 70),
    ]
    report = build_report("e", {}, variants, minimum_detectable_effect=0.05)
    assert report["metrics"]["control"] == "a"
    table = [[v.conversions, v.users - v.conversions] for v in variants]
    want = sps.chi2_contingency(table, correction=False)
    chi = report["metrics"]["chi_square"]
    assert close(chi["p_value"], float(want.pvalue)) and chi["df"] == 2
    for row, v in zip(report["variants"][1:], variants[1:], strict=True):
        _, p = proportions_ztest([v.conversions, 30], [v.users, 300])
        assert close(row["p_value"], float(p))
    expected = [1200 * w / 4 for w in (1, 1, 2)]
    assert close(report["srm_p_value"], float(sps.chisquare([300, 310, 590], expected).pvalue))


def test_report_empty() -> None:
    variants = [
        VariantAggregate("holdout", 1, True, 0, 0),
        VariantAggregate("reminder", 9, False, 0, 0),
    ]
    report = build_report("e", {}, variants, minimum_detectable_effect=0.02)
    assert report["srm_p_value"] is None
    assert all(v["conversion_rate"] is None and v["ci_low"] is None for v in report["variants"])
    assert report["metrics"]["sample_size"] is None
