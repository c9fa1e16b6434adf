"""Plain-Python statistics for the experiment report: no scipy, no numpy, so that any
Lambda function can build `GET /v1/experiments/{id}` (docs/decisions.md D29, D32).

The same methods as nudge.domain.stats (scipy), which the tests compare these with
(`holm` and `confidence_sequence_half_width`, plain arithmetic there too, are the ones
nudge.domain.stats calls):

- `welch`: Welch's t-test from each arm's moments, the Student t tail from the
  regularized incomplete beta function (Lentz's continued fraction, Numerical Recipes
  6.4) and its quantile by bisection.
- `sequential_proportions`, `sequential_means`: the mixture sequential probability ratio
  test (mSPRT; Robbins 1970; Johari, Koomen, Pekelis & Walsh 2017) read at every look,
  with its always-valid p-value (the running minimum of 1/Λ) and the confidence
  sequence (the running intersection), and a verdict.
- `cuped`: CUPED (Deng, Xu, Kohavi & Walker 2013) from per-arm sums of Y, Y², X, X², XY.
- `holm`: Holm's step-down adjustment over several metrics (Holm 1979).

Everything works from aggregates (`Moments`: the sums SQL gives per arm), never rows.
A number the data cannot give is `None` (never NaN or infinity), so results serialize to
JSON as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# z_{1 - 0.05/2} and z_{0.8}: the report's fixed alpha and power.
ALPHA = 0.05
Z_ALPHA = 1.959963984540054
Z_POWER = 0.8416212335729143

# mSPRT for a difference of means (revenue, engagement): the mixing distribution's
# standard deviation tau is this many pooled standard deviations of one user's value (a
# small standardized effect), as nudge.domain.stats.DEFAULT_STANDARDIZED_TAU. For rates,
# tau is the experiment's minimum detectable effect (absolute): see experiment_report.
STANDARDIZED_TAU = 0.1

Verdict = Literal["continue", "variant_better", "variant_worse", "inconsistent"]
# continue: the confidence sequence still holds 0 (the always-valid p-value >= alpha).
# variant_better / variant_worse: it lies wholly above / below 0: the variant's metric is
#   higher / lower than the control's, with error probability at most alpha however
#   often the report was read.
# inconsistent: the looks' sequences do not overlap (an effect that changed over time,
#   e.g. novelty wearing off): the constant-effect model does not fit; read the daily data.
CONTINUE: Verdict = "continue"
VARIANT_BETTER: Verdict = "variant_better"
VARIANT_WORSE: Verdict = "variant_worse"
INCONSISTENT: Verdict = "inconsistent"


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


# ---- Student's t ------------------------------------------------------------------------------
def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c = 1.0
    d = 1 - qab * x / qap
    d = 1 / (tiny if abs(d) < tiny else d)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (tiny if abs(d) < tiny else d)
        c = 1 + aa / c
        c = tiny if abs(c) < tiny else c
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (tiny if abs(d) < tiny else d)
        c = 1 + aa / c
        c = tiny if abs(c) < tiny else c
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_cf(b, a, 1 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's T with df (> 0, not necessarily whole) degrees of freedom."""
    t2 = t * t
    if t2 < df:  # near 0: I_x with x = t²/(df + t²), which keeps its precision there
        tail = 0.5 - 0.5 * betainc(0.5, df / 2, t2 / (df + t2))
    else:
        tail = 0.5 * betainc(df / 2, 0.5, df / (df + t2))
    return tail if t >= 0 else 1 - tail


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's T (0 < q < 1), by bisection on `t_sf`."""
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), not {q}")
    low, high = -1.0, 1.0
    while t_sf(low, df) < 1 - q:
        low *= 2
    while t_sf(high, df) > 1 - q:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if t_sf(mid, df) > 1 - q:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * max(1.0, abs(mid)):
            break
    return (low + high) / 2


# ---- one arm's sums ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Moments:
    """One arm's per-user outcome Y and pre-exposure covariate X as SQL sums them:
    users, Σy, Σy², Σx, Σx², Σxy. Sums add, so pooling arms or accumulating days is `+`."""

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float = 0.0
    sum_x2: float = 0.0
    sum_xy: float = 0.0

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.n + other.n,
            self.sum_y + other.sum_y,
            self.sum_y2 + other.sum_y2,
            self.sum_x + other.sum_x,
            self.sum_x2 + other.sum_x2,
            self.sum_xy + other.sum_xy,
        )

    @property
    def mean_y(self) -> float | None:
        return self.sum_y / self.n if self.n else None

    @property
    def mean_x(self) -> float | None:
        return self.sum_x / self.n if self.n else None

    def _co(self, s_ab: float, s_a: float, s_b: float) -> float:
        # sample (co)variance, n - 1 in the denominator; n >= 2 checked by the callers
        return (s_ab - s_a * s_b / self.n) / (self.n - 1)

    @property
    def var_y(self) -> float:
        return max(0.0, self._co(self.sum_y2, self.sum_y, self.sum_y)) if self.n > 1 else 0.0

    @property
    def var_x(self) -> float:
        return max(0.0, self._co(self.sum_x2, self.sum_x, self.sum_x)) if self.n > 1 else 0.0

    @property
    def cov_xy(self) -> float:
        return self._co(self.sum_xy, self.sum_x, self.sum_y) if self.n > 1 else 0.0


