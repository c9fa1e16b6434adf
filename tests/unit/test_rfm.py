"""RFM scores: quintiles among users with orders, ties deterministic, checked against an
independent pandas computation (rank(method="min"))."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nudge.domain.rfm import DAY_MS, RfmInput, quintile_scores, recency_days, rfm_scores

NOW_MS = 1_800_000_000_000


def pandas_scores(users: list[RfmInput], now_ms: int) -> dict[str, str]:
    """The reference: pandas' min-rank, scaled to quintiles, R ranked on negated days."""
    buyers = [u for u in users if u.orders > 0 and u.last_order_ms is not None]
    if not buyers:
        return {}
    df = pd.DataFrame(
        {
            "user": [u.user_id for u in buyers],
            "r": [-((now_ms - (u.last_order_ms or 0)) // DAY_MS) for u in buyers],
            "f": [u.orders for u in buyers],
            "m": [u.revenue for u in buyers],
        }
    )
    n = len(df)
    for col in ("r", "f", "m"):
        df[col + "_s"] = ((df[col].rank(method="min") - 1) * 5 // n + 1).astype(int)
    return {row.user: f"{row.r_s}{row.f_s}{row.m_s}" for row in df.itertuples(index=False)}


def test_ten_distinct_users_fill_the_five_quintiles_two_each() -> None:
    users = [RfmInput(f"u{i}", NOW_MS - i * DAY_MS, i + 1, 10.0 * (i + 1)) for i in range(10)]
    scores = rfm_scores(users, now_ms=NOW_MS)
    # u0 ordered today (best recency) once for 10 (worst frequency and monetary)
    assert scores["u0"] == "511"
    assert scores["u9"] == "155"
    assert sorted(s[1] for s in scores.values()) == list("1122334455")


def test_users_without_orders_have_no_score_and_do_not_shift_the_others() -> None:
    buyers = [RfmInput(f"b{i}", NOW_MS - i * DAY_MS, i + 1, float(i)) for i in range(5)]
    browsers = [RfmInput(f"n{i}", None, 0, 0.0) for i in range(50)]
    assert rfm_scores(buyers + browsers, now_ms=NOW_MS) == rfm_scores(buyers, now_ms=NOW_MS)
    assert not set(rfm_scores(buyers + browsers, now_ms=NOW_MS)) & {u.user_id for u in browsers}


def test_ties_share_a_score_whatever_the_input_order() -> None:
    values = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 2.0, "e": 3.0}
    scores = quintile_scores(values, higher_is_better=True)
    assert scores["a"] == scores["b"] == scores["c"] == 1
    assert (scores["d"], scores["e"]) == (4, 5)
    shuffled = dict(reversed(list(values.items())))
    assert quintile_scores(shuffled, higher_is_better=True) == scores


def test_recency_counts_whole_days_and_never_goes_negative() -> None:
    assert recency_days(NOW_MS - DAY_MS + 1, NOW_MS) == 0
    assert recency_days(NOW_MS - 3 * DAY_MS, NOW_MS) == 3
    assert recency_days(NOW_MS + DAY_MS, NOW_MS) == 0


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_pandas_on_data_full_of_ties(seed: int) -> None:
    rng = random.Random(seed)
    users = [
        RfmInput(
            f"u{i}",
            NOW_MS - rng.randint(0, 5) * DAY_MS - rng.randint(0, DAY_MS - 1),
            rng.choice([1, 1, 1, 2, 3, 8]),
            rng.choice([10.0, 10.0, 25.5, 99.0, 100.0]),
        )
        for i in range(rng.randint(1, 300))
    ] + [RfmInput(f"x{i}", None, 0, 0.0) for i in range(10)]
    assert rfm_scores(users, now_ms=NOW_MS) == pandas_scores(users, NOW_MS)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(1, 20), st.floats(0, 1e6, allow_nan=False)),
        min_size=1,
        max_size=60,
    )
)
def test_scores_match_pandas_on_any_input(rows: list[tuple[int, int, float]]) -> None:
    users = [RfmInput(f"u{i}", NOW_MS - d * DAY_MS, f, m) for i, (d, f, m) in enumerate(rows)]
    assert rfm_scores(users, now_ms=NOW_MS) == pandas_scores(users, NOW_MS)
