"""The statistics of experiment reports (docs/measurement.md): pure functions over
aggregates, no I/O.

The reports count users and conversions per variant, and sum revenue or engagement, in
SQL; what reaches this module are those aggregates (`Counts`, `Summary`,
`CovariateSummary`), never raw rows. Each result is a small frozen dataclass whose fields
are named as the report's JSON keys (`conversion_rate`, `ci_low`, `ci_high`, `lift`,
`p_value`, `srm_p_value`, ...). A value that the data cannot give (a rate of an empty
arm, a test with no variation) is `None`, never NaN, so a result serializes to JSON as it
is.

What is here, each checked against scipy / statsmodels or a published worked example in
tests/unit/test_stats.py:

- `wilson_interval`: Wilson's score interval for one proportion.
- `newcombe_interval`: Newcombe's hybrid score interval for a difference of proportions.
- `relative_lift`: the relative lift (ratio - 1) with the Katz log interval of the ratio.
- `two_proportion_z_test`, `chi_square_test` (more than two arms), `proportions_test`
  (whichever of the two applies).
- `welch_t_test`: Welch's t-test from summary statistics (n, mean, variance per arm).
- `sample_ratio_mismatch`: a chi-square goodness of fit of the users per arm against the
  configured weights.
- `required_sample_size`, `sample_size_needed`: power for a minimum detectable effect.
- `msprt`, `msprt_proportions`, `msprt_means`, `sequential_over_looks`,
  `always_valid_p_values`: always-valid inference (a mixture sequential probability
  ratio test, normal approximation) — a p-value and a confidence sequence that may be
  read after every batch of data without inflating false positives.
- `cuped`: variance reduction with a pre-exposure covariate (Deng et al. 2013).
- `holm`: Holm's step-down adjustment when several metrics are reported.

What is plain arithmetic with nothing for scipy to check it against (Holm's adjustment,
the confidence sequence's half-width) has one home, nudge.domain.report_stats, which
these call.
- `compare_conversions`: the conversion part of an experiment report, all of the above
  applied to the arms of one experiment.

scipy (with numpy) is the `stats` extra of the package, not yet in the Lambda deps
layer (docs/decisions.md D29): only code that reports imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from nudge.domain import report_stats

DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
# A sample-ratio mismatch is an alarm about the assignment or the logging, not a result:
# a much stricter threshold than the tests' (a common convention; Fabijan et al. 2019,
# "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments"), so that it does
# not fire by chance.
SRM_ALPHA = 0.001
# mSPRT's mixing distribution N(0, tau²) over the true difference (docs/measurement.md):
# for conversion rates, tau = 2 percentage points (tau² = 4e-4), the size of effect a
# message typically has. The boundary is tightest when tau² is about 8 times the variance
# of the difference, flat around it, and valid (if loose) for any tau² > 0.
DEFAULT_TAU2_PROPORTIONS = 0.02**2
# For continuous metrics (revenue, seconds) the scale is the metric's: tau is this many
# pooled standard deviations of one user's value (a standardized effect of 0.1).
DEFAULT_STANDARDIZED_TAU = 0.1
# CUPED's covariate: the same metric per user over the days before the user's first
# exposure to the experiment (docs/measurement.md).
CUPED_PRE_EXPOSURE_DAYS = 28

TestName = Literal["z", "chi2"]


class StatsInputError(ValueError):
    """Aggregates that cannot describe data (more conversions than users, a negative
    count or variance, a weight below zero, a probability outside (0, 1))."""


def _z(alpha: float) -> float:
    """The two-sided normal critical value z_{1 - alpha/2}."""
    if not 0 < alpha < 1:
        raise StatsInputError(f"alpha must be in (0, 1), not {alpha}")
    return float(sps.norm.ppf(1 - alpha / 2))


# ---- proportions --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Counts:
    """Users exposed in one arm and how many of them converted."""

    conversions: int
    users: int

    def __post_init__(self) -> None:
        if self.users < 0 or self.conversions < 0 or self.conversions > self.users:
            raise StatsInputError(
                f"conversions {self.conversions} of users {self.users}: need "
                "0 <= conversions <= users"
            )

    @property
    def rate(self) -> float | None:
        return self.conversions / self.users if self.users else None


def wilson_interval(counts: Counts, *, alpha: float = DEFAULT_ALPHA) -> tuple[float, float]:
    """Wilson's score interval for a proportion (Wilson 1927; Newcombe 1998a, method 3).

    With p = x/n and z = z_{1-alpha/2}:
        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)
    It stays inside [0, 1] and has close to nominal coverage at small n and at rates near
    0 or 1, where the Wald interval p ± z·sqrt(p(1-p)/n) fails. An empty arm: (0, 1).
    """
    n, x = counts.users, counts.conversions
    if n == 0:
        return 0.0, 1.0
    z = _z(alpha)
    p = x / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at x = 0 or x = n one bound is exactly 0 or 1; rounding must not move it
    low = 0.0 if x == 0 else max(0.0, centre - half)
    high = 1.0 if x == n else min(1.0, centre + half)
    return low, high


def newcombe_interval(
    treatment: Counts, control: Counts, *, alpha: float = DEFAULT_ALPHA
) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p_t - p_c (Newcombe 1998b, method 10): the
    Wilson intervals (l_t, u_t) and (l_c, u_c) of the two rates combined as

        low  = d - sqrt((p_t - l_t)² + (u_c - p_c)²)
        high = d + sqrt((u_t - p_t)² + (p_c - l_c)²)

    Good coverage down to small counts and zero conversions. `None` when an arm is empty.
    """
    pt, pc = treatment.rate, control.rate
    if pt is None or pc is None:
        return None
    lt, ut = wilson_interval(treatment, alpha=alpha)
    lc, uc = wilson_interval(control, alpha=alpha)
    d = pt - pc
    return d - math.hypot(pt - lt, uc - pc), d + math.hypot(ut - pt, pc - lc)


