"""The report's plain-Python statistics (nudge.domain.report_stats) against scipy,
statsmodels, numerical integration and nudge.domain.stats (the scipy versions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nudge.domain import report_stats as R
from nudge.domain import stats as S
from nudge.domain.report_stats import Moments
from scipy import integrate, special
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

approx = pytest.approx


def moments(y: np.ndarray, x: np.ndarray | None = None) -> Moments:
    """What SQL sums over one arm's users."""
    x = np.zeros_like(y) if x is None else x
    return Moments(
        int(y.size),
        float(y.sum()),
        float((y * y).sum()),
        float(x.sum()),
        float((x * x).sum()),
        float((x * y).sum()),
    )


def test_constants_are_scipys() -> None:
    assert approx(float(sps.norm.ppf(1 - R.ALPHA / 2)), rel=1e-14) == R.Z_ALPHA
    assert approx(float(sps.norm.ppf(0.8)), rel=1e-14) == R.Z_POWER
    assert R.STANDARDIZED_TAU == S.DEFAULT_STANDARDIZED_TAU


# ---- Student's t ----------------------------------------------------------------------
@pytest.mark.parametrize("a", [0.5, 1.0, 2.5, 10.0, 150.0])
@pytest.mark.parametrize("b", [0.5, 1.0, 3.0, 40.0])
@pytest.mark.parametrize("x", [0.001, 0.2, 0.5, 0.9, 0.999])
def test_betainc_equals_scipy(a: float, b: float, x: float) -> None:
    assert R.betainc(a, b, x) == approx(float(special.betainc(a, b, x)), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("df", [1.0, 2.5, 7.3, 30.0, 1234.5, 2e6, 1e9])
@pytest.mark.parametrize("t", [-6.0, -1.5, 0.0, 0.3, 2.0, 12.0])
def test_t_sf_equals_scipy(t: float, df: float) -> None:
    # with millions of degrees of freedom lgamma's cancellation leaves ~1e-7 at worst
    assert R.t_sf(t, df) == approx(float(sps.t.sf(t, df)), rel=1e-9 if df < 1e5 else 1e-6)


@pytest.mark.parametrize("df", [1.0, 3.7, 29.0, 5000.0, 3e7])
@pytest.mark.parametrize("q", [0.001, 0.5, 0.9, 0.975])
def test_t_ppf_equals_scipy(q: float, df: float) -> None:
    rel = 1e-9 if df < 1e5 else 1e-6
    assert R.t_ppf(q, df) == approx(float(sps.t.ppf(q, df)), rel=rel, abs=1e-12)


# ---- moments and Welch ----------------------------------------------------------------
def test_moments_from_sums_equal_numpys_and_add_up() -> None:
    rng = np.random.default_rng(11)
    y, x = rng.gamma(0.5, 40.0, 300), rng.poisson(2.0, 300).astype(float)
    m = moments(y, x)
    assert (m.mean_y, m.mean_x) == approx((y.mean(), x.mean()))
    assert m.var_y == approx(y.var(ddof=1)) and m.var_x == approx(x.var(ddof=1))
    assert m.cov_xy == approx(np.cov(y, x)[0, 1])
    both = moments(y[:100], x[:100]) + moments(y[100:], x[100:])
    assert both.n == m.n
    assert (both.sum_y, both.sum_y2, both.sum_x, both.sum_x2, both.sum_xy) == approx(
        (m.sum_y, m.sum_y2, m.sum_x, m.sum_x2, m.sum_xy), rel=1e-12
    )
    assert Moments(0, 0.0, 0.0).mean_y is None and Moments(1, 5.0, 25.0).var_y == 0.0


def test_welch_equals_scipy_statsmodels_and_nudges_stats() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.gamma(0.5, 60.0, 400), rng.gamma(0.5, 45.0, 250)
    got = R.welch(moments(a), moments(b))
    ref = sps.ttest_ind(a, b, equal_var=False)
    want = S.welch_t_test(S.Summary.from_values(a), S.Summary.from_values(b))
    assert got.statistic == approx(float(ref.statistic), rel=1e-9)
    assert got.p_value == approx(float(ref.pvalue), rel=1e-8)
    assert (got.ci_low, got.ci_high, got.df) == approx((want.ci_low, want.ci_high, want.df))
    assert got.lift == approx(a.mean() / b.mean() - 1)


def test_welch_says_only_what_it_can() -> None:
    assert R.welch(Moments(0, 0.0, 0.0), Moments(5, 5.0, 9.0)).difference is None
    one = R.welch(Moments(1, 8.0, 64.0), Moments(2, 10.0, 50.0))
    assert one.difference == 3.0 and one.p_value is None and one.lift == approx(0.6)
    flat = R.welch(Moments(3, 0.0, 0.0), Moments(3, 0.0, 0.0))
    assert flat.p_value is None and flat.lift is None


# ---- mSPRT ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("d", "v", "tau2"),
    [(0.01, 4e-5, 1e-4), (-0.03, 1e-4, 1e-4), (0.0, 2e-5, 4e-4), (2.0, 0.5, 0.25)],
)
def test_the_closed_form_is_the_mixture_integral(d: float, v: float, tau2: float) -> None:
    # Johari, Koomen, Pekelis & Walsh (2017): Λ = ∫ φ(d; θ, V)/φ(d; 0, V) φ(θ; 0, τ²) dθ
    sd = math.sqrt(tau2)

    def integrand(theta: float) -> float:
        ratio = sps.norm.pdf(d, theta, math.sqrt(v)) / sps.norm.pdf(d, 0, math.sqrt(v))
        return float(ratio * sps.norm.pdf(theta, 0, sd))

    expected, _ = integrate.quad(integrand, -12 * sd, 12 * sd, points=[0.0, d])
    assert math.exp(R.log_mixture_likelihood_ratio(d, v, tau2)) == approx(expected, rel=1e-7)
    assert math.exp(R.log_mixture_likelihood_ratio(d, v, tau2)) == approx(
        S.mixture_likelihood_ratio(d, v, tau2=tau2), rel=1e-12
    )


