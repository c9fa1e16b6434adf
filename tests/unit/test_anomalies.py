"""The daily anomaly flags (nudge.domain.anomalies): the false-alarm rate measured on
simulated stable series (Poisson counts with weekly seasonality), a real change flagged,
and the rule's parts: minimum history, weekday awareness, counts near zero, gaps, rates.
`pytest -s` prints the measured rates."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from nudge.domain import anomalies as A
from nudge.domain.anomalies import AnomalyInputError, flag_anomalies

START = date(2026, 1, 5)  # a Monday
DAYS = 120
# Monday to Sunday: a Monday peak, quiet weekends (a shop's week)
WEEK = np.array([1.3, 1.0, 1.0, 1.0, 1.0, 0.6, 0.6])
LEVELS = (0.5, 2.0, 10.0, 50.0, 2000.0)  # events a day: a rare trigger to a busy one
SERIES_PER_LEVEL = 60


def _dates(n: int = DAYS) -> list[date]:
    return [START + timedelta(days=i) for i in range(n)]


def _weekly(level: float, n: int = DAYS) -> np.ndarray:
    return level * WEEK[[d.weekday() for d in _dates(n)]]


def _simulate(rng: np.random.Generator, *, seasonal: bool, overdispersion: float) -> np.ndarray:
    """SERIES_PER_LEVEL stable series per level, one row each."""
    rows = []
    for level in LEVELS:
        mean = _weekly(level) if seasonal else np.full(DAYS, level)
        mean = np.broadcast_to(mean, (SERIES_PER_LEVEL, DAYS))
        if overdispersion:  # day-to-day variation beyond Poisson (gamma-Poisson)
            shape = 1 / overdispersion**2
            mean = mean * rng.gamma(shape, 1 / shape, mean.shape)
        rows.append(rng.poisson(mean))
    return np.concatenate(rows)


def _false_alarm_rate(series: np.ndarray) -> float:
    flagged = flaggable = 0
    for row in series:
        days = flag_anomalies(zip(_dates(), row.tolist(), strict=True))
        judged = [d for d in days if d.expected is not None]
        flagged += sum(d.anomaly for d in judged)
        flaggable += len(judged)
    return flagged / flaggable


@pytest.mark.parametrize(
    ("name", "seasonal", "overdispersion"),
    [
        ("Poisson, weekly seasonality", True, 0.0),
        ("gamma-Poisson (20 % extra spread), weekly seasonality", True, 0.2),
        ("Poisson, no seasonality", False, 0.0),
    ],
)
def test_the_false_alarm_rate_on_stable_series_is_at_most_one_percent(
    name, seasonal, overdispersion
):
    series = _simulate(
        np.random.default_rng(2026), seasonal=seasonal, overdispersion=overdispersion
    )
    rate = _false_alarm_rate(series)
    print(
        f"\n{name}: {len(series)} series x {DAYS} days at {LEVELS} a day -> "
        f"{rate:.2%} of the flaggable days flagged"
    )
    assert rate <= 0.01


def _with_step(rng: np.random.Generator, level: float, factor: float, at: int) -> list[int]:
    mean = _weekly(level)
    mean[at:] *= factor
    return rng.poisson(mean).tolist()


@pytest.mark.parametrize("factor", [2.0, 0.4, 0.0])
def test_a_step_change_is_flagged_from_its_first_day(factor):
    at = 70
    caught = 0
    rng = np.random.default_rng(7)
    for _ in range(20):
        days = flag_anomalies(zip(_dates(), _with_step(rng, 100.0, factor, at), strict=True))
        caught += days[at].anomaly
    assert caught >= 18, f"a step to x{factor} flagged on its first day in {caught} of 20 runs"


def test_a_trigger_that_stopped_firing_is_flagged_and_its_range_says_what_was_expected():
    values = _with_step(np.random.default_rng(3), 30.0, 0.0, 60)
    day = flag_anomalies(zip(_dates(), values, strict=True))[60]
    assert day.anomaly and day.value == 0
    assert day.expected is not None and day.low is not None and day.high is not None
    assert 0 < day.low < day.expected < day.high
    assert day.expected == pytest.approx(30.0 * WEEK[day.date.weekday()], rel=0.25)


def test_no_flag_before_the_minimum_history():
    values = [10] * 13 + [1000]
    days = flag_anomalies(zip(_dates(14), values, strict=True))
    assert [d.expected for d in days] == [None] * 14 and not any(d.anomaly for d in days)
    assert flag_anomalies(zip(_dates(15), [10] * 14 + [1000], strict=True))[14].anomaly


def test_the_comparison_is_with_the_same_weekday():
    # busy weekdays, quiet weekends: a weekend is normal, a Monday at the weekend's level
    # is not
    rng = np.random.default_rng(11)
    values = rng.poisson(_weekly(500.0, 56)).tolist()
    days = flag_anomalies(zip(_dates(56), values, strict=True))
    assert not any(d.anomaly for d in days)
    monday = 56  # day 56 is a Monday
    values.append(int(500 * WEEK[5]))
    last = flag_anomalies(zip(_dates(57), values, strict=True))[monday]
    assert last.date.weekday() == 0 and last.anomaly
    assert last.expected == pytest.approx(500 * WEEK[0], rel=0.05)


def test_counts_near_zero_are_not_flagged_for_ordinary_noise():
    # about two a day: 0 and 6 happen; 20 does not
    values = [2, 1, 3, 0, 2, 4, 1, 2, 2, 3, 1, 0, 2, 3, 2, 1, 2, 0, 3, 2, 1]
    quiet = flag_anomalies(zip(_dates(22), [*values, 0], strict=True))[-1]
    busy = flag_anomalies(zip(_dates(22), [*values, 6], strict=True))[-1]
    burst = flag_anomalies(zip(_dates(22), [*values, 20], strict=True))[-1]
    assert not quiet.anomaly and not busy.anomaly and burst.anomaly
    assert quiet.low == 0.0
    # a trigger that never fired: one firing is not an anomaly, a dozen is
    never = [0] * 28
    assert not flag_anomalies(zip(_dates(29), [*never, 1], strict=True))[-1].anomaly
    assert flag_anomalies(zip(_dates(29), [*never, 12], strict=True))[-1].anomaly


def test_missing_days_count_as_zero():
    series = [(d, 40) for i, d in enumerate(_dates(30)) if i != 20]
    days = flag_anomalies(series)
    assert len(days) == 30 and days[20].value == 0.0 and days[20].anomaly


def test_the_history_is_the_trailing_window():
    # a level that moved long ago is the usual range now
    values = [10] * 40 + [100] * 40
    days = flag_anomalies(zip(_dates(80), values, strict=True))
    assert days[40].anomaly and not days[79].anomaly
    assert days[79].expected == pytest.approx(100.0)


def test_rates_use_the_metrics_own_scale():
    rng = np.random.default_rng(5)
    rates = (0.10 + rng.normal(0, 0.005, 40)).tolist()
    days = flag_anomalies(zip(_dates(41), [*rates, 0.02], strict=True), counts=False)
    assert days[-1].anomaly and not any(d.anomaly for d in days[:-1])
    assert days[-1].low is not None and days[-1].low > 0.05
    flat = [0.0] * 20
    assert flag_anomalies(zip(_dates(21), [*flat, 0.01], strict=True), counts=False)[-1].anomaly
    tolerant = flag_anomalies(
        zip(_dates(21), [*flat, 0.01], strict=True), counts=False, min_scale=0.01
    )
    assert not tolerant[-1].anomaly


def test_series_that_are_not_one_count_a_day_are_refused():
    with pytest.raises(AnomalyInputError):
        flag_anomalies([(START, 1), (START, 2)])
    with pytest.raises(AnomalyInputError):
        flag_anomalies([(START, -1)])
    assert flag_anomalies([]) == []


def test_the_documented_constants():
    assert (A.WINDOW_DAYS, A.MIN_HISTORY_DAYS, A.THRESHOLD) == (28, 14, 3.5)