@dataclass(frozen=True, slots=True)
class Lift:
    """Relative lift of the treatment's rate over the control's, p_t / p_c - 1, and its
    interval; `None` where the data cannot give it (see `relative_lift`)."""

    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None


def relative_lift(treatment: Counts, control: Counts, *, alpha: float = DEFAULT_ALPHA) -> Lift:
    """The relative lift p_t / p_c - 1 with the Katz log interval of the risk ratio
    (Katz et al. 1978):

        log(RR) ± z * sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c),   lift interval = exp(...) - 1

    `lift` is `None` when the control has no conversion (no ratio); the interval is
    `None` when either arm has none (the log of zero).
    """
    pt, pc = treatment.rate, control.rate
    if pt is None or pc is None or pc == 0:
        return Lift(None, None, None)
    ratio = pt / pc
    if treatment.conversions == 0:
        return Lift(ratio - 1, None, None)
    se = math.sqrt(
        1 / treatment.conversions
        - 1 / treatment.users
        + 1 / control.conversions
        - 1 / control.users
    )
    z = _z(alpha)
    log_ratio = math.log(ratio)
    return Lift(ratio - 1, math.exp(log_ratio - z * se) - 1, math.exp(log_ratio + z * se) - 1)


@dataclass(frozen=True, slots=True)
class TestResult:
    """A test of equal rates: which test, its statistic (z, or chi-square with `df`
    degrees of freedom) and two-sided p-value; `None` when the data have no variation to
    test (an empty arm, no conversion anywhere, or every user converted)."""

    test: TestName
    statistic: float | None
    p_value: float | None
    df: int | None = None


def two_proportion_z_test(treatment: Counts, control: Counts) -> TestResult:
    """The pooled two-proportion z-test (as statsmodels' `proportions_ztest`):

        p = (x_t + x_c) / (n_t + n_c),  z = (p_t - p_c) / sqrt(p(1 - p)(1/n_t + 1/n_c))

    and p-value 2·(1 - Φ(|z|)). Identical to the 2x2 chi-square without Yates's
    correction (z² = chi²)."""
    pt, pc = treatment.rate, control.rate
    if pt is None or pc is None:
        return TestResult("z", None, None)
    pooled = (treatment.conversions + control.conversions) / (treatment.users + control.users)
    se = math.sqrt(pooled * (1 - pooled) * (1 / treatment.users + 1 / control.users))
    if se == 0:
        return TestResult("z", None, None)
    z = (pt - pc) / se
    return TestResult("z", z, float(2 * sps.norm.sf(abs(z))))


