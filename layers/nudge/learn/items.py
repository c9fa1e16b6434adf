"""Fitting the item-to-item model (nudge.domain.recommend.ItemModel) from interactions.

Sequence-aware item kNN: in each user's chronological sequence (repeats of one item in a
row folded into one step), an item j that comes d steps after i adds
`lag_decay ** (d - 1) * weight(j)` to C[i, j] (d up to `window`), and `backward` times
that to C[j, i] (plain co-occurrence, so that what came before also counts, less). Then
S[i, j] = C[i, j] / (n_i ** alpha * n_j ** beta), n the items' interaction weights (beta
damps the most popular targets), and each item keeps its `neighbours` best. Popularity is
the event-weighted count decayed with a half-life, scaled to [0, 1].
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from nudge.domain.profile import ITEM_CODES, ORDER_COMPLETED, PRODUCT_ADDED, PRODUCT_VIEWED
from nudge.domain.recommend import DEFAULT_CODE_WEIGHTS, DEFAULT_PARAMS, ItemModel

# weight of an interaction by its event (the same weights the profile's codes get)
EVENT_WEIGHTS = {
    PRODUCT_VIEWED: DEFAULT_CODE_WEIGHTS["v"],
    PRODUCT_ADDED: DEFAULT_CODE_WEIGHTS["a"],
    ORDER_COMPLETED: DEFAULT_CODE_WEIGHTS["p"],
}
DAY_MS = 86_400_000
CODES = "vap"  # ITEM_CODES' values: viewed, added, purchased (another event counts as viewed)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FitParams:
    """What the fit is tuned by (nudge.learn.evaluate tunes some on a validation split)."""

    window: int = 20
    lag_decay: float = 0.9
    backward: float = 0.5
    alpha: float = 0.5
    beta: float = 0.5
    neighbours: int = 50
    half_life_days: float = 30.0


@dataclass
class Encoded:
    """Interactions as arrays: user and item indices, event weight, time (ms)."""

    users: Ints
    items: Ints
    weights: Floats
    times: Ints
    item_ids: list[str]
    user_ids: list[str]
    codes: Ints  # the profile's item code of each interaction, as an index into CODES

    def take(self, rows: Ints) -> Encoded:
        return Encoded(
            self.users[rows],
            self.items[rows],
            self.weights[rows],
            self.times[rows],
            self.item_ids,
            self.user_ids,
            self.codes[rows],
        )


def encode(
    interactions: Iterable[tuple[str, str, str, int]],
    event_weights: Mapping[str, float] | None = None,
) -> Encoded:
    weights_of = dict(EVENT_WEIGHTS if event_weights is None else event_weights)
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    u: list[int] = []
    i: list[int] = []
    w: list[float] = []
    t: list[int] = []
    c: list[int] = []
    code_of = {event: CODES.index(code) for event, code in ITEM_CODES.items()}
    for user, item, event, ms in interactions:
        u.append(users.setdefault(user, len(users)))
        i.append(items.setdefault(item, len(items)))
        w.append(weights_of.get(event, 1.0))
        t.append(int(ms))
        c.append(code_of.get(event, 0))
    return Encoded(
        np.asarray(u, dtype=np.int64),
        np.asarray(i, dtype=np.int64),
        np.asarray(w, dtype=np.float64),
        np.asarray(t, dtype=np.int64),
        list(items),
        list(users),
        np.asarray(c, dtype=np.int64),
    )


def chronological(users: Ints, times: Ints) -> Ints:
    """The order of interactions by user, then time, then as given (a stable sort)."""
    return np.lexsort((np.arange(len(users)), times, users))


def transitions(
    users: Ints, items: Ints, weights: Floats, n_items: int, p: FitParams
) -> sp.csr_matrix:
    """C: the lag-weighted transition counts of interactions already in chronological order."""
    # fold an item repeated in a row (viewed, added, bought) into one step, at its best weight
    if len(users) == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float64)
    same = np.r_[False, (users[1:] == users[:-1]) & (items[1:] == items[:-1])]
    starts = np.flatnonzero(~same)
    w = np.maximum.reduceat(weights, starts)
    u, i = users[starts], items[starts]
    out = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    for d in range(1, p.window + 1):  # one lag at a time: memory stays a lag's pairs
        if d >= len(u):
            break
        m = u[:-d] == u[d:]
        src, dst = i[:-d][m], i[d:][m]
        g = p.lag_decay ** (d - 1)
        rows, cols, vals = [src], [dst], [g * w[d:][m]]
        if p.backward:
            rows.append(dst)
            cols.append(src)
            vals.append(p.backward * g * w[:-d][m])
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        keep = r != c
        lag = sp.coo_matrix((v[keep], (r[keep], c[keep])), shape=(n_items, n_items)).tocsr()
        out = sp.csr_matrix(out + lag)
    return out


def top_n(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row's n largest entries (ties: the lower column)."""
    coo = matrix.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows, cols, data = coo.row[order], coo.col[order], coo.data[order]
    starts = np.searchsorted(rows, np.arange(matrix.shape[0]))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < n
    indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=matrix.shape[0]))]
    # built directly, so that each row stays best first (the order the artifact keeps)
    return sp.csr_matrix((data[keep], cols[keep], indptr), shape=matrix.shape)


