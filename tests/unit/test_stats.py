"""The statistics of experiment reports (nudge.domain.stats), each function against
scipy / statsmodels or a published worked example, the edge cases the reports meet (no
conversion yet, an empty arm, equal rates) and the issue's simulations: an A/A test read
daily for 30 days against the sequential boundary and against naive peeking, and CUPED's
variance reduction on correlated pre-period behavior (`pytest -s` prints the figures)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nudge.domain import stats as S
from nudge.domain.stats import Arm, Counts, CovariateSummary, StatsInputError, Summary
from scipy import integrate
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_chisquare,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

approx = pytest.approx


# ---- Wilson ---------------------------------------------------------------------------
# Newcombe RG (1998), "Two-sided confidence intervals for the single proportion:
# comparison of seven methods", Statistics in Medicine 17:857-872, Table I, method 3
# (score interval), 95 %.
@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_wilson_interval_matches_newcombes_published_examples(x, n, low, high):
    assert S.wilson_interval(Counts(x, n)) == approx((low, high), abs=5e-5)


@pytest.mark.parametrize(("x", "n"), [(0, 1), (1, 1), (3, 7), (50, 100), (999, 1000), (7, 12345)])
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_wilson_interval_equals_statsmodels(x, n, alpha):
    expected = proportion_confint(x, n, alpha=alpha, method="wilson")
    assert S.wilson_interval(Counts(x, n), alpha=alpha) == approx(expected, abs=1e-12)


def test_wilson_interval_of_an_empty_arm_is_everything_and_its_rate_is_unknown():
    assert S.wilson_interval(Counts(0, 0)) == (0.0, 1.0)
    assert Counts(0, 0).rate is None


def test_wilson_interval_keeps_the_exact_bound_at_zero_and_at_all():
    assert S.wilson_interval(Counts(0, 50))[0] == 0.0
    assert S.wilson_interval(Counts(50, 50))[1] == 1.0


@pytest.mark.parametrize(("x", "n"), [(-1, 10), (11, 10), (0, -1)])
def test_counts_that_cannot_be_data_are_refused(x, n):
    with pytest.raises(StatsInputError):
        Counts(x, n)


# ---- Newcombe -------------------------------------------------------------------------
# Newcombe RG (1998), "Interval estimation for the difference between independent
# proportions: comparison of eleven methods", Statistics in Medicine 17:873-890, Table II,
# method 10 (hybrid score), 95 %: examples (a)-(e) and (g).
@pytest.mark.parametrize(
    ("xt", "nt", "xc", "nc", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
    ],
)
def test_newcombe_interval_matches_newcombes_published_examples(xt, nt, xc, nc, low, high):
    assert S.newcombe_interval(Counts(xt, nt), Counts(xc, nc)) == approx((low, high), abs=5e-5)


@pytest.mark.parametrize(
    ("xt", "nt", "xc", "nc"), [(30, 200, 20, 200), (0, 500, 3, 400), (120, 1000, 120, 1000), (1, 2, 0, 3)]
)  # fmt: skip
def test_newcombe_interval_equals_statsmodels(xt, nt, xc, nc):
    expected = confint_proportions_2indep(xt, nt, xc, nc, method="newcomb", compare="diff")
    assert S.newcombe_interval(Counts(xt, nt), Counts(xc, nc)) == approx(expected, abs=1e-12)


def test_newcombe_interval_needs_both_arms():
    assert S.newcombe_interval(Counts(0, 0), Counts(3, 10)) is None
    assert S.newcombe_interval(Counts(3, 10), Counts(0, 0)) is None


# ---- lift -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("xt", "nt", "xc", "nc"), [(30, 200, 20, 200), (12, 900, 2, 100), (500, 5000, 520, 5000)]
)
def test_relative_lift_interval_is_statsmodels_log_ratio_interval_minus_one(xt, nt, xc, nc):
    low, high = confint_proportions_2indep(xt, nt, xc, nc, method="log", compare="ratio")
    lift = S.relative_lift(Counts(xt, nt), Counts(xc, nc))
    assert lift.lift == approx((xt / nt) / (xc / nc) - 1)
    assert (lift.lift_ci_low, lift.lift_ci_high) == approx((low - 1, high - 1), rel=1e-12)


def test_relative_lift_without_conversions():
    no_control_conversion = S.relative_lift(Counts(5, 100), Counts(0, 100))
    assert no_control_conversion == S.Lift(None, None, None)
    no_treatment_conversion = S.relative_lift(Counts(0, 100), Counts(5, 100))
    assert no_treatment_conversion == S.Lift(-1.0, None, None)
    assert S.relative_lift(Counts(0, 0), Counts(5, 100)) == S.Lift(None, None, None)


def test_equal_rates_have_no_lift_and_an_interval_around_it():
    lift = S.relative_lift(Counts(50, 1000), Counts(100, 2000))
    assert lift.lift == approx(0.0, abs=1e-12)
    assert lift.lift_ci_low < 0 < lift.lift_ci_high


# ---- z-test and chi-square ------------------------------------------------------------
@pytest.mark.parametrize(
    ("xt", "nt", "xc", "nc"), [(30, 200, 20, 200), (0, 50, 4, 60), (480, 4000, 400, 4000), (7, 9, 1, 3)]
)  # fmt: skip
def test_two_proportion_z_test_equals_statsmodels_and_the_uncorrected_chi_square(xt, nt, xc, nc):
    z, p = proportions_ztest([xt, xc], [nt, nc])
    result = S.two_proportion_z_test(Counts(xt, nt), Counts(xc, nc))
    assert (result.test, result.statistic, result.p_value) == ("z", approx(z), approx(p))
    table = [[xt, nt - xt], [xc, nc - xc]]
    chi2 = sps.chi2_contingency(table, correction=False)
    assert result.p_value == approx(chi2.pvalue) and result.statistic**2 == approx(chi2.statistic)


@pytest.mark.parametrize(
    ("t", "c"),
    [(Counts(0, 100), Counts(0, 100)), (Counts(100, 100), Counts(50, 50)), (Counts(0, 0), Counts(3, 9))],
)  # fmt: skip
def test_no_variation_or_an_empty_arm_has_no_p_value(t, c):
    assert S.two_proportion_z_test(t, c).p_value is None
    assert S.chi_square_test([t, c, Counts(0, 0)]).p_value is None


def test_equal_rates_give_p_value_one():
    result = S.two_proportion_z_test(Counts(30, 300), Counts(60, 600))
    assert result.statistic == approx(0.0, abs=1e-12) and result.p_value == approx(1.0)


def test_chi_square_for_three_arms_equals_scipy_and_statsmodels():
    arms = [Counts(120, 1000), Counts(150, 1010), Counts(95, 990)]
    result = S.chi_square_test(arms)
    table = [[a.conversions, a.users - a.conversions] for a in arms]
    reference = sps.chi2_contingency(table, correction=False)
    chi2, p, _ = proportions_chisquare([a.conversions for a in arms], [a.users for a in arms])
    assert result.test == "chi2" and result.df == 2
    assert result.statistic == approx(reference.statistic) == approx(chi2)
    assert result.p_value == approx(reference.pvalue) == approx(p)


def test_chi_square_leaves_an_empty_arm_out_of_the_table():
    with_empty = S.chi_square_test([Counts(10, 100), Counts(0, 0), Counts(20, 100)])
    without = S.chi_square_test([Counts(10, 100), Counts(20, 100)])
    assert with_empty == without and with_empty.df == 1


def test_proportions_test_picks_z_for_two_arms_and_chi_square_for_more():
    two = S.proportions_test([Counts(30, 200), Counts(20, 200)])
    three = S.proportions_test([Counts(30, 200), Counts(20, 200), Counts(25, 200)])
    assert (two.test, three.test) == ("z", "chi2")


# ---- Welch ----------------------------------------------------------------------------
def _revenue(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return rng.gamma(0.5, scale, n)  # skewed like order values


def test_welch_from_summaries_equals_scipy_on_the_raw_values_and_statsmodels_interval():
    rng = np.random.default_rng(7)
    a, b = _revenue(rng, 400, 60.0), _revenue(rng, 250, 45.0)
    result = S.welch_t_test(Summary.from_values(a), Summary.from_values(b))
    reference = sps.ttest_ind(a, b, equal_var=False)
    assert result.statistic == approx(reference.statistic)
    assert result.p_value == approx(reference.pvalue)
    compare = CompareMeans(DescrStatsW(a), DescrStatsW(b))
    assert (result.ci_low, result.ci_high) == approx(compare.tconfint_diff(usevar="unequal"))
    _, _, df = compare.ttest_ind(usevar="unequal")
    assert result.df == approx(df)
    assert result.difference == approx(a.mean() - b.mean())
    assert result.lift == approx(a.mean() / b.mean() - 1)


def test_summary_from_sql_sums_equals_the_one_from_values():
    values = np.array([0.0, 12.5, 80.0, 0.0, 33.3, 7.0])
    from_sums = Summary.from_sums(len(values), float(values.sum()), float((values**2).sum()))
    from_values = Summary.from_values(values)
    assert (from_sums.n, from_sums.mean) == (from_values.n, approx(from_values.mean))
    assert from_sums.variance == approx(from_values.variance)
    assert Summary.from_sums(0, 0.0, 0.0) == Summary(0, 0.0, 0.0)


def test_welch_with_too_few_users_or_no_spread_says_only_what_it_can():
    assert S.welch_t_test(Summary(0, 0, 0), Summary(10, 5.0, 1.0)).difference is None
    one_user = S.welch_t_test(Summary(1, 8.0, 0.0), Summary(10, 5.0, 1.0))
    assert one_user.difference == 3.0 and one_user.p_value is None
    assert one_user.lift == approx(0.6)
    no_spread = S.welch_t_test(Summary(5, 0.0, 0.0), Summary(5, 0.0, 0.0))
    assert no_spread.p_value is None and no_spread.lift is None


# ---- sample ratio mismatch ------------------------------------------------------------
def test_srm_matches_kohavis_worked_example():
    # Kohavi, Tang & Xu (2020), "Trustworthy Online Controlled Experiments", ch. 3: a
    # 50/50 design with 821,588 control and 815,482 treatment users has p = 1.8e-6.
    result = S.sample_ratio_mismatch([821_588, 815_482], [0.5, 0.5])
    assert result.srm_p_value == approx(1.8e-6, rel=0.05)
    assert result.mismatch


def test_srm_equals_scipys_goodness_of_fit_against_the_weights():
    users, weights = [95, 905], [10, 90]
    expected = sps.chisquare(users, [100, 900]).pvalue
    result = S.sample_ratio_mismatch(users, weights)
    assert result.srm_p_value == approx(expected) and not result.mismatch
    assert result.expected == approx((100.0, 900.0))
    three = S.sample_ratio_mismatch([340, 300, 360], [1, 1, 1])
    assert three.srm_p_value == approx(sps.chisquare([340, 300, 360]).pvalue)


def test_srm_edge_cases():
    assert S.sample_ratio_mismatch([0, 0], [1, 1]).srm_p_value is None
    assert S.sample_ratio_mismatch([5, 3], [1, 0]) == S.SrmResult(0.0, True, (8.0, 0.0))
    assert S.sample_ratio_mismatch([8, 0], [1, 0]).srm_p_value == 1.0
    with pytest.raises(StatsInputError):
        S.sample_ratio_mismatch([1, 2], [1])
    with pytest.raises(StatsInputError):
        S.sample_ratio_mismatch([1, 2], [-1, 2])


# ---- power ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("baseline", "mde", "ratio", "alpha", "power"),
    [(0.10, 0.10, 1.0, 0.05, 0.8), (0.05, 0.20, 9.0, 0.05, 0.8), (0.30, 0.05, 1 / 9, 0.01, 0.9), (0.02, 0.5, 2.0, 0.1, 0.8)],
)  # fmt: skip
def test_required_sample_size_equals_statsmodels_normal_ind_power(
    baseline, mde, ratio, alpha, power
):
    h = proportion_effectsize(baseline * (1 + mde), baseline)
    n1 = NormalIndPower().solve_power(
        effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    control, treatment = S.required_sample_size(
        baseline, mde, ratio=ratio, alpha=alpha, power=power
    )
    # ceil of the closed form; statsmodels also counts the far tail (a fraction of a user)
    assert control == math.ceil(n1) or control == math.ceil(n1) + 1
    assert treatment in (math.ceil(ratio * n1), math.ceil(ratio * n1) + 1)


def test_required_sample_size_absolute_mde_and_the_textbook_figure():
    # 10 % baseline, +1 point absolute, 5 %/80 %: the usual ~14,750 users per arm
    assert S.required_sample_size(0.10, 0.01, relative=False) == (14745, 14745)
    assert S.required_sample_size(0.10, 0.10) == (14745, 14745)


@pytest.mark.parametrize(
    "args", [(0.0, 0.1), (1.0, 0.1), (0.5, 0.0), (0.8, 0.5)]
)  # the last moves the rate past 1
def test_required_sample_size_refuses_impossible_inputs(args):
    with pytest.raises(StatsInputError):
        S.required_sample_size(*args)


def test_sample_size_needed_splits_the_remaining_users_by_the_weights():
    arms = [Counts(100, 1000), Counts(1000, 9000)]  # holdout 10 %, reminder 90 %
    result = S.sample_size_needed(arms, [10, 90], control=0, mde=0.2)
    assert result is not None
    control, treatment = S.required_sample_size(0.10, 0.2, ratio=9.0)
    assert result.per_arm == (control, treatment) and result.baseline_rate == 0.10
    # the holdout is the bottleneck: it gets 10 % of every new exposure
    assert result.remaining == math.ceil(max((control - 1000) / 0.1, (treatment - 9000) / 0.9))
    done = S.sample_size_needed(
        [Counts(10_000, 100_000), Counts(95_000, 900_000)], [10, 90], control=0, mde=0.2
    )
    assert done is not None and done.remaining == 0


def test_sample_size_needed_with_three_arms_takes_the_largest_control_need():
    arms = [Counts(50, 500), Counts(60, 500), Counts(55, 500)]
    result = S.sample_size_needed(arms, [1, 1, 2], control=0, mde=0.1)
    assert result is not None
    _, one = S.required_sample_size(0.1, 0.1, ratio=1.0)
    c_two, two = S.required_sample_size(0.1, 0.1, ratio=2.0)
    c_one, _ = S.required_sample_size(0.1, 0.1, ratio=1.0)
    assert result.per_arm == (max(c_one, c_two), one, two)


def test_sample_size_needed_waits_for_a_baseline():
    assert (
        S.sample_size_needed([Counts(0, 100), Counts(3, 100)], [1, 1], control=0, mde=0.1) is None
    )
    given = S.sample_size_needed(
        [Counts(0, 100), Counts(3, 100)], [1, 1], control=0, mde=0.1, baseline_rate=0.05
    )
    assert given is not None and given.baseline_rate == 0.05


# ---- mSPRT ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("d", "v", "tau2"), [(0.01, 4e-5, 1e-4), (-0.03, 1e-4, 1e-4), (0.0, 2e-5, 4e-4), (2.0, 0.5, 0.25)]
)  # fmt: skip
def test_mixture_likelihood_ratio_is_the_integral_that_defines_it(d, v, tau2):
    # Johari, Koomen, Pekelis & Walsh (2017), "Peeking at A/B tests", KDD: the
    # likelihood ratio of N(theta, V) against N(0, V), averaged over theta ~ N(0, tau2)
    sd = math.sqrt(tau2)

    def integrand(theta):
        ratio = sps.norm.pdf(d, theta, math.sqrt(v)) / sps.norm.pdf(d, 0, math.sqrt(v))
        return ratio * sps.norm.pdf(theta, 0, sd)

    expected, _ = integrate.quad(integrand, -12 * sd, 12 * sd, points=[0.0, d])
    assert S.mixture_likelihood_ratio(d, v, tau2=tau2) == approx(expected, rel=1e-7)


def test_the_confidence_sequence_ends_where_the_ratio_reaches_one_over_alpha():
    v, tau2, alpha, d = 3e-5, 1e-4, 0.05, 0.012
    half = S.confidence_sequence_half_width(v, tau2=tau2, alpha=alpha)
    for edge in (d - half, d + half):
        assert S.mixture_likelihood_ratio(d, v, tau2=tau2, null=edge) == approx(1 / alpha)
    # and it is wider than the fixed-horizon interval, the price of reading it at any time
    assert half > sps.norm.ppf(0.975) * math.sqrt(v)


def test_msprt_proportions_at_one_look():
    treatment, control = Counts(690, 5000), Counts(560, 5000)
    result = S.msprt_proportions(treatment, control)
    assert result is not None
    pt, pc = 690 / 5000, 560 / 5000
    v = pt * (1 - pt) / 5000 + pc * (1 - pc) / 5000
    lr = S.mixture_likelihood_ratio(pt - pc, v, tau2=S.DEFAULT_TAU2_PROPORTIONS)
    assert result.always_valid_p_value == approx(1 / lr)
    assert 0 < result.cs_low < result.difference < result.cs_high  # 0 is out: p < alpha
    # more conservative than the fixed-horizon test of the same data
    fixed = S.two_proportion_z_test(treatment, control).p_value
    assert fixed is not None and fixed < result.always_valid_p_value < 0.05


def test_msprt_edge_cases():
    assert S.msprt_proportions(Counts(0, 0), Counts(1, 10)) is None
    nothing = S.msprt_proportions(Counts(0, 100), Counts(0, 100))
    assert nothing is not None and nothing.always_valid_p_value == 1.0
    assert math.isinf(nothing.cs_high) and math.isinf(nothing.cs_low)
    huge = S.msprt(5.0, 1e-6, tau2=1.0)  # Λ overflows a float: p is 0, not an error
    assert huge.always_valid_p_value == 0.0
    with pytest.raises(StatsInputError):
        S.msprt(0.1, 0.01, tau2=0.0)


def test_msprt_means_uses_a_standardized_mixing_variance_by_default():
    t, c = Summary(800, 52.0, 900.0), Summary(800, 49.0, 870.0)
    result = S.msprt_means(t, c)
    assert result is not None
    pooled = (799 * 900.0 + 799 * 870.0) / 1598
    assert result.tau2 == approx(S.DEFAULT_STANDARDIZED_TAU**2 * pooled)
    assert result.difference == 3.0 and result.variance == approx(900 / 800 + 870 / 800)
    given = S.msprt_means(t, c, tau2=4.0)
    assert given is not None and given.tau2 == 4.0
    assert S.msprt_means(Summary(1, 1.0, 0.0), c) is None
    assert S.msprt_means(Summary(5, 1.0, 0.0), Summary(5, 1.0, 0.0)) is None


def test_sequential_over_looks_keeps_the_smallest_p_and_the_tightest_sequence():
    looks = [S.msprt(d, v, tau2=1e-4) for d, v in [(0.02, 4e-4), (0.03, 1e-4), (0.015, 5e-5)]]
    combined = S.sequential_over_looks(looks)
    assert combined.always_valid_p_value == min(x.always_valid_p_value for x in looks)
    assert combined.cs_low == max(x.cs_low for x in looks)
    assert combined.cs_high == min(x.cs_high for x in looks)
    assert combined.difference == 0.015
    with pytest.raises(StatsInputError):
        S.sequential_over_looks([])


def test_the_vectorized_p_values_are_the_scalar_ones_running_minimum():
    d, v = np.array([0.02, 0.03, 0.015]), np.array([4e-4, 1e-4, 5e-5])
    vector = S.always_valid_p_values(d, v, tau2=1e-4)
    scalars = [S.msprt(x, y, tau2=1e-4).always_valid_p_value for x, y in zip(d, v, strict=True)]
    assert list(vector) == approx(list(np.minimum.accumulate(scalars)))


RUNS, DAYS, USERS_PER_DAY, RATE = 1000, 30, 200, 0.10


def _daily_reads(rng: np.random.Generator, rate_t: float, rate_c: float):
    """RUNS experiments, each read at the end of every day on the cumulative counts:
    USERS_PER_DAY new users per arm per day."""
    xt = rng.binomial(USERS_PER_DAY, rate_t, (RUNS, DAYS)).cumsum(axis=1)
    xc = rng.binomial(USERS_PER_DAY, rate_c, (RUNS, DAYS)).cumsum(axis=1)
    n = USERS_PER_DAY * np.arange(1, DAYS + 1)
    pt, pc = xt / n, xc / n
    sequential = S.always_valid_p_values(
        pt - pc, pt * (1 - pt) / n + pc * (1 - pc) / n, tau2=S.DEFAULT_TAU2_PROPORTIONS
    )
    pooled = (xt + xc) / (2 * n)
    z = (pt - pc) / np.sqrt(pooled * (1 - pooled) * 2 / n)
    naive = 2 * sps.norm.sf(np.abs(z))  # the fixed-horizon z-test, read every day
    return sequential, naive


def test_an_aa_test_read_daily_crosses_the_sequential_boundary_rarely_and_naive_peeking_often():
    # the "done when": 1,000 simulated A/A tests, read every day for 30 days
    sequential, naive = _daily_reads(np.random.default_rng(20261), RATE, RATE)
    sequential_rate = float((sequential.min(axis=1) <= 0.05).mean())
    naive_rate = float((naive.min(axis=1) <= 0.05).mean())
    last_day_rate = float((naive[:, -1] <= 0.05).mean())
    print(
        f"\nA/A, {RUNS} runs x {DAYS} daily reads: sequential (mSPRT) crossed 5 % in "
        f"{sequential_rate:.1%} of runs, naive daily peeking in {naive_rate:.1%} "
        f"(the naive test read once, on day {DAYS}: {last_day_rate:.1%})"
    )
    assert sequential_rate <= 0.05
    assert naive_rate >= 0.15 and naive_rate > 3 * sequential_rate
    assert 0.03 <= last_day_rate <= 0.07  # read once, the fixed-horizon test is right


def test_a_real_effect_is_found_by_the_sequential_test():
    # +2 points on a 10 % rate: found in most runs, often before day 30; the fixed-horizon
    # test read only on day 30 finds it more often, the price of reading at any time
    sequential, naive = _daily_reads(np.random.default_rng(20262), RATE + 0.02, RATE)
    found = sequential <= 0.05
    power = float(found.any(axis=1).mean())
    first_day = np.where(found.any(axis=1), found.argmax(axis=1) + 1, DAYS + 1)
    print(
        f"\n+2 points on 10 %: the sequential test found it in {power:.1%} of runs "
        f"(median day {np.median(first_day):.0f}); the day-{DAYS} z-test in "
        f"{(naive[:, -1] <= 0.05).mean():.1%}"
    )
    assert power >= 0.65 and np.median(first_day) < DAYS


# ---- CUPED ----------------------------------------------------------------------------
def test_cuped_equals_the_definition_on_raw_values():
    rng = np.random.default_rng(3)
    x_t, x_c = rng.poisson(3.0, 300).astype(float), rng.poisson(3.0, 280).astype(float)
    y_t = 2 * x_t + rng.normal(1.0, 2.0, 300)
    y_c = 2 * x_c + rng.normal(0.0, 2.0, 280)
    result = S.cuped(CovariateSummary.from_values(y_t, x_t), CovariateSummary.from_values(y_c, x_c))
    # Deng et al. (2013): theta over the pooled data, Y - theta (X - mean X) per user
    y, x = np.concatenate([y_t, y_c]), np.concatenate([x_t, x_c])
    theta = np.cov(y, x)[0, 1] / np.var(x, ddof=1)
    adj_t, adj_c = y_t - theta * (x_t - x.mean()), y_c - theta * (x_c - x.mean())
    assert result.theta == approx(theta)
    assert (result.treatment_mean, result.control_mean) == approx((adj_t.mean(), adj_c.mean()))
    assert result.variance == approx(adj_t.var(ddof=1) / 300 + adj_c.var(ddof=1) / 280)
    assert result.unadjusted_variance == approx(y_t.var(ddof=1) / 300 + y_c.var(ddof=1) / 280)
    assert result.lift == approx(result.difference / adj_c.mean())


def test_pooling_two_summaries_equals_the_summary_of_both():
    rng = np.random.default_rng(4)
    y1, x1, y2, x2 = (
        rng.normal(size=50),
        rng.normal(size=50),
        rng.normal(2, 3, 70),
        rng.normal(1, 2, 70),
    )
    pooled = S.pool(CovariateSummary.from_values(y1, x1), CovariateSummary.from_values(y2, x2))
    whole = CovariateSummary.from_values(np.concatenate([y1, y2]), np.concatenate([x1, x2]))
    for name in ("n", "mean_y", "mean_x", "var_y", "var_x", "cov_xy"):
        assert getattr(pooled, name) == approx(getattr(whole, name)), name


def test_cuped_without_spread_in_the_covariate_is_the_plain_difference():
    y_t, y_c = np.array([1.0, 3.0, 5.0]), np.array([0.0, 2.0, 1.0])
    zeros = np.zeros(3)
    result = S.cuped(
        CovariateSummary.from_values(y_t, zeros), CovariateSummary.from_values(y_c, zeros)
    )
    assert result.theta == 0.0 and result.difference == approx(y_t.mean() - y_c.mean())
    assert result.variance_ratio == approx(1.0)
    with pytest.raises(StatsInputError):
        CovariateSummary.from_values([1.0], [1.0])


def _moments(y: np.ndarray, x: np.ndarray) -> list[CovariateSummary]:
    """One CovariateSummary per row (one simulated experiment arm), as SQL would give."""
    n = y.shape[1]
    my, mx = y.mean(axis=1), x.mean(axis=1)
    vy, vx = y.var(axis=1, ddof=1), x.var(axis=1, ddof=1)
    cxy = ((y - my[:, None]) * (x - mx[:, None])).sum(axis=1) / (n - 1)
    return [CovariateSummary(n, *map(float, row)) for row in zip(my, mx, vy, vx, cxy, strict=True)]


def test_cuped_reduces_the_variance_of_the_lift_on_correlated_pre_period_behavior():
    # Each user has a propensity to buy (gamma-distributed); X counts their orders in the
    # 28 days before exposure, Y in the attribution window after; the message adds 10 %.
    rng = np.random.default_rng(20263)
    experiments, users, effect = 2000, 400, 0.10
    propensity = rng.gamma(0.8, 1.5, (2, experiments, users))
    x = rng.poisson(propensity)
    y = rng.poisson(propensity * np.array([1 + effect, 1.0])[:, None, None])
    treatment, control = _moments(y[0], x[0]), _moments(y[1], x[1])
    results = [S.cuped(t, c) for t, c in zip(treatment, control, strict=True)]
    plain = y[0].mean(axis=1) - y[1].mean(axis=1)
    adjusted = np.array([r.difference for r in results])
    ratio = float(adjusted.var() / plain.var())
    reported = float(np.mean([r.variance_ratio for r in results]))
    truth = effect * 1.2  # E[Y_t] - E[Y_c] = effect * E[propensity] (0.8 * 1.5)
    coverage = float(np.mean([r.ci_low <= truth <= r.ci_high for r in results]))
    rho = np.corrcoef(x[1].ravel(), y[1].ravel())[0, 1]
    print(
        f"\nCUPED over {experiments} simulated experiments of {users} users per arm "
        f"(corr(X, Y) = {rho:.2f}): variance of the lift estimate x{ratio:.3f} of the plain "
        f"difference's (reported per experiment: x{reported:.3f}); 95 % interval "
        f"coverage {coverage:.1%}"
    )
    assert ratio < 0.75
    assert reported == approx(ratio, rel=0.1)  # the empirical one is itself noisy (~4 %)
    assert abs(adjusted.mean() - truth) < 4 * adjusted.std() / math.sqrt(experiments)
    assert 0.93 <= coverage <= 0.97


# ---- Holm -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "p", [[0.01, 0.04, 0.03, 0.005], [0.5], [0.001, 0.001, 0.2], [0.04, 0.03, 0.02, 0.5, 0.9]]
)
def test_holm_equals_statsmodels(p):
    _, expected, _, _ = multipletests(p, method="holm")
    assert list(S.holm(p)) == approx(list(expected))


def test_holm_worked_example_and_missing_values():
    # four metrics: sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.04, 0.06)
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == approx((0.03, 0.06, 0.06, 0.02))
    assert S.holm([None, 0.02, None, 0.04]) == (None, approx(0.04), None, approx(0.04))
    assert S.holm([]) == ()


# ---- one experiment's report ----------------------------------------------------------
def test_compare_conversions_for_a_holdout_and_a_reminder():
    arms = [Arm("holdout", 10, 400, 20), Arm("reminder", 90, 3600, 270)]
    report = S.compare_conversions(arms, control="holdout", mde=0.2)
    holdout, reminder = report.variants
    assert (holdout.name, holdout.conversion_rate, holdout.lift, holdout.p_value) == (
        "holdout", 0.05, None, None,
    )  # fmt: skip
    assert (holdout.ci_low, holdout.ci_high) == approx(proportion_confint(20, 400, method="wilson"))
    _, p = proportions_ztest([270, 20], [3600, 400])
    assert reminder.p_value == approx(p) and report.p_value == approx(p) and report.test == "z"
    assert reminder.lift == approx(0.075 / 0.05 - 1)
    assert (reminder.difference_ci_low, reminder.difference_ci_high) == approx(
        confint_proportions_2indep(270, 3600, 20, 400, method="newcomb")
    )
    assert reminder.always_valid_p_value is not None and reminder.cs_low is not None
    assert report.srm_p_value == approx(1.0) and not report.srm
    assert report.sample_size is not None and report.sample_size.baseline_rate == 0.05


def test_compare_conversions_for_three_variants_gives_the_chi_square():
    arms = [Arm("holdout", 10, 100, 5), Arm("email", 45, 450, 40), Arm("push", 45, 450, 30)]
    report = S.compare_conversions(arms, control="holdout")
    table = [[5, 95], [40, 410], [30, 420]]
    assert report.test == "chi2"
    assert report.p_value == approx(sps.chi2_contingency(table, correction=False).pvalue)
    assert [v.name for v in report.variants] == ["holdout", "email", "push"]
    assert report.sample_size is None


def test_compare_conversions_flags_a_broken_split_and_survives_an_empty_arm():
    broken = S.compare_conversions(
        [Arm("holdout", 10, 300, 10), Arm("reminder", 90, 1700, 90)], control="holdout"
    )
    assert broken.srm and broken.srm_p_value is not None and broken.srm_p_value < 1e-6
    early = S.compare_conversions(
        [Arm("holdout", 10, 0, 0), Arm("reminder", 90, 12, 1)], control="holdout", mde=0.1
    )
    assert early.p_value is None and early.sample_size is None
    assert early.variants[1].lift is None and early.variants[1].always_valid_p_value is None
    with pytest.raises(StatsInputError):
        S.compare_conversions([Arm("a", 1, 1, 0), Arm("a", 1, 1, 0)], control="a")
