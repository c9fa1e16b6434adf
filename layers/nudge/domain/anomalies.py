"""Anomaly flags of a daily metric (docs/measurement.md): a day whose value leaves the
range its trailing weeks predict is flagged, as the triggers report's `daily[].anomaly`.

Pure Python (no numpy), so it runs in every Lambda function as it is.

The rule, for each day t of a series of (date, value):

1. History: the `WINDOW_DAYS` (28) days before t, days missing from the series inside its
   span counted as 0 (no row: nothing happened). Fewer than `MIN_HISTORY_DAYS` (14): no
   range and no flag, since a new trigger has no usual range yet.
2. Scale: counts (the default) are compared on Anscombe's square-root scale
   2·sqrt(x + 3/8), on which a Poisson count of any size has a standard deviation of
   about 1, so that 0 after a usual 30 is far while 0 after a usual 2 is not; rates and
   durations (`counts=False`) on their own scale.
3. Expected value: the median of t's peers. The peers are the days of t's weekday in the
   history when there are at least `WEEKDAY_MIN_SAMPLES` (2) of them and that predicts
   the history better than all days do (Mondays compared with Mondays when the week has
   a shape), else all the days of the history. "Predicts better" is judged on the
   history itself: each day against the median of its own peers without it
   (leave-one-out), the smaller mean absolute error wins.
4. Spread: 1.4826 x the median absolute deviation of those leave-one-out errors, i.e.
   the typical error of exactly the prediction made for t, robust to the odd outlier in
   the history (1.4826 turns the MAD of normal errors into their standard deviation).
5. Counts near zero: the spread is at least sqrt(1 + pi/2m), the Poisson floor on the
   square-root scale plus the error of a median of m peers, so a trigger that fires
   twice a day is not flagged for a day with none or with six.
6. Range: the expected value ± `THRESHOLD` (3.5) x spread, mapped back to counts (the
   low end at least 0); the day is an anomaly when its value lies outside.

Measured false-alarm rate (tests/unit/test_anomalies.py asserts it stays <= 1 %): 300
simulated stable series of 120 days, Poisson counts with weekly seasonality (Mondays at
1.3, weekends at 0.6 of the level) at levels from 0.5 to 2,000 a day, flag 0.03 % of the
days that have the minimum history (about one day in 3,000); with 20 % day-to-day
overdispersion (gamma-Poisson) 0.30 %; without seasonality 0.02 %. At 100 a day a step to
double, to 40 % or to nothing is flagged on its first day in at least 18 of 20 runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import median

WINDOW_DAYS = 28
MIN_HISTORY_DAYS = 14
WEEKDAY_MIN_SAMPLES = 2
THRESHOLD = 3.5
MAD_TO_SD = 1.4826  # 1 / Φ⁻¹(3/4): the MAD of normal errors times this is their sd


class AnomalyInputError(ValueError):
    """A series that is not one value per day (a date twice)."""


@dataclass(frozen=True, slots=True)
class DailyAnomaly:
    """One day of the series: its value, the range its history expects (`None` while the
    history is shorter than `MIN_HISTORY_DAYS`) and whether the value is outside."""

    date: date
    value: float
    expected: float | None
    low: float | None
    high: float | None
    anomaly: bool


def _median_sorted(s: Sequence[float]) -> float:
    m = len(s)
    return s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) / 2


def _loo_errors(values: Sequence[float], groups: Sequence[int]) -> list[float]:
    """Each value minus the median of the other values of its group (groups of one give
    none): the errors of predicting a day by the median of its peers."""
    members: dict[int, list[float]] = {}
    for value, group in zip(values, groups, strict=True):
        members.setdefault(group, []).append(value)
    errors = []
    for group_values in members.values():
        s = sorted(group_values)
        rest = len(s) - 1  # the peers of each member
        if rest < 1:
            continue
        for r, value in enumerate(s):
            # the median of s without its r-th element: s's middle, shifted past r
            upper = rest // 2
            hi = s[upper] if upper < r else s[upper + 1]
            if rest % 2:
                errors.append(value - hi)
                continue
            lo = s[upper - 1] if upper - 1 < r else s[upper]
            errors.append(value - (lo + hi) / 2)
    return errors


def _mean_abs(errors: Sequence[float]) -> float:
    return sum(abs(e) for e in errors) / len(errors) if errors else math.inf


def _spread(errors: Sequence[float]) -> float:
    return MAD_TO_SD * _median_sorted(sorted(abs(e) for e in errors)) if errors else math.inf


def _anscombe(count: float) -> float:
    """2·sqrt(x + 3/8): a Poisson count of any mean becomes about normal with sd 1."""
    return 2 * math.sqrt(count + 3 / 8)


def _from_anscombe(y: float) -> float:
    return (y / 2) ** 2 - 3 / 8 if y > _anscombe(0) else 0.0


def expected_range(
    history: Sequence[tuple[date, float]],
    day: date,
    *,
    counts: bool = True,
    threshold: float = THRESHOLD,
    min_scale: float = 0.0,
) -> tuple[float, float, float] | None:
    """(expected, low, high) for `day` from its history (the days before it, one value
    each; the caller picks the window), or `None` when the history is too short."""
    if len(history) < MIN_HISTORY_DAYS:
        return None
    if counts and any(v < 0 for _, v in history):
        raise AnomalyInputError("a count cannot be negative")
    if counts:
        min_scale = 0.0  # the Poisson floor below takes its place
    scale = [_anscombe(v) if counts else v for _, v in history]
    peers, errors = scale, _loo_errors(scale, [0] * len(scale))
    same_weekday = [
        y for (d, _), y in zip(history, scale, strict=True) if d.weekday() == day.weekday()
    ]
    if len(same_weekday) >= WEEKDAY_MIN_SAMPLES:
        by_weekday = _loo_errors(scale, [d.weekday() for d, _ in history])
        # the weekly pattern predicts better: use it. Judged by the mean absolute error,
        # not the median, which would not see weekends (2 days in 7 are a minority)
        if _mean_abs(by_weekday) < _mean_abs(errors):
            peers, errors = same_weekday, by_weekday
    centre = median(peers)
    spread = max(_spread(errors), min_scale)
    if counts:
        # the Poisson floor: sd 1 on this scale, plus the error of the median of m peers
        # (about pi/2m of the variance: the median's efficiency)
        spread = max(spread, math.sqrt(1 + math.pi / (2 * len(peers))))
        return (
            _from_anscombe(centre),
            _from_anscombe(centre - threshold * spread),
            _from_anscombe(centre + threshold * spread),
        )
    return centre, centre - threshold * spread, centre + threshold * spread


def flag_anomalies(
    series: Iterable[tuple[date, float]],
    *,
    counts: bool = True,
    threshold: float = THRESHOLD,
    window: int = WINDOW_DAYS,
    min_scale: float = 0.0,
) -> list[DailyAnomaly]:
    """Every day from the series' first date to its last, in order, with its flag (see the
    module's docstring). `counts=False` for a rate or a duration: no square-root scale,
    no Poisson floor, no clipping at 0; `min_scale` (in the metric's unit, used only
    then) is the least spread, so that a constant history does not flag the smallest
    change (by default any change from a constant history is flagged)."""
    by_day: dict[date, float] = {}
    for day, value in series:
        if day in by_day:
            raise AnomalyInputError(f"{day.isoformat()} appears twice in the series")
        if counts and value < 0:
            raise AnomalyInputError(f"{day.isoformat()}: a count cannot be negative")
        by_day[day] = float(value)
    if not by_day:
        return []
    first, last = min(by_day), max(by_day)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    filled = [(d, by_day.get(d, 0.0)) for d in days]
    flags = []
    for i, (day, value) in enumerate(filled):
        history = filled[max(0, i - window) : i]
        found = expected_range(
            history, day, counts=counts, threshold=threshold, min_scale=min_scale
        )
        if found is None:
            flags.append(DailyAnomaly(day, value, None, None, None, False))
            continue
        expected, low, high = found
        flags.append(DailyAnomaly(day, value, expected, low, high, not low <= value <= high))
    return flags