def similarity(
    users: Ints, items: Ints, weights: Floats, n_items: int, p: FitParams
) -> sp.csr_matrix:
    """S (top-N per row) from interactions in chronological order."""
    c = transitions(users, items, weights, n_items, p)
    mass = np.bincount(items, weights=weights, minlength=n_items).astype(np.float64)
    mass = np.maximum(mass, 1e-9)
    left = sp.diags(mass**-p.alpha)
    right = sp.diags(mass**-p.beta)
    s = sp.csr_matrix(left @ c @ right)
    return top_n(s, p.neighbours)


def popularity(
    items: Ints, weights: Floats, times: Ints, n_items: int, *, now_ms: int, half_life_days: float
) -> Floats:
    """Event-weighted counts decayed by age (half-life), scaled so the top item is 1."""
    age_days = np.maximum(now_ms - times, 0) / DAY_MS
    decayed = weights * np.power(0.5, age_days / half_life_days)
    pop = np.bincount(items, weights=decayed, minlength=n_items).astype(np.float64)
    top = pop.max(initial=0.0)
    return pop / top if top > 0 else pop


def model_from_arrays(
    data: Encoded,
    *,
    now_ms: int,
    fit: FitParams = FitParams(),
    params: Mapping[str, Any] | None = None,
    categories: Mapping[str, str] | None = None,
    exposure: Mapping[str, Sequence[int]] | None = None,
) -> ItemModel:
    order = chronological(data.users, data.times)
    u, i, w, t = data.users[order], data.items[order], data.weights[order], data.times[order]
    n_items = len(data.item_ids)
    s = similarity(u, i, w, n_items, fit)
    offsets, nbrs, scores = s.indptr, s.indices, s.data.astype(np.float32)
    pop = popularity(i, w, t, n_items, now_ms=now_ms, half_life_days=fit.half_life_days)
    known = set(data.item_ids)
    # the arrays as the artifact keeps them (4-byte values), filled by one C call each
    return ItemModel(
        items=list(data.item_ids),
        popularity=array("f", pop.astype(np.float32).tobytes()),
        offsets=array("I", offsets.astype(np.uint32).tobytes()),
        neighbours=array("I", nbrs.astype(np.uint32).tobytes()),
        scores=array("f", scores.tobytes()),
        categories=[categories.get(item) for item in data.item_ids] if categories else [],
        exposure={
            str(item): [int(v[0]), int(v[1])]
            for item, v in (exposure or {}).items()
            if item in known
        },
        params={**DEFAULT_PARAMS, **dict(params or {})},
        trained_at=int(now_ms),
    )


def fit_item_model(
    interactions: Iterable[tuple[str, str, str, int]],
    *,
    now_ms: int,
    event_weights: Mapping[str, float] | None = None,
    fit: FitParams = FitParams(),
    params: Mapping[str, Any] | None = None,
    categories: Mapping[str, str] | None = None,
    exposure: Mapping[str, Sequence[int]] | None = None,
) -> ItemModel:
    """The item model of `(user_id, item_id, event, t_ms)` interactions (event one of
    Product Viewed / Product Added / Order Completed, weighted by `event_weights`; another
    weighs 1). `params` are the request-time parameters (nudge.domain.recommend.
    DEFAULT_PARAMS) stored with it; `categories` (item -> category, e.g. from the
    catalog) let recommend() follow the session's categories and diversify without a
    catalog; `exposure` (item -> [times shown, successes]) feeds exploration."""
    return model_from_arrays(
        encode(interactions, event_weights),
        now_ms=now_ms,
        fit=fit,
        params=params,
        categories=categories,
        exposure=exposure,
    )
