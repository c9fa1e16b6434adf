"""RFM scores: recency, frequency and monetary value, each scored 1-5 by quintile among
all users with at least one order (docs/personalization.md, "RFM").

Inputs per user (from the profile, event time): the time of the last `Order Completed`,
the number of orders and their summed revenue. Recency is in whole days from the last
order to the training run's `now` (a smaller recency is better: it scores higher);
frequency and monetary score higher when larger.

Quintiles and ties, deterministic and independent of input order: among the n users with
orders, a user's score on one dimension is `1 + floor(5 * L / n)` where L counts the
users strictly worse on that dimension (for recency: more days; for frequency and
monetary: less). Equal values always get the same score (the score of the first of
them in rank order: pandas' `rank(method="min")`), so a tie never straddles two scores
by input order; the best user scores 5 only when at least a fifth of the users are
strictly worse. The score is the three digits R, F, M, e.g. "545". Users without an
order get no score (None).

`recency_days` shown by `GET /v1/users/{id}` is computed at read time from the profile
(nudge.domain.profile.Profile.rfm), not from the training run.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DAY_MS = 86_400_000
QUINTILES = 5


@dataclass(frozen=True)
class RfmInput:
    user_id: str
    last_order_ms: int | None
    orders: int
    revenue: float


def recency_days(last_order_ms: int, now_ms: int) -> int:
    """Whole days from the last order to now (0 for an order in the future)."""
    return max(0, (now_ms - last_order_ms) // DAY_MS)


def quintile_scores(values: Mapping[str, float], *, higher_is_better: bool) -> dict[str, int]:
    """1-5 per key: `1 + floor(5 * L / n)`, L = how many keys have a strictly worse
    value. Ties share a score whatever their order."""
    n = len(values)
    if n == 0:
        return {}
    ordered = sorted(v if higher_is_better else -v for v in values.values())
    scores = {}
    for key, value in values.items():
        worse = bisect_left(ordered, value if higher_is_better else -value)
        scores[key] = 1 + (QUINTILES * worse) // n
    return scores


def rfm_scores(users: Iterable[RfmInput], *, now_ms: int) -> dict[str, str]:
    """The three-digit score of every user with at least one order."""
    buyers: Sequence[RfmInput] = [u for u in users if u.orders > 0 and u.last_order_ms is not None]
    recency = {u.user_id: float(recency_days(u.last_order_ms or 0, now_ms)) for u in buyers}
    r = quintile_scores(recency, higher_is_better=False)
    f = quintile_scores({u.user_id: float(u.orders) for u in buyers}, higher_is_better=True)
    m = quintile_scores({u.user_id: float(u.revenue) for u in buyers}, higher_is_better=True)
    return {u.user_id: f"{r[u.user_id]}{f[u.user_id]}{m[u.user_id]}" for u in buyers}
