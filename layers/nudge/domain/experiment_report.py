"""The experiment report (`GET /v1/experiments/{id}`) from per-variant aggregates, in
plain Python: no scipy, no numpy, so that any Lambda function can build it (D29).

The methods are those of docs/measurement.md and nudge.domain.stats (which uses scipy and
is what the tests compare with): Wilson's interval of each rate, the relative lift and
the pooled two-proportion z-test against the control (the holdout variant when there is
one, else the first variant), Pearson's chi-square over the k x 2 table for more than
two variants, a chi-square goodness-of-fit sample-ratio-mismatch check against the
weights, and the users still needed for the minimum detectable effect (absolute, as the
experiment states it) at alpha 0.05 and power 0.8 on the arcsine scale.

Normal tails come from math.erfc; chi-square tails from the regularized upper incomplete
gamma function Q(df/2, x/2), by its series below a + 1 and Lentz's continued fraction
above (Numerical Recipes, 6.2), accurate to about 1e-14 relative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nudge.domain.ports import QueryEngine
    from nudge.domain.triggers.model import Experiment

# z_{1 - 0.05/2} and z_{0.8}: the report's fixed alpha and power.
Z_ALPHA = 1.959963984540054
Z_POWER = 0.8416212335729143
SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class VariantAggregate:
    """One variant's users (first exposed to the experiment in it) and conversions
    (those with the goal event within the window after that exposure)."""

    name: str
    weight: float
    holdout: bool
    users: int
    conversions: int


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x), a > 0, x >= 0."""
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # series for P(a, x)
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300  # Lentz's continued fraction for Q(a, x)
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(log_prefix) * h


def chi2_sf(statistic: float, df: int) -> float:
    """P(X > statistic) for a chi-square X with df degrees of freedom."""
    return gamma_q(df / 2, statistic / 2)


def wilson(conversions: int, users: int) -> tuple[float | None, float | None]:
    """Wilson's 95 % score interval; (None, None) for an empty variant."""
    if users == 0:
        return None, None
    z2 = Z_ALPHA * Z_ALPHA
    p = conversions / users
    denominator = 1 + z2 / users
    centre = (p + z2 / (2 * users)) / denominator
    half = Z_ALPHA / denominator * math.sqrt(p * (1 - p) / users + z2 / (4 * users * users))
    low = 0.0 if conversions == 0 else max(0.0, centre - half)
    high = 1.0 if conversions == users else min(1.0, centre + half)
    return low, high


def z_test_p(xt: int, nt: int, xc: int, nc: int) -> float | None:
    """The pooled two-proportion z-test's two-sided p-value; None when undefined."""
    if nt == 0 or nc == 0:
        return None
    pooled = (xt + xc) / (nt + nc)
    se = math.sqrt(pooled * (1 - pooled) * (1 / nt + 1 / nc))
    if se == 0:
        return None
    return 2 * normal_sf(abs(xt / nt - xc / nc) / se)


def chi_square_independence(rows: Sequence[tuple[int, int]]) -> tuple[float, float, int] | None:
    """Pearson's chi-square (no continuity correction) over (conversions, users) rows,
    empty rows left out: (statistic, p-value, df), or None when undefined."""
    kept = [(x, n) for x, n in rows if n > 0]
    total = sum(n for _, n in kept)
    converted = sum(x for x, _ in kept)
    if len(kept) < 2 or converted == 0 or converted == total:
        return None
    statistic = 0.0
    for x, n in kept:
        for observed, column in ((x, converted), (n - x, total - converted)):
            expected = n * column / total
            statistic += (observed - expected) ** 2 / expected
    df = len(kept) - 1
    return statistic, chi2_sf(statistic, df), df


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float | None:
    """Chi-square goodness of fit of the users against the weights (df = k - 1); None
    before any user."""
    total = sum(users)
    if total == 0:
        return None
    weight_sum = sum(weights)
    statistic = 0.0
    for u, w in zip(users, weights, strict=True):
        expected = total * w / weight_sum
        statistic += (u - expected) ** 2 / expected
    return chi2_sf(statistic, len(users) - 1)


def required_users(baseline: float, mde: float, ratio: float) -> tuple[int, int] | None:
    """(control, treatment) users to detect baseline → baseline + mde (absolute) at
    alpha 0.05, power 0.8, treatment/control = ratio (Cohen's h); None when the target
    leaves (0, 1]."""
    target = baseline + mde
    if not 0 < baseline < 1 or not 0 < target <= 1:
        return None
    h = 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline))
    n_control = ((Z_ALPHA + Z_POWER) / h) ** 2 * (1 + 1 / ratio)
    return math.ceil(n_control), math.ceil(ratio * n_control)


def control_index(variants: Sequence[VariantAggregate]) -> int:
    """The holdout variant if there is one, else the first."""
    return next((i for i, v in enumerate(variants) if v.holdout), 0)


def _sample_size(
    variants: Sequence[VariantAggregate], control: int, mde: float
) -> dict[str, Any] | None:
    c = variants[control]
    if c.users == 0:
        return None
    baseline = c.conversions / c.users
    needed = [0] * len(variants)
    for i, v in enumerate(variants):
        if i == control:
            continue
        pair = required_users(baseline, mde, v.weight / c.weight)
        if pair is None:
            return None
        needed[control] = max(needed[control], pair[0])
        needed[i] = pair[1]
    total_weight = sum(v.weight for v in variants)
    remaining = max(
        max(0, need - v.users) * total_weight / v.weight
        for need, v in zip(needed, variants, strict=True)
    )
    return {
        "minimum_detectable_effect": mde,
        "alpha": 0.05,
        "power": 0.8,
        "baseline_rate": baseline,
        "per_variant": {v.name: n for v, n in zip(variants, needed, strict=True)},
        "still_needed": {
            v.name: max(0, n - v.users) for v, n in zip(variants, needed, strict=True)
        },
        "remaining_exposures": math.ceil(remaining),
    }