def chi_square_test(arms: Sequence[Counts]) -> TestResult:
    """Pearson's chi-square test of independence of arm and conversion over the k x 2
    table (`scipy.stats.chi2_contingency`, no continuity correction), for more than two
    arms; df = k - 1. Empty arms are left out of the table."""
    rows = [[a.conversions, a.users - a.conversions] for a in arms if a.users > 0]
    converted = sum(r[0] for r in rows)
    not_converted = sum(r[1] for r in rows)
    if len(rows) < 2 or converted == 0 or not_converted == 0:
        return TestResult("chi2", None, None)
    result = sps.chi2_contingency(np.array(rows), correction=False)
    return TestResult("chi2", float(result.statistic), float(result.pvalue), int(result.dof))


def proportions_test(arms: Sequence[Counts]) -> TestResult:
    """The test the report gives: the z-test for two arms (the first is the treatment,
    the second the control), the chi-square for more."""
    if len(arms) == 2:
        return two_proportion_z_test(arms[0], arms[1])
    return chi_square_test(arms)


# ---- continuous metrics -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Summary:
    """One arm's continuous metric (revenue, engagement seconds): users, mean and the
    sample variance (n - 1 in the denominator, SQL's `var_samp`)."""

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        if self.n < 0 or self.variance < 0:
            raise StatsInputError(f"n {self.n} and variance {self.variance} must be >= 0")

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> Summary:
        a = np.asarray(values, dtype=np.float64)
        n = int(a.size)
        return cls(n, float(a.mean()) if n else 0.0, float(a.var(ddof=1)) if n > 1 else 0.0)

    @classmethod
    def from_sums(cls, n: int, total: float, total_of_squares: float) -> Summary:
        """From SQL's `count(*)`, `sum(v)` and `sum(v * v)`: fine for revenue-sized
        numbers; prefer `var_samp` when the mean is large against the spread."""
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        variance = max(0.0, (total_of_squares - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        return cls(n, mean, variance)


# Welch's t-test's result is the report's (nudge.domain.report_stats.WelchResult): the
# difference of means with its interval, t, the Welch-Satterthwaite degrees of freedom,
# the two-sided p-value and the relative lift
WelchResult = report_stats.WelchResult


def welch_t_test(
    treatment: Summary, control: Summary, *, alpha: float = DEFAULT_ALPHA
) -> WelchResult:
    """Welch's unequal-variance t-test from summary statistics
    (`scipy.stats.ttest_ind_from_stats(equal_var=False)`):

        se = sqrt(s_t²/n_t + s_c²/n_c),  t = (m_t - m_c) / se,
        df = se⁴ / ((s_t²/n_t)²/(n_t - 1) + (s_c²/n_c)²/(n_c - 1))

    and the interval (m_t - m_c) ± t_{1-alpha/2, df} · se. Needs two users per arm and
    some spread; otherwise only what can be said (the difference, the lift)."""
    lift = (
        (treatment.mean - control.mean) / control.mean
        if control.n and treatment.n and control.mean != 0
        else None
    )
    if treatment.n == 0 or control.n == 0:
        return WelchResult(None, None, None, None, None, None, None)
    difference = treatment.mean - control.mean
    vt, vc = treatment.variance / treatment.n, control.variance / control.n
    if treatment.n < 2 or control.n < 2 or vt + vc == 0:
        return WelchResult(difference, None, None, None, None, None, lift)
    se = math.sqrt(vt + vc)
    df = (vt + vc) ** 2 / (vt**2 / (treatment.n - 1) + vc**2 / (control.n - 1))
    result = sps.ttest_ind_from_stats(
        treatment.mean,
        math.sqrt(treatment.variance),
        treatment.n,
        control.mean,
        math.sqrt(control.variance),
        control.n,
        equal_var=False,
    )
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    return WelchResult(
        difference,
        difference - half,
        difference + half,
        float(result.statistic),
        df,
        float(result.pvalue),
        lift,
    )


# ---- sample ratio mismatch ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SrmResult:
    """The users per arm against the configured weights: the chi-square goodness-of-fit
    p-value, whether it is below `SRM_ALPHA` (the split is broken: distrust every other
    number of the report), and the users each arm should have had."""

    srm_p_value: float | None
    mismatch: bool
    expected: tuple[float, ...]


def sample_ratio_mismatch(
    users: Sequence[int], weights: Sequence[float], *, alpha: float = SRM_ALPHA
) -> SrmResult:
    """`scipy.stats.chisquare(users, total · w / Σw)` with k - 1 degrees of freedom. Users
    in an arm of weight 0 are a mismatch outright (p = 0)."""
    if len(users) != len(weights) or len(users) < 2:
        raise StatsInputError("one weight per arm, and at least two arms")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise StatsInputError(f"weights must be >= 0 with a positive sum, not {list(weights)}")
    total = sum(users)
    expected = tuple(total * w / sum(weights) for w in weights)
    if total == 0:
        return SrmResult(None, False, expected)
    if any(u > 0 and e == 0 for u, e in zip(users, expected, strict=True)):
        return SrmResult(0.0, True, expected)
    kept = [(u, e) for u, e in zip(users, expected, strict=True) if e > 0]
    if len(kept) < 2:
        return SrmResult(1.0, False, expected)
    observed, wanted = zip(*kept, strict=True)
    p = float(sps.chisquare(np.array(observed), np.array(wanted)).pvalue)
    return SrmResult(p, p < alpha, expected)


# ---- power --------------------------------------------------------------------------------------
def required_sample_size(
    baseline_rate: float,
    mde: float,
    *,
    relative: bool = True,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    ratio: float = 1.0,
) -> tuple[int, int]:
    """Users (control, treatment) for a two-sided two-proportion test at `alpha` to detect
    a difference of `mde` with probability `power`; `ratio` = treatment users per control
    user (the weights' ratio). `mde` is relative to the baseline (0.1: +10 %) unless
    `relative=False` (then absolute: 0.01 is one percentage point).

    The normal approximation on the arcsine scale (Cohen 1988, ch. 6; what statsmodels'
    `NormalIndPower` solves), with Cohen's effect size h = 2·asin(√p_t) - 2·asin(√p_c):

        n_control = ((z_{1-alpha/2} + z_{power}) / h)² · (1 + 1/ratio),
        n_treatment = ratio · n_control,

    each rounded up. (It ignores the far tail's tiny share of the power, so it is at
    most one user above the exact root.)"""
    if not 0 < baseline_rate < 1:
        raise StatsInputError(f"the baseline rate must be in (0, 1), not {baseline_rate}")
    if not 0 < power < 1 or ratio <= 0 or mde == 0:
        raise StatsInputError("need 0 < power < 1, ratio > 0 and a non-zero effect")
    target = baseline_rate * (1 + mde) if relative else baseline_rate + mde
    if not 0 < target <= 1:
        raise StatsInputError(f"the baseline {baseline_rate} moved by {mde} leaves (0, 1]")
    h = 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline_rate))
    n_control = ((_z(alpha) + float(sps.norm.ppf(power))) / h) ** 2 * (1 + 1 / ratio)
    return math.ceil(n_control), math.ceil(ratio * n_control)


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Users each arm needs for the stated minimum detectable effect, and how many more
    users must be exposed (split by the weights) until every arm has its share."""

    baseline_rate: float
    per_arm: tuple[int, ...]
    remaining: int


def sample_size_needed(
    arms: Sequence[Counts],
    weights: Sequence[float],
    *,
    control: int,
    mde: float,
    relative: bool = True,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    baseline_rate: float | None = None,
) -> SampleSize | None:
    """Each treatment arm against the control arm (index `control`) at the weights'
    ratio; the control needs the largest of its comparisons. The baseline is the control's
    observed rate unless given. `remaining` = max over arms of (needed - users)⁺ / share,
    the share being the arm's weight over the total: the further exposures until the last
    arm is complete. `None` while the baseline is unknown (no conversion in the control
    yet, or every control user converted)."""
    if len(arms) != len(weights) or len(arms) < 2 or not 0 <= control < len(arms):
        raise StatsInputError("one weight per arm, at least two arms, a control among them")
    baseline = baseline_rate if baseline_rate is not None else arms[control].rate
    if baseline is None or not 0 < baseline < 1 or weights[control] <= 0:
        return None
    needed = [0] * len(arms)
    for i, w in enumerate(weights):
        if i == control or w <= 0:
            continue
        n_control, n_treatment = required_sample_size(
            baseline,
            mde,
            relative=relative,
            alpha=alpha,
            power=power,
            ratio=w / weights[control],
        )
        needed[control] = max(needed[control], n_control)
        needed[i] = n_treatment
    total_weight = sum(weights)
    remaining = max(
        (max(0, need - arm.users) * total_weight / w)
        for need, arm, w in zip(needed, arms, weights, strict=True)
        if w > 0
    )
    return SampleSize(baseline, tuple(needed), math.ceil(remaining))


# ---- always-valid inference (mSPRT) -------------------------------------------------------------
def _log_mixture_likelihood_ratio(
    difference: npt.ArrayLike, variance: npt.ArrayLike, tau2: float, null: float
) -> npt.NDArray[np.float64]:
    d = np.asarray(difference, dtype=np.float64) - null
    v = np.asarray(variance, dtype=np.float64)
    safe = np.where(v > 0, v, 1.0)
    log_lr = 0.5 * np.log(safe / (safe + tau2)) + tau2 * d * d / (2 * safe * (safe + tau2))
    # no variance yet (no data, or no variation in either arm): no evidence either way
    return np.where(v > 0, log_lr, 0.0)


def mixture_likelihood_ratio(
    difference: float, variance: float, *, tau2: float, null: float = 0.0
) -> float:
    """The mSPRT statistic for an estimate `difference` ~ N(θ, `variance`) against
    H0: θ = `null`, mixing the alternatives over θ ~ N(null, tau²) (Robbins 1970;
    Johari, Koomen, Pekelis & Walsh 2017, "Peeking at A/B tests"):

        Λ = ∫ φ(d; θ, V) / φ(d; null, V) · φ(θ; null, τ²) dθ
          = sqrt(V / (V + τ²)) · exp(τ² (d - null)² / (2V (V + τ²)))

    Under H0, Λ over the looks is a non-negative martingale with mean 1, so by Ville's
    inequality P(Λ ever reaches 1/alpha) <= alpha: the test may be read at every look."""
    if tau2 <= 0:
        raise StatsInputError(f"the mixing variance tau² must be > 0, not {tau2}")
    return float(np.exp(_log_mixture_likelihood_ratio(difference, variance, tau2, null)))


def confidence_sequence_half_width(
    variance: float, *, tau2: float, alpha: float = DEFAULT_ALPHA
) -> float:
    """Half the width of the (1 - alpha) confidence sequence: the θ0 whose Λ stays below
    1/alpha, |d - θ0| < sqrt(V (V + τ²)/τ² · (2 log(1/alpha) + log((V + τ²)/V)));
    infinite while V = 0."""
    if tau2 <= 0 or not 0 < alpha < 1:
        raise StatsInputError("need tau² > 0 and 0 < alpha < 1")
    return report_stats.confidence_sequence_half_width(variance, tau2, alpha)


def always_valid_p_values(
    difference: npt.ArrayLike, variance: npt.ArrayLike, *, tau2: float
) -> npt.NDArray[np.float64]:
    """Always-valid p-values of looks in order along the last axis: p_n = min(p_{n-1},
    1/Λ_n), p_0 = 1 (Johari et al. 2017). Vectorized: many simulated experiments
    at once, one row each."""
    if tau2 <= 0:
        raise StatsInputError(f"the mixing variance tau² must be > 0, not {tau2}")
    p = np.exp(np.minimum(0.0, -_log_mixture_likelihood_ratio(difference, variance, tau2, 0.0)))
    return np.minimum.accumulate(p, axis=-1)


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """One look of the mSPRT: the estimate and its variance, the always-valid p-value and
    the (1 - alpha) confidence sequence [cs_low, cs_high] for the true difference, with
    the mixing variance used. Valid whenever it is read, as often as it is read."""

    difference: float
    variance: float
    always_valid_p_value: float
    cs_low: float
    cs_high: float
    tau2: float


def msprt(
    difference: float, variance: float, *, tau2: float, alpha: float = DEFAULT_ALPHA
) -> SequentialResult:
    """One look: p = min(1, 1/Λ) against θ = 0 and d ± `confidence_sequence_half_width`.
    `sequential_over_looks` takes the running minimum and intersection over looks."""
    if tau2 <= 0:
        raise StatsInputError(f"the mixing variance tau² must be > 0, not {tau2}")
    log_lr = float(_log_mixture_likelihood_ratio(difference, variance, tau2, 0.0))
    half = confidence_sequence_half_width(variance, tau2=tau2, alpha=alpha)
    return SequentialResult(
        difference,
        variance,
        math.exp(min(0.0, -log_lr)),  # 1/Λ from its log: no overflow when Λ is huge
        difference - half,
        difference + half,
        tau2,
    )


def msprt_proportions(
    treatment: Counts,
    control: Counts,
    *,
    tau2: float = DEFAULT_TAU2_PROPORTIONS,
    alpha: float = DEFAULT_ALPHA,
) -> SequentialResult | None:
    """The mSPRT of p_t - p_c, normal approximation with the plug-in variance
    p_t(1 - p_t)/n_t + p_c(1 - p_c)/n_c (as Optimizely's stats engine). `None` while an
    arm is empty."""
    pt, pc = treatment.rate, control.rate
    if pt is None or pc is None:
        return None
    variance = pt * (1 - pt) / treatment.users + pc * (1 - pc) / control.users
    return msprt(pt - pc, variance, tau2=tau2, alpha=alpha)


def msprt_means(
    treatment: Summary,
    control: Summary,
    *,
    tau2: float | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> SequentialResult | None:
    """The mSPRT of m_t - m_c with variance s_t²/n_t + s_c²/n_c. Without `tau2`, tau is
    `DEFAULT_STANDARDIZED_TAU` pooled standard deviations of one user's value. `None`
    while an arm has fewer than two users or there is no spread."""
    if treatment.n < 2 or control.n < 2:
        return None
    variance = treatment.variance / treatment.n + control.variance / control.n
    if variance == 0:
        return None
    if tau2 is None:
        pooled = ((treatment.n - 1) * treatment.variance + (control.n - 1) * control.variance) / (
            treatment.n + control.n - 2
        )
        tau2 = DEFAULT_STANDARDIZED_TAU**2 * pooled
    return msprt(treatment.mean - control.mean, variance, tau2=tau2, alpha=alpha)


def sequential_over_looks(looks: Sequence[SequentialResult]) -> SequentialResult:
    """The looks so far (e.g. the cumulative counts at the end of each day) as one
    result: the running minimum of the p-value and the intersection of the confidence
    sequences (both stay valid; Johari et al. 2017), the latest estimate."""
    if not looks:
        raise StatsInputError("no look to combine")
    last = looks[-1]
    return SequentialResult(
        last.difference,
        last.variance,
        min(look.always_valid_p_value for look in looks),
        max(look.cs_low for look in looks),
        min(look.cs_high for look in looks),
        last.tau2,
    )


# ---- CUPED --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CovariateSummary:
    """One arm's outcome Y (the metric after exposure) and pre-exposure covariate X (the
    same metric over the `CUPED_PRE_EXPOSURE_DAYS` before exposure), per user: n, means,
    sample variances and covariance (SQL's `avg`, `var_samp`, `covar_samp`)."""

    n: int
    mean_y: float
    mean_x: float
    var_y: float
    var_x: float
    cov_xy: float

    @classmethod
    def from_values(cls, y: npt.ArrayLike, x: npt.ArrayLike) -> CovariateSummary:
        ya, xa = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
        if ya.shape != xa.shape or ya.size < 2:
            raise StatsInputError("one covariate per outcome, and at least two users")
        c = np.cov(ya, xa, ddof=1)
        return cls(
            int(ya.size),
            float(ya.mean()),
            float(xa.mean()),
            float(c[0, 0]),
            float(c[1, 1]),
            float(c[0, 1]),
        )


def pool(a: CovariateSummary, b: CovariateSummary) -> CovariateSummary:
    """Both arms as one sample (Chan, Golub & LeVeque's pairwise update of the moments)."""
    n = a.n + b.n
    dy, dx = b.mean_y - a.mean_y, b.mean_x - a.mean_x
    share = a.n * b.n / n

    def combined(ma: float, mb: float, d1: float, d2: float) -> float:
        return ((a.n - 1) * ma + (b.n - 1) * mb + d1 * d2 * share) / (n - 1)

    return CovariateSummary(
        n,
        (a.n * a.mean_y + b.n * b.mean_y) / n,
        (a.n * a.mean_x + b.n * b.mean_x) / n,
        combined(a.var_y, b.var_y, dy, dy),
        combined(a.var_x, b.var_x, dx, dx),
        combined(a.cov_xy, b.cov_xy, dy, dx),
    )


@dataclass(frozen=True, slots=True)
class CupedResult:
    """The CUPED estimate: theta, both arms' adjusted means, their difference with its
    normal interval and variance, the variance the plain difference of means would have,
    their ratio (< 1: CUPED is the sharper estimate) and the relative lift."""

    theta: float
    treatment_mean: float
    control_mean: float
    difference: float
    ci_low: float
    ci_high: float
    variance: float
    unadjusted_variance: float
    variance_ratio: float | None
    lift: float | None


def cuped(
    treatment: CovariateSummary, control: CovariateSummary, *, alpha: float = DEFAULT_ALPHA
) -> CupedResult:
    """CUPED (Deng, Xu, Kohavi & Walker 2013, "Improving the sensitivity of online
    controlled experiments by utilizing pre-experiment data"):

        theta   = cov(Y, X) / var(X)                    over both arms pooled
        Ŷ_arm   = Ȳ_arm - theta · (X̄_arm - X̄)          X̄ the pooled mean
        var(Ŷ_arm) = (var(Y) - 2·theta·cov(Y, X) + theta²·var(X)) / n   within the arm

    X is measured before exposure, so the treatment cannot move it and the adjusted
    difference is unbiased; its variance is about (1 - rho²) times the plain one, rho the
    correlation of Y and X. With no spread in X (theta undefined) it is the plain
    difference."""
    if treatment.n < 2 or control.n < 2:
        raise StatsInputError("CUPED needs at least two users per arm")
    both = pool(treatment, control)
    theta = both.cov_xy / both.var_x if both.var_x > 0 else 0.0

    def adjusted(arm: CovariateSummary) -> tuple[float, float]:
        mean = arm.mean_y - theta * (arm.mean_x - both.mean_x)
        spread = arm.var_y - 2 * theta * arm.cov_xy + theta * theta * arm.var_x
        return mean, max(0.0, spread) / arm.n

    mt, vt = adjusted(treatment)
    mc, vc = adjusted(control)
    difference, variance = mt - mc, vt + vc
    unadjusted = treatment.var_y / treatment.n + control.var_y / control.n
    half = _z(alpha) * math.sqrt(variance)
    return CupedResult(
        theta,
        mt,
        mc,
        difference,
        difference - half,
        difference + half,
        variance,
        unadjusted,
        variance / unadjusted if unadjusted > 0 else None,
        difference / mc if mc != 0 else None,
    )


# ---- several metrics ----------------------------------------------------------------------------
def holm(p_values: Sequence[float | None]) -> tuple[float | None, ...]:
    """Holm's step-down adjustment (Holm 1979), controlling the family-wise error rate
    over the m p-values given: sorted ascending, p̃_(i) = max_{j<=i} min(1, (m - j + 1)·
    p_(j)). `None` entries stay `None` and do not count in m. Plain arithmetic: the
    report's (nudge.domain.report_stats.holm), as a tuple."""
    return tuple(report_stats.holm(p_values))


# ---- one experiment's conversions ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Arm:
    """A variant of an experiment as the report counts it: its configured weight, the
    users exposed and those who converted within the attribution window."""

    name: str
    weight: float
    users: int
    conversions: int

    @property
    def counts(self) -> Counts:
        return Counts(self.conversions, self.users)


@dataclass(frozen=True, slots=True)
class VariantStats:
    """One variant's line of the report. The comparison fields (lift, the difference and
    their intervals, p_value, the sequential ones) compare it with the control and are
    `None` on the control itself."""

    name: str
    users: int
    conversions: int
    conversion_rate: float | None
    ci_low: float
    ci_high: float
    lift: float | None = None
    lift_ci_low: float | None = None
    lift_ci_high: float | None = None
    difference: float | None = None
    difference_ci_low: float | None = None
    difference_ci_high: float | None = None
    p_value: float | None = None
    always_valid_p_value: float | None = None
    cs_low: float | None = None
    cs_high: float | None = None


@dataclass(frozen=True, slots=True)
class ConversionStats:
    """An experiment's conversions: each variant, the test of equal rates over all arms
    (z for two, chi-square for more: `test`, `p_value`), the sample-ratio check and the
    sample size still needed (when a minimum detectable effect was given)."""

    control: str
    variants: tuple[VariantStats, ...]
    test: TestName
    p_value: float | None
    srm_p_value: float | None
    srm: bool
    sample_size: SampleSize | None


def compare_conversions(
    arms: Sequence[Arm],
    *,
    control: str,
    alpha: float = DEFAULT_ALPHA,
    mde: float | None = None,
    relative_mde: bool = True,
    power: float = DEFAULT_POWER,
    tau2: float = DEFAULT_TAU2_PROPORTIONS,
) -> ConversionStats:
    """Every variant against `control` (the holdout when there is one): Wilson interval of
    its rate, Newcombe interval of the difference, relative lift with its log interval,
    the two-proportion z-test p-value and the mSPRT's always-valid p-value and confidence
    sequence; over all arms the z / chi-square test, SRM against the weights and, with
    `mde`, the sample size still needed."""
    names = [a.name for a in arms]
    if control not in names or len(set(names)) != len(names) or len(arms) < 2:
        raise StatsInputError(f"control {control!r} must be one of distinct arms {names}")
    c = names.index(control)
    base = arms[c].counts
    variants = []
    for arm in arms:
        counts = arm.counts
        low, high = wilson_interval(counts, alpha=alpha)
        if arm.name == control:
            variants.append(
                VariantStats(arm.name, arm.users, arm.conversions, counts.rate, low, high)
            )
            continue
        lift = relative_lift(counts, base, alpha=alpha)
        difference = newcombe_interval(counts, base, alpha=alpha)
        sequential = msprt_proportions(counts, base, tau2=tau2, alpha=alpha)
        rate, base_rate = counts.rate, base.rate
        variants.append(
            VariantStats(
                name=arm.name,
                users=arm.users,
                conversions=arm.conversions,
                conversion_rate=rate,
                ci_low=low,
                ci_high=high,
                lift=lift.lift,
                lift_ci_low=lift.lift_ci_low,
                lift_ci_high=lift.lift_ci_high,
                difference=None if rate is None or base_rate is None else rate - base_rate,
                difference_ci_low=difference[0] if difference else None,
                difference_ci_high=difference[1] if difference else None,
                p_value=two_proportion_z_test(counts, base).p_value,
                always_valid_p_value=sequential.always_valid_p_value if sequential else None,
                cs_low=sequential.cs_low if sequential else None,
                cs_high=sequential.cs_high if sequential else None,
            )
        )
    ordered = [arms[c].counts] + [a.counts for i, a in enumerate(arms) if i != c]
    if len(arms) == 2:
        overall = two_proportion_z_test(ordered[1], ordered[0])
    else:
        overall = chi_square_test(ordered)
    srm = sample_ratio_mismatch([a.users for a in arms], [a.weight for a in arms])
    needed = (
        sample_size_needed(
            [a.counts for a in arms],
            [a.weight for a in arms],
            control=c,
            mde=mde,
            relative=relative_mde,
            alpha=alpha,
            power=power,
        )
        if mde is not None
        else None
    )
    return ConversionStats(
        control, tuple(variants), overall.test, overall.p_value, srm.srm_p_value,
        srm.mismatch, needed,
    )  # fmt: skip