def test_the_confidence_sequence_ends_where_the_ratio_reaches_one_over_alpha() -> None:
    v, tau2, d = 3e-5, 4e-4, 0.012
    half = R.confidence_sequence_half_width(v, tau2)
    for edge in (d - half, d + half):
        assert R.log_mixture_likelihood_ratio(d, v, tau2, null=edge) == approx(math.log(20))
    assert math.isinf(R.confidence_sequence_half_width(0.0, tau2))


def test_sequential_proportions_equal_stats_over_the_same_looks() -> None:
    looks = [(30, 400, 22, 390), (75, 800, 52, 810), (118, 1200, 80, 1190)]
    got = R.sequential_proportions(looks, tau2=4e-4)
    per_look = [
        S.msprt_proportions(S.Counts(a, b), S.Counts(c, d), tau2=4e-4) for a, b, c, d in looks
    ]
    want = S.sequential_over_looks([r for r in per_look if r is not None])
    assert got.p_value == approx(want.always_valid_p_value, rel=1e-12)
    assert (got.ci_low, got.ci_high) == approx((want.cs_low, want.cs_high), rel=1e-12)
    assert got.difference == approx(want.difference) and got.looks == 3 and got.tau2 == 4e-4
    assert got.verdict == ("variant_better" if got.p_value < 0.05 else "continue")


def test_sequential_means_equal_stats_at_each_look() -> None:
    rng = np.random.default_rng(5)
    t, c = rng.gamma(0.6, 50.0, (3, 300)), rng.gamma(0.6, 45.0, (3, 300))
    looks = [(moments(t[: k + 1].ravel()), moments(c[: k + 1].ravel())) for k in range(3)]
    got = R.sequential_means(looks)
    per_look = [
        S.msprt_means(S.Summary.from_values(t[: k + 1].ravel()), S.Summary.from_values(c[: k + 1].ravel()))
        for k in range(3)
    ]  # fmt: skip
    want = S.sequential_over_looks([r for r in per_look if r is not None])
    assert got.p_value == approx(want.always_valid_p_value, rel=1e-9)
    assert (got.ci_low, got.ci_high) == approx((want.cs_low, want.cs_high), rel=1e-9)
    assert got.tau2 == approx(want.tau2, rel=1e-9)