# ---- Welch ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WelchResult:
    """The difference of means (treatment - control) with its 95 % interval, Welch's t,
    its Welch-Satterthwaite degrees of freedom, the two-sided p-value and the relative
    lift (difference over the control's mean)."""

    difference: float | None
    ci_low: float | None
    ci_high: float | None
    statistic: float | None
    df: float | None
    p_value: float | None
    lift: float | None


def welch(treatment: Moments, control: Moments) -> WelchResult:
    """Welch's unequal-variance t-test of the Y means (as scipy's
    `ttest_ind_from_stats(equal_var=False)`): se = sqrt(s_t²/n_t + s_c²/n_c), t = d/se,
    df = se⁴ / ((s_t²/n_t)²/(n_t - 1) + (s_c²/n_c)²/(n_c - 1)), d ± t_{0.975, df}·se.
    Needs two users per arm and some spread; otherwise only what can be said."""
    mt, mc = treatment.mean_y, control.mean_y
    if mt is None or mc is None:
        return WelchResult(None, None, None, None, None, None, None)
    difference = mt - mc
    lift = difference / mc if mc != 0 else None
    vt, vc = treatment.var_y / treatment.n, control.var_y / control.n
    if treatment.n < 2 or control.n < 2 or vt + vc == 0:
        return WelchResult(difference, None, None, None, None, None, lift)
    se = math.sqrt(vt + vc)
    df = (vt + vc) ** 2 / (vt**2 / (treatment.n - 1) + vc**2 / (control.n - 1))
    t = difference / se
    half = t_ppf(1 - ALPHA / 2, df) * se
    p = min(1.0, 2 * t_sf(abs(t), df))
    return WelchResult(difference, difference - half, difference + half, t, df, p, lift)


# ---- mSPRT ------------------------------------------------------------------------------------
def log_mixture_likelihood_ratio(
    difference: float, variance: float, tau2: float, null: float = 0.0
) -> float:
    """log Λ for an estimate d ~ N(θ, V) against H0: θ = null, the alternatives mixed over
    θ ~ N(null, τ²) (Johari et al. 2017):

        Λ = sqrt(V / (V + τ²)) · exp(τ² (d - null)² / (2V (V + τ²)))

    0 (Λ = 1, no evidence either way) while V = 0."""
    if tau2 <= 0:
        raise ValueError(f"the mixing variance tau² must be > 0, not {tau2}")
    if variance <= 0:
        return 0.0
    d = difference - null
    v = variance
    return 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2))


def confidence_sequence_half_width(variance: float, tau2: float, alpha: float = ALPHA) -> float:
    """Half the width of the (1 - alpha) confidence sequence, {θ0: Λ(θ0) < 1/alpha}:
    sqrt(V (V + τ²)/τ² · (2 log(1/alpha) + log((V + τ²)/V))); infinite while V = 0."""
    if variance <= 0:
        return math.inf
    v = variance
    return math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """The mSPRT over the looks so far: the latest estimate of the difference (variant -
    control), the always-valid p-value (the smallest 1/Λ of any look), the confidence
    sequence for the difference (the intersection of every look's; `None` bounds while no
    look had a variance), the verdict, the number of looks and the latest mixing variance."""

    difference: float | None
    p_value: float
    ci_low: float | None
    ci_high: float | None
    verdict: Verdict
    looks: int
    tau2: float | None


def sequential(
    looks: Sequence[tuple[float, float, float]], alpha: float = ALPHA
) -> SequentialResult:
    """The mSPRT read at each of `looks`, in time order, each (difference, variance, τ²).
    Under no difference Λ is a non-negative martingale of mean 1, so the chance that it
    ever reaches 1/alpha, however often it is read, is at most alpha (Ville's
    inequality): p = min over looks of min(1, 1/Λ), and the intersection of the looks'
    sequences covers the true difference at every look with probability >= 1 - alpha."""
    log_threshold = math.log(1 / alpha)
    max_log = 0.0
    low, high = -math.inf, math.inf
    for difference, variance, tau2 in looks:
        max_log = max(max_log, log_mixture_likelihood_ratio(difference, variance, tau2))
        half = confidence_sequence_half_width(variance, tau2, alpha)
        low, high = max(low, difference - half), min(high, difference + half)
    p = math.exp(-max_log)  # 1/Λ from its log: no overflow when Λ is huge
    if max_log < log_threshold:
        verdict: Verdict = CONTINUE
    elif low > high:
        verdict = INCONSISTENT
    else:
        verdict = VARIANT_BETTER if low > 0 else VARIANT_WORSE
    last = looks[-1] if looks else None
    return SequentialResult(
        difference=last[0] if last else None,
        p_value=p,
        ci_low=low if math.isfinite(low) else None,
        ci_high=high if math.isfinite(high) else None,
        verdict=verdict,
        looks=len(looks),
        tau2=last[2] if last else None,
    )


