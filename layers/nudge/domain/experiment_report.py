"""The experiment report (`GET /v1/experiments/{id}`) from per-variant aggregates, in
plain Python: no scipy, no numpy, so that any Lambda function can build it (D29, D32).

The methods are those of docs/measurement.md and nudge.domain.stats (which uses scipy and
is what the tests compare with): Wilson's interval of each rate, the relative lift and
the pooled two-proportion z-test against the control (the holdout variant when there is
one, else the first variant), Pearson's chi-square over the k x 2 table for more than
two variants, a chi-square goodness-of-fit sample-ratio-mismatch check against the
weights, and the users still needed for the minimum detectable effect (absolute, as the
experiment states it) at alpha 0.05 and power 0.8 on the arcsine scale. For each metric
(conversion, revenue, engagement) and variant: Welch's t-test (conversion: the z-test
and Newcombe's interval), the mSPRT's always-valid p-value, confidence sequence and
verdict over the daily looks, CUPED with the metric's pre-exposure value as covariate,
and Holm's adjustment over the metrics (nudge.domain.report_stats).

Normal tails come from math.erfc; chi-square tails from the regularized upper incomplete
gamma function Q(df/2, x/2), by its series below a + 1 and Lentz's continued fraction
above (Numerical Recipes, 6.2), accurate to about 1e-14 relative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nudge.domain.outcomes import EXPERIMENT_AGGREGATE, NUDGE_EVENTS, PUSH_TAPPED
from nudge.domain.report_stats import (
    ALPHA,
    STANDARDIZED_TAU,
    Z_ALPHA,
    Z_POWER,
    Moments,
    cuped,
    holm,
    normal_sf,
    sequential_means,
    sequential_proportions,
    welch,
)
from nudge.domain.tracking import VIOLATION_GENERATED

if TYPE_CHECKING:
    from nudge.domain.ports import QueryEngine
    from nudge.domain.triggers.model import Experiment

__all__ = ["Z_ALPHA", "Z_POWER", "normal_sf"]  # re-exported: the report's constants

SRM_ALPHA = 0.001
# The metrics of the report, in order: Holm's family for each variant's comparison.
#   conversion  Y: 1 if the user did the goal event within the window after their first
#               exposure, else 0;  X: their goal events in the pre-exposure window
#   revenue     Y: the summed `revenue` of their `Order Completed` events in the window;
#               X: the same in the pre-exposure window
#   engagement  Y: the number of their own events (track, page, screen; not nudge's
#               exposures and message outcomes, ENGAGEMENT_EXCLUDED) in the window;
#               X: the same in the pre-exposure window
METRICS = ("conversion", "revenue", "engagement")
# CUPED's pre-exposure window: the days before a user's first exposure whose behavior is
# the covariate X (as nudge.domain.stats.CUPED_PRE_EXPOSURE_DAYS).
PRE_EXPOSURE_DAYS = 28
REVENUE_EVENT = "Order Completed"
# Events nudge itself archives about its messages: they measure the message, not the
# user's engagement (a holdout user cannot open an email), so engagement leaves them out.
ENGAGEMENT_EXCLUDED: tuple[str, ...] = (
    *NUDGE_EVENTS,  # exposures, outcomes, SES events, reads, unsubscribes
    VIOLATION_GENERATED,
    PUSH_TAPPED,  # Segment's push spec: the app tracks them, about the message
    "Push Notification Received",
    "Push Notification Bounced",
)


@dataclass(frozen=True, slots=True)
class DayAggregate:
    """The users of one variant first exposed on one UTC day, per metric: their count
    and the sums Σy, Σy², Σx, Σx², Σxy of outcome Y and pre-exposure covariate X."""

    day: str
    moments: Mapping[str, Moments]


@dataclass(frozen=True, slots=True)
class VariantAggregate:
    """One variant's users (first exposed to the experiment in it) and conversions
    (those with the goal event within the window after that exposure)."""

    name: str
    weight: float
    holdout: bool
    users: int
    conversions: int
    # per exposure day, in order (from the archive; () while nobody was exposed); None:
    # only the totals above are known, so one look of the conversions and no revenue or
    # engagement
    daily: tuple[DayAggregate, ...] | None = None


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


def newcombe(xt: int, nt: int, xc: int, nc: int) -> tuple[float | None, float | None]:
    """Newcombe's hybrid score interval for p_t - p_c (Newcombe 1998b, method 10) from
    the two Wilson intervals; (None, None) while an arm is empty."""
    lt, ut = wilson(xt, nt)
    lc, uc = wilson(xc, nc)
    if lt is None or ut is None or lc is None or uc is None:
        return None, None
    pt, pc = xt / nt, xc / nc
    d = pt - pc
    return d - math.hypot(pt - lt, uc - pc), d + math.hypot(ut - pt, pc - lc)


def _daily(v: VariantAggregate) -> tuple[DayAggregate, ...]:
    """The variant's days, or one pseudo-day of its conversion totals without them."""
    if v.daily is not None:
        return v.daily
    totals = Moments(v.users, float(v.conversions), float(v.conversions))
    return (DayAggregate("", {"conversion": totals}),)