def build_report(
    experiment: str,
    goal: dict[str, Any],
    variants: Sequence[VariantAggregate],
    *,
    minimum_detectable_effect: float,
) -> dict[str, Any]:
    """`{"experiment", "goal", "variants": [...], "srm_p_value", "metrics": {...}}`."""
    if len(variants) < 2:
        raise ValueError("an experiment has at least two variants")
    control = control_index(variants)
    c = variants[control]
    control_rate = c.conversions / c.users if c.users else None
    rows = []
    for i, v in enumerate(variants):
        rate = v.conversions / v.users if v.users else None
        low, high = wilson(v.conversions, v.users)
        lift = None
        p_value = None
        if i != control:
            if rate is not None and control_rate:
                lift = rate / control_rate - 1
            p_value = z_test_p(v.conversions, v.users, c.conversions, c.users)
        rows.append(
            {
                "name": v.name,
                "users": v.users,
                "conversions": v.conversions,
                "conversion_rate": rate,
                "ci_low": low,
                "ci_high": high,
                "lift": lift,
                "p_value": p_value,
            }
        )
    metrics: dict[str, Any] = {
        "control": c.name,
        "sample_size": _sample_size(variants, control, minimum_detectable_effect),
    }
    if len(variants) > 2:
        overall = chi_square_independence([(v.conversions, v.users) for v in variants])
        metrics["chi_square"] = (
            None
            if overall is None
            else {"statistic": overall[0], "p_value": overall[1], "df": overall[2]}
        )
    return {
        "experiment": experiment,
        "goal": goal,
        "variants": rows,
        "srm_p_value": srm_p_value([v.users for v in variants], [v.weight for v in variants]),
        "metrics": metrics,
    }


# ---- the aggregates, in SQL over the archive's `events` view ------------------------------


def sql_string(value: str) -> str:
    """A SQL string literal (quotes doubled; NUL refused, as no engine takes it)."""
    if "\x00" in value:
        raise ValueError("a SQL string cannot hold NUL")
    return "'" + value.replace("'", "''") + "'"


def aggregates_sql(experiment_id: str, goal_event: str, within_seconds: int) -> str:
    """DuckDB SQL over `events`: one row (variant, users, conversions) per variant seen.
    A user counts in the variant of their first `Experiment Viewed` of the experiment
    (earliest event time, ties by message_id) and converts with a track of the goal event
    by the same user_id in (first exposure, first exposure + within]."""
    within = int(within_seconds)
    if within <= 0:
        raise ValueError("the goal window must be positive")
    return f"""
WITH first_exposure AS (
    SELECT user_id,
           json_extract_string(properties, '$.variation_id') AS variant,
           "timestamp" AS exposed_at
    FROM events
    WHERE type = 'track' AND event = 'Experiment Viewed' AND user_id IS NOT NULL
      AND json_extract_string(properties, '$.experiment_id') = {sql_string(experiment_id)}
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY "timestamp", message_id) = 1
),
converted AS (
    SELECT DISTINCT f.user_id
    FROM first_exposure AS f
    JOIN events AS e ON e.user_id = f.user_id
    WHERE e.type = 'track' AND e.event = {sql_string(goal_event)}
      AND e."timestamp" > f.exposed_at
      AND e."timestamp" <= f.exposed_at + INTERVAL '{within}' SECOND
)
SELECT f.variant AS variant,
       count(*) AS users,
       count(c.user_id) AS conversions
FROM first_exposure AS f
LEFT JOIN converted AS c ON c.user_id = f.user_id
GROUP BY f.variant
ORDER BY f.variant
"""


def variant_aggregates(
    variants: Sequence[tuple[str, float, bool]], rows: Sequence[Sequence[Any]]
) -> tuple[list[VariantAggregate], int]:
    """The configured variants (name, weight, holdout), in their order, with the counts of
    `aggregates_sql`'s rows (0 for a variant nobody saw yet); and the users exposed under a
    variant name the experiment does not define (left out of the report)."""
    counts = {str(r[0]): (int(r[1]), int(r[2])) for r in rows if r[0] is not None}
    names = {name for name, _, _ in variants}
    unknown = sum(u for name, (u, _) in counts.items() if name not in names)
    unknown += sum(int(r[1]) for r in rows if r[0] is None)
    out = [
        VariantAggregate(name, weight, holdout, *counts.get(name, (0, 0)))
        for name, weight, holdout in variants
    ]
    return out, unknown


def experiment_report(experiment: Experiment, engine: QueryEngine) -> dict[str, Any]:
    """The report of one experiment, its aggregates read from the archive by `engine`."""
    result = engine.query(
        aggregates_sql(experiment.id, experiment.goal.event, experiment.goal.within)
    )
    variants, unknown = variant_aggregates(
        [(v.name, v.weight, v.holdout) for v in experiment.variants], result.rows
    )
    report = build_report(
        experiment.id,
        {"event": experiment.goal.event, "within_seconds": experiment.goal.within},
        variants,
        minimum_detectable_effect=experiment.minimum_detectable_effect,
    )
    report["metrics"]["unknown_variant_users"] = unknown
    return report