def sequential_proportions(
    looks: Sequence[tuple[int, int, int, int]], tau2: float, alpha: float = ALPHA
) -> SequentialResult:
    """The mSPRT of p_t - p_c over cumulative looks (x_t, n_t, x_c, n_c), with the
    plug-in variance p_t(1 - p_t)/n_t + p_c(1 - p_c)/n_c (as Optimizely's stats engine
    and nudge.domain.stats.msprt_proportions). Looks with an empty arm or no variance
    (no conversion anywhere yet) are skipped."""
    estimates = []
    for xt, nt, xc, nc in looks:
        if nt == 0 or nc == 0:
            continue
        pt, pc = xt / nt, xc / nc
        variance = pt * (1 - pt) / nt + pc * (1 - pc) / nc
        if variance > 0:
            estimates.append((pt - pc, variance, tau2))
    return sequential(estimates, alpha)


def sequential_means(
    looks: Sequence[tuple[Moments, Moments]],
    standardized_tau: float = STANDARDIZED_TAU,
    alpha: float = ALPHA,
) -> SequentialResult:
    """The mSPRT of mean_t - mean_c over cumulative looks (treatment, control), variance
    s_t²/n_t + s_c²/n_c, τ = `standardized_tau` pooled standard deviations of one user's
    value at that look (as nudge.domain.stats.msprt_means). Looks with fewer than two
    users in an arm or no spread are skipped."""
    estimates = []
    for t, c in looks:
        if t.n < 2 or c.n < 2:
            continue
        variance = t.var_y / t.n + c.var_y / c.n
        if variance == 0:
            continue
        pooled = ((t.n - 1) * t.var_y + (c.n - 1) * c.var_y) / (t.n + c.n - 2)
        assert t.mean_y is not None and c.mean_y is not None
        estimates.append((t.mean_y - c.mean_y, variance, standardized_tau**2 * pooled))
    return sequential(estimates, alpha)


# ---- CUPED ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CupedResult:
    """CUPED: theta, both arms' adjusted means, the adjusted difference (treatment -
    control) with its 95 % normal interval and two-sided p-value, the relative lift
    (difference over the control's adjusted mean), the adjusted and the plain difference's
    variances and their ratio (< 1: CUPED is the sharper estimate)."""

    theta: float
    treatment_mean: float
    control_mean: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float | None
    lift: float | None
    variance: float
    unadjusted_variance: float
    variance_ratio: float | None


def cuped(treatment: Moments, control: Moments) -> CupedResult | None:
    """CUPED (Deng, Xu, Kohavi & Walker 2013) from the arms' sums:

        theta = cov(Y, X) / var(X)                   both arms pooled (their sums added)
        Ŷ_arm = Ȳ_arm - theta · (X̄_arm - X̄)         X̄ the pooled mean
        var(Ŷ_arm) = (var Y - 2·theta·cov(Y, X) + theta²·var X) / n   within the arm

    X is measured before exposure, so the variant cannot move it and the adjusted
    difference stays unbiased. No spread in X: theta = 0, the plain difference. `None`
    with fewer than two users in an arm."""
    if treatment.n < 2 or control.n < 2:
        return None
    both = treatment + control
    theta = both.cov_xy / both.var_x if both.var_x > 0 else 0.0
    pooled_x = both.mean_x
    assert pooled_x is not None

    def adjusted(arm: Moments) -> tuple[float, float]:
        assert arm.mean_y is not None and arm.mean_x is not None
        mean = arm.mean_y - theta * (arm.mean_x - pooled_x)
        spread = arm.var_y - 2 * theta * arm.cov_xy + theta * theta * arm.var_x
        return mean, max(0.0, spread) / arm.n

    mt, vt = adjusted(treatment)
    mc, vc = adjusted(control)
    difference, variance = mt - mc, vt + vc
    unadjusted = treatment.var_y / treatment.n + control.var_y / control.n
    se = math.sqrt(variance)
    return CupedResult(
        theta=theta,
        treatment_mean=mt,
        control_mean=mc,
        difference=difference,
        ci_low=difference - Z_ALPHA * se,
        ci_high=difference + Z_ALPHA * se,
        p_value=2 * normal_sf(abs(difference) / se) if se > 0 else None,
        lift=difference / mc if mc != 0 else None,
        variance=variance,
        unadjusted_variance=unadjusted,
        variance_ratio=variance / unadjusted if unadjusted > 0 else None,
    )


# ---- several metrics --------------------------------------------------------------------------
def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (Holm 1979), controlling the family-wise error rate
    over the m p-values given: sorted ascending, p̃_(i) = max_{j<=i} min(1, (m - j + 1)·
    p_(j)). `None` entries stay `None` and do not count in m."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    m = len(present)
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