def _looks(
    treatment: Sequence[DayAggregate], control: Sequence[DayAggregate], metric: str
) -> list[tuple[Moments, Moments]]:
    """Both arms' cumulative moments at the end of each day either arm has users."""
    t_by_day = {d.day: d.moments[metric] for d in treatment}
    c_by_day = {d.day: d.moments[metric] for d in control}
    empty = Moments(0, 0.0, 0.0)
    t_sum, c_sum = empty, empty
    out = []
    for day in sorted(set(t_by_day) | set(c_by_day)):
        t_sum += t_by_day.get(day, empty)
        c_sum += c_by_day.get(day, empty)
        out.append((t_sum, c_sum))
    return out


def _copy(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _json(result: Any) -> dict[str, Any] | None:
    return None if result is None else asdict(result)


def _metric_rows(
    metric: str,
    variants: Sequence[VariantAggregate],
    control: int,
    tau2_conversion: float,
) -> list[dict[str, Any]]:
    """One row per variant of one metric: the arm's users, mean and standard deviation of
    Y and mean of X; for each variant but the control, the difference with its interval,
    lift and fixed-horizon p-value (conversion: Newcombe and the z-test; others: Welch),
    the mSPRT over the daily looks and CUPED. `p_value_holm` is filled in by the caller."""
    days = [_daily(v) for v in variants]
    totals = [sum((d.moments[metric] for d in ds), Moments(0, 0.0, 0.0)) for ds in days]
    c = totals[control]
    rows: list[dict[str, Any]] = []
    for i, (v, m) in enumerate(zip(variants, totals, strict=True)):
        row: dict[str, Any] = {
            "name": v.name,
            "users": m.n,
            "mean": m.mean_y,
            "std": math.sqrt(m.var_y) if m.n > 1 else None,
            "pre_exposure_mean": m.mean_x if v.daily is not None else None,
            "difference": None,
            "ci_low": None,
            "ci_high": None,
            "lift": None,
            "p_value": None,
            "p_value_holm": None,
            "sequential": None,
            "cuped": None,
        }
        if i != control:
            looks = _looks(days[i], days[control], metric)
            if metric == "conversion":
                xt, nt, xc, nc = int(m.sum_y), m.n, int(c.sum_y), c.n
                low, high = newcombe(xt, nt, xc, nc)
                rate_t, rate_c = m.mean_y, c.mean_y
                row |= {
                    "difference": None if rate_t is None or rate_c is None else rate_t - rate_c,
                    "ci_low": low,
                    "ci_high": high,
                    "lift": rate_t / rate_c - 1 if rate_t is not None and rate_c else None,
                    "p_value": z_test_p(xt, nt, xc, nc),
                }
                counts = [(int(t.sum_y), t.n, int(k.sum_y), k.n) for t, k in looks]
                result = sequential_proportions(counts, tau2_conversion)
            else:
                w = welch(m, c)
                row |= {
                    "difference": w.difference,
                    "ci_low": w.ci_low,
                    "ci_high": w.ci_high,
                    "lift": w.lift,
                    "p_value": w.p_value,
                }
                result = sequential_means(looks)
            row["sequential"] = asdict(result) | {"p_value_holm": None}
            known = v.daily is not None and variants[control].daily is not None
            row["cuped"] = _json(cuped(m, c)) if known else None
        rows.append(row)
    return rows


def _metrics(
    variants: Sequence[VariantAggregate], control: int, tau2_conversion: float
) -> dict[str, Any]:
    """`conversion`, `revenue`, `engagement` (those every variant has moments of), each
    `{"variants": [...]}`, with Holm's adjustment over the metrics of each comparison."""
    names = [
        name for name in METRICS if all(name in d.moments for v in variants for d in _daily(v))
    ]
    blocks = {name: _metric_rows(name, variants, control, tau2_conversion) for name in names}
    for i in range(len(variants)):
        if i == control:
            continue
        rows = [blocks[name][i] for name in names]
        fixed = holm([r["p_value"] for r in rows])
        # a test without a look yet (p = 1 by definition) is no test: not in Holm's m
        always_valid = holm(
            [r["sequential"]["p_value"] if r["sequential"]["looks"] else None for r in rows]
        )
        for row, p_fixed, p_sequential in zip(rows, fixed, always_valid, strict=True):
            row["p_value_holm"] = p_fixed
            row["sequential"]["p_value_holm"] = p_sequential
    return {name: {"variants": rows} for name, rows in blocks.items()}


def build_report(
    experiment: str,
    goal: dict[str, Any],
    variants: Sequence[VariantAggregate],
    *,
    minimum_detectable_effect: float,
) -> dict[str, Any]:
    """`{"experiment", "goal", "variants": [...], "srm_p_value", "metrics": {...}}`.

    Each variant's row also has `sequential` (the mSPRT of its conversion rate against
    the control's: always-valid `p_value`, confidence sequence `ci_low`/`ci_high` for the
    difference of rates, `verdict`; null on the control). The mSPRT's mixing variance for
    rates is the minimum detectable effect squared: its tau is the effect the experiment
    was sized to find."""
    if len(variants) < 2:
        raise ValueError("an experiment has at least two variants")
    control = control_index(variants)
    c = variants[control]
    control_rate = c.conversions / c.users if c.users else None
    tau2_conversion = minimum_detectable_effect**2
    per_metric = _metrics(variants, control, tau2_conversion)
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
                "sequential": _copy(per_metric["conversion"]["variants"][i]["sequential"]),
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
    metrics["methods"] = {
        "alpha": ALPHA,
        "sequential_look": "end of each UTC day of first exposure, cumulative",
        "sequential_tau2_conversion": tau2_conversion,
        "sequential_standardized_tau": STANDARDIZED_TAU,
        "cuped_pre_exposure_days": PRE_EXPOSURE_DAYS,
        "holm_family": list(per_metric),
    }
    metrics |= per_metric
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


SUMS = ("y", "y2", "x", "x2", "xy")  # per metric: the columns <metric>_<sum>


# EXPERIMENT_AGGREGATE: an erased user's share of an experiment's sums, archived without
# any id (erase keeps "only anonymous aggregates" of assignments; nudge.domain.
# assignments); its properties hold `experiment_id`, `variation_id`, `day` and the
# ROW_COLUMNS of a row of aggregates_sql, which adds them in.
ROW_COLUMNS = ("users", "conversions", *(f"{m}_{s}" for m in METRICS for s in SUMS))


def _anonymous_sql(experiment_id: str) -> str:
    """The EXPERIMENT_AGGREGATE rows of the experiment, as rows of aggregates_sql."""

    def number(name: str, sql_type: str) -> str:
        value = f"json_extract_string(properties, '$.{name}')"
        return f"COALESCE(TRY_CAST({value} AS {sql_type}), 0) AS {name}"

    counts = [number(c, "BIGINT") for c in ROW_COLUMNS[:2]]
    sums = [number(c, "DOUBLE") for c in ROW_COLUMNS[2:]]
    columns = ",\n           ".join([*counts, *sums])
    return f"""
    SELECT json_extract_string(properties, '$.variation_id') AS variant,
           CAST(json_extract_string(properties, '$.day') AS DATE) AS day,
           {columns}
    FROM events
    WHERE type = 'track' AND event = {sql_string(EXPERIMENT_AGGREGATE)} AND user_id IS NULL
      AND json_extract_string(properties, '$.experiment_id') = {sql_string(experiment_id)}"""


def aggregates_sql(
    experiment_id: str,
    goal_event: str,
    within_seconds: int,
    *,
    users: Sequence[str] | None = None,
) -> str:
    """DuckDB SQL over `events`: one row per variant seen and UTC day of first exposure,
    `(variant, day, users, conversions, <metric>_y, _y2, _x, _x2, _xy for each of
    METRICS)`. A user counts in the variant of their first `Experiment Viewed` of the
    experiment (earliest event time, ties by message_id); their outcome Y of each metric
    is measured in (first exposure, first exposure + within], their covariate X in the
    PRE_EXPOSURE_DAYS before it, [first exposure - 28 days, first exposure): the
    conversion is a track of the goal event by the same user_id (X: how many), revenue
    the summed `revenue` of `Order Completed`, engagement the number of their track,
    page and screen events but ENGAGEMENT_EXCLUDED. Users are summed per day, so the
    report has both the totals and the daily looks of the sequential test; the
    EXPERIMENT_AGGREGATE rows of erased users are added to their variant and day.
    `users`: only these user_ids, and no anonymous rows (an erased user's share)."""
    within = int(within_seconds)
    if within <= 0:
        raise ValueError("the goal window must be positive")
    after = (
        'e."timestamp" > f.exposed_at'
        f" AND e.\"timestamp\" <= f.exposed_at + INTERVAL '{within}' SECOND"
    )
    before = 'e."timestamp" < f.exposed_at'
    goal = f"e.type = 'track' AND e.event = {sql_string(goal_event)}"
    order = f"e.type = 'track' AND e.event = {sql_string(REVENUE_EVENT)}"
    revenue = "COALESCE(TRY_CAST(json_extract_string(e.properties, '$.revenue') AS DOUBLE), 0)"
    excluded = ", ".join(sql_string(name) for name in ENGAGEMENT_EXCLUDED)
    engaged = f"e.type IN ('track', 'page', 'screen') AND e.event NOT IN ({excluded})"
    sums = ",\n       ".join(
        f"sum({m}_y) AS {m}_y, sum({m}_y * {m}_y) AS {m}_y2, sum({m}_x) AS {m}_x, "
        f"sum({m}_x * {m}_x) AS {m}_x2, sum({m}_x * {m}_y) AS {m}_xy"
        for m in METRICS
    )
    only = ""
    if users is not None:
        only = f"\n      AND user_id IN ({', '.join(sql_string(u) for u in users) or 'NULL'})"
    totals = ",\n       ".join(
        f"sum({c}) AS {c}" for c in ROW_COLUMNS
    )  # of the users' rows and the anonymous ones
    anonymous = "" if users is not None else f"\n    UNION ALL{_anonymous_sql(experiment_id)}"
    return f"""
WITH first_exposure AS (
    SELECT user_id,
           json_extract_string(properties, '$.variation_id') AS variant,
           "timestamp" AS exposed_at
    FROM events
    WHERE type = 'track' AND event = 'Experiment Viewed' AND user_id IS NOT NULL
      AND json_extract_string(properties, '$.experiment_id') = {sql_string(experiment_id)}{only}
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY "timestamp", message_id) = 1
),
per_user AS (
    SELECT f.user_id, f.variant, CAST(f.exposed_at AS DATE) AS day,
           max(CASE WHEN {goal} AND {after} THEN 1 ELSE 0 END) AS conversion_y,
           count(CASE WHEN {goal} AND {before} THEN 1 END) AS conversion_x,
           COALESCE(sum(CASE WHEN {order} AND {after} THEN {revenue} END), 0) AS revenue_y,
           COALESCE(sum(CASE WHEN {order} AND {before} THEN {revenue} END), 0) AS revenue_x,
           count(CASE WHEN {engaged} AND {after} THEN 1 END) AS engagement_y,
           count(CASE WHEN {engaged} AND {before} THEN 1 END) AS engagement_x
    FROM first_exposure AS f
    LEFT JOIN events AS e ON e.user_id = f.user_id
      AND e."timestamp" >= f.exposed_at - INTERVAL '{PRE_EXPOSURE_DAYS}' DAY
      AND e."timestamp" <= f.exposed_at + INTERVAL '{within}' SECOND
    GROUP BY f.user_id, f.variant, f.exposed_at
),
per_day AS (
    SELECT variant, day, count(*) AS users, sum(conversion_y) AS conversions,
       {sums}
    FROM per_user
    GROUP BY variant, day{anonymous}
)
SELECT variant, day, {totals}
FROM per_day
GROUP BY variant, day
ORDER BY variant, day
"""


def variant_aggregates(
    variants: Sequence[tuple[str, float, bool]],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> tuple[list[VariantAggregate], int]:
    """The configured variants (name, weight, holdout), in their order, with the daily
    sums of `aggregates_sql`'s rows (no day and 0 users for a variant nobody saw yet);
    and the users exposed under a variant name the experiment does not define (left out
    of the report)."""
    at = {name: i for i, name in enumerate(columns)}
    names = {name for name, _, _ in variants}
    days: dict[str, list[DayAggregate]] = {name: [] for name in names}
    unknown = 0
    for r in rows:
        variant, users = r[at["variant"]], int(r[at["users"]])
        if variant is None or str(variant) not in names:
            unknown += users
            continue
        moments = {
            m: Moments(users, *(float(r[at[f"{m}_{s}"]] or 0) for s in SUMS)) for m in METRICS
        }
        days[str(variant)].append(DayAggregate(str(r[at["day"]]), moments))
    out = []
    for name, weight, holdout in variants:
        daily = tuple(sorted(days[name], key=lambda d: d.day))
        out.append(
            VariantAggregate(
                name,
                weight,
                holdout,
                sum(d.moments["conversion"].n for d in daily),
                sum(int(d.moments["conversion"].sum_y) for d in daily),
                daily,
            )
        )
    return out, unknown


def experiment_report(experiment: Experiment, engine: QueryEngine) -> dict[str, Any]:
    """The report of one experiment, its aggregates read from the archive by `engine`."""
    result = engine.query(
        aggregates_sql(experiment.id, experiment.goal.event, experiment.goal.within)
    )
    variants, unknown = variant_aggregates(
        [(v.name, v.weight, v.holdout) for v in experiment.variants], result.columns, result.rows
    )
    report = build_report(
        experiment.id,
        {"event": experiment.goal.event, "within_seconds": experiment.goal.within},
        variants,
        minimum_detectable_effect=experiment.minimum_detectable_effect,
    )
    report["metrics"]["unknown_variant_users"] = unknown
    return report