def test_verdicts() -> None:
    up = R.sequential([(0.05, 1e-4, 4e-4)])
    down = R.sequential([(-0.05, 1e-4, 4e-4)])
    flat = R.sequential([(0.001, 1e-4, 4e-4)])
    # two looks whose sequences do not overlap: a constant effect does not fit
    jumped = R.sequential([(0.08, 1e-4, 4e-4), (-0.08, 1e-4, 4e-4)])
    assert (up.verdict, down.verdict, flat.verdict) == (
        "variant_better",
        "variant_worse",
        "continue",
    )
    assert up.p_value < 0.05 and up.ci_low is not None and up.ci_low > 0
    assert jumped.verdict == "inconsistent"
    nothing = R.sequential_proportions([(0, 0, 3, 10), (0, 100, 0, 100)], tau2=4e-4)
    assert (nothing.p_value, nothing.ci_low, nothing.ci_high) == (1.0, None, None)
    assert nothing.looks == 0 and nothing.verdict == "continue"
    empty = R.sequential([])
    assert (empty.difference, empty.p_value, empty.looks) == (None, 1.0, 0)
    huge = R.sequential([(5.0, 1e-6, 1.0)])  # Λ overflows a float: p is 0, not an error
    assert huge.p_value == 0.0 and huge.verdict == "variant_better"
    with pytest.raises(ValueError):
        R.log_mixture_likelihood_ratio(0.1, 0.01, 0.0)


# ---- CUPED ----------------------------------------------------------------------------
def test_cuped_from_sums_equals_stats_and_the_definition() -> None:
    rng = np.random.default_rng(3)
    x_t, x_c = rng.poisson(3.0, 300).astype(float), rng.poisson(3.0, 280).astype(float)
    y_t = 2 * x_t + rng.normal(1.0, 2.0, 300)
    y_c = 2 * x_c + rng.normal(0.0, 2.0, 280)
    got = R.cuped(moments(y_t, x_t), moments(y_c, x_c))
    want = S.cuped(
        S.CovariateSummary.from_values(y_t, x_t), S.CovariateSummary.from_values(y_c, x_c)
    )
    assert got is not None
    for name in ("theta", "treatment_mean", "control_mean", "difference", "ci_low", "ci_high",
                 "variance", "unadjusted_variance", "variance_ratio", "lift"):  # fmt: skip
        assert getattr(got, name) == approx(getattr(want, name), rel=1e-9), name
    # Deng et al. (2013): Y - theta (X - mean X) per user, then a plain z-test
    x = np.concatenate([x_t, x_c])
    adj_t, adj_c = y_t - got.theta * (x_t - x.mean()), y_c - got.theta * (x_c - x.mean())
    z = (adj_t.mean() - adj_c.mean()) / math.sqrt(adj_t.var(ddof=1) / 300 + adj_c.var(ddof=1) / 280)
    assert got.p_value == approx(float(2 * sps.norm.sf(abs(z))), rel=1e-9)


def test_cuped_without_a_covariate_or_users() -> None:
    y_t, y_c = np.array([1.0, 3.0, 5.0]), np.array([0.0, 2.0, 1.0])
    plain = R.cuped(moments(y_t), moments(y_c))
    assert plain is not None and plain.theta == 0.0 and plain.variance_ratio == approx(1.0)
    assert plain.difference == approx(y_t.mean() - y_c.mean())
    assert R.cuped(Moments(1, 1.0, 1.0), moments(y_c)) is None


# ---- Holm -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p", [[0.01, 0.04, 0.03, 0.005], [0.5], [0.001, 0.001, 0.2], [0.04, 0.03, 0.02, 0.5, 0.9]]
)
def test_holm_equals_statsmodels(p: list[float]) -> None:
    _, expected, _, _ = multipletests(p, method="holm")
    assert R.holm(p) == approx(list(expected))


def test_holm_leaves_missing_values_out() -> None:
    assert R.holm([None, 0.02, None, 0.04]) == [None, approx(0.04), None, approx(0.04)]
    assert R.holm([]) == []
