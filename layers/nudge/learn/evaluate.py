"""Offline evaluation of the recommender (`nudge recs evaluate`): leave-last-out.

Each user's chronologically last item is held out (with the interactions with it that
end the sequence: viewed, added, bought in a row are one step); the models learn from
the rest, and every item the user did not interact with in training is ranked (full
ranking, no sampled negatives). HR@k: the share of users whose held-out item is in the
top k; NDCG@k: 1 / log2(rank + 2) when it is. Ties are broken the way
nudge.domain.recommend breaks them (more popular first, then item id), for every model.

The item model's request-time parameters and part of its fit are chosen on a
validation split of the training data (each user's last training item held out the
same way), never on the test items. Baselines: popularity (training counts) and, when
`implicit` is installed, its ALS with 128 factors on the same training matrix.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from nudge.domain.recommend import DEFAULT_PARAMS, history_weights
from nudge.learn.items import (
    CODES,
    EVENT_WEIGHTS,
    Encoded,
    FitParams,
    Floats,
    Ints,
    chronological,
    popularity,
    similarity,
)

MAX_RECENT = 20  # what the profile keeps of a user's items (nudge.domain.profile)
BATCH = 512  # users scored at once (a dense batch x items block)
ALS_FACTORS = 128

# (stage, done, total): how far the evaluation is, for a progress bar
Progress = Callable[[str, int, int], None]


class InteractionsFileError(ValueError):
    """The CSV cannot be read as interactions (its line is in the message)."""


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


# ---- reading ----------------------------------------------------------------------------------
def _to_ms(text: str, line: int) -> tuple[float, bool]:
    """A timestamp as a number (seconds or ms: decided per file), or ISO 8601 as ms
    (True: already ms)."""
    try:
        return float(text), False
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InteractionsFileError(
            f"line {line}: timestamp {text!r} is not a number or ISO 8601"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp() * 1000.0, True


def read_interactions(path: str | Path) -> Encoded:
    """`user_id,item_id,timestamp[,event]` with a header line. Timestamps: unix seconds
    or milliseconds (numbers over 1e11 are ms) or ISO 8601; events: Segment's names (or
    the codes v/a/p), weighted as at train time; absent or another: a view."""
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    u: list[int] = []
    i: list[int] = []
    t: list[float] = []
    iso: list[bool] = []
    c: list[int] = []
    code_of = {
        name: CODES.index(code)
        for name, code in {
            "Product Viewed": "v",
            "Product Added": "a",
            "Order Completed": "p",
        }.items()
    }
    code_of.update({code: n for n, code in enumerate(CODES)})
    with open(path, newline="", encoding="utf-8-sig") as f:  # (a BOM is no part of user_id)
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        need = ("user_id", "item_id", "timestamp")
        if any(h not in header for h in need):
            raise InteractionsFileError(
                f"line 1: the header must name {', '.join(need)} (and optionally event)"
            )
        cu, ci, ct = (header.index(h) for h in need)
        ce = header.index("event") if "event" in header else -1
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                user, item, stamp = row[cu], row[ci], row[ct]
            except IndexError:
                raise InteractionsFileError(
                    f"line {line}: expected {len(header)} columns"
                ) from None
            u.append(users.setdefault(user, len(users)))
            i.append(items.setdefault(item, len(items)))
            ms, is_iso = _to_ms(stamp, line)
            t.append(ms)
            iso.append(is_iso)
            c.append(code_of.get(row[ce].strip(), 0) if 0 <= ce < len(row) else 0)
    raw = np.asarray(t, dtype=np.float64)
    is_ms = np.asarray(iso, dtype=bool)
    numbers = raw[~is_ms]
    scale = 1.0 if numbers.size and np.abs(numbers).max() > 1e11 else 1000.0
    stamps = np.where(is_ms, raw, raw * scale)
    codes = np.asarray(c, dtype=np.int64)
    weights = np.asarray(
        [EVENT_WEIGHTS[n] for n in ("Product Viewed", "Product Added", "Order Completed")]
    )[codes]
    return Encoded(
        np.asarray(u, dtype=np.int64),
        np.asarray(i, dtype=np.int64),
        weights.astype(np.float64),
        np.round(stamps).astype(np.int64),
        list(items),
        list(users),
        codes,
    )


# ---- the split --------------------------------------------------------------------------------
@dataclass
class Split:
    train: Encoded  # chronological
    users: Ints  # the evaluated users
    targets: Ints  # each one's held-out item


def leave_last_out(data: Encoded) -> Split:
    """Holds out each user's last item (its trailing run of interactions) from `data`;
    users left with no training interaction are not evaluated."""
    order = chronological(data.users, data.times)
    d = data.take(order)
    n = len(d.users)
    if n == 0:
        return Split(d, np.zeros(0, np.int64), np.zeros(0, np.int64))
    last = np.r_[d.users[1:] != d.users[:-1], True]  # each user's last row
    # the trailing run: rows of the user's last item after the user's last other item
    last_row = np.flatnonzero(last)
    target_of_user = np.full(len(d.user_ids), -1, np.int64)
    target_of_user[d.users[last_row]] = d.items[last_row]
    held = d.items == target_of_user[d.users]
    # a row is in the trailing run when every later row of the user is the target too:
    # scan from the end per user, with a cumulative "seen another item" flag
    other = ~held
    rev_users, rev_other = d.users[::-1], other[::-1]
    starts = np.r_[True, rev_users[1:] != rev_users[:-1]]
    group = np.cumsum(starts) - 1
    seen_other = np.maximum.accumulate(np.where(rev_other, np.arange(n), -1))
    first_of_group = np.flatnonzero(starts)[group]
    trailing = (seen_other < first_of_group)[::-1]
    train = d.take(np.flatnonzero(~trailing))
    has_train = np.bincount(train.users, minlength=len(d.user_ids)) > 0
    users = np.flatnonzero(has_train & (target_of_user >= 0))
    return Split(train, users, target_of_user[users])


# ---- ranking ----------------------------------------------------------------------------------
def tie_order(pop: Floats, item_ids: list[str]) -> Ints:
    """Each item's place when scores tie: more popular first, then by id (as recommend())."""
    ids = np.asarray(item_ids, dtype=object)
    order = sorted(range(len(item_ids)), key=lambda k: (-float(pop[k]), ids[k]))
    place = np.empty(len(item_ids), np.int64)
    place[np.asarray(order, dtype=np.int64)] = np.arange(len(item_ids))
    return place


def ranks(
    scores_of: Callable[[Ints], Floats],
    seen: sp.csr_matrix,
    users: Ints,
    targets: Ints,
    tie: Ints,
    *,
    stage: str = "ranking",
    progress: Progress = _no_progress,
) -> Ints:
    """The 0-based rank of each user's target among the items not in their training rows
    (`seen`), by `scores_of(rows)` (a dense len(rows) x items block for users[rows]);
    a target the model does not know ranks past every item."""
    n_items = seen.shape[1]
    out = np.full(len(users), n_items, np.int64)
    known = targets < n_items
    for lo in range(0, len(users), BATCH):
        rows = np.arange(lo, min(lo + BATCH, len(users)))
        block = np.asarray(scores_of(rows), dtype=np.float64)
        mask = seen[users[rows]]
        block[mask.nonzero()] = -np.inf
        ok = known[rows]
        r, t = rows[ok] - lo, targets[rows[ok]]
        target_score = block[r, t][:, None]
        better = (block[r] > target_score) | (
            (block[r] == target_score) & (tie[None, :] < tie[t][:, None])
        )
        out[rows[ok]] = better.sum(axis=1)
        out[rows[ok][np.isneginf(target_score[:, 0])]] = n_items  # the target was seen
        progress(stage, min(lo + BATCH, len(users)), len(users))
    return out


def metrics(rank: Ints, k: int) -> dict[str, float]:
    if len(rank) == 0:
        return {"hr": 0.0, "ndcg": 0.0}
    hit = rank < k
    gain = np.where(hit, 1.0 / np.log2(np.minimum(rank, k) + 2.0), 0.0)
    return {"hr": round(float(hit.mean()), 4), "ndcg": round(float(gain.mean()), 4)}


def seen_matrix(train: Encoded, n_users: int, n_items: int) -> sp.csr_matrix:
    ones = np.ones(len(train.users), dtype=np.float32)
    m = sp.csr_matrix((ones, (train.users, train.items)), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


# ---- the item model, vectorized ---------------------------------------------------------------
def recent_lists(train: Encoded, users: Ints) -> Iterator[list[list[Any]]]:
    """Each user's training interactions as the profile would hold them: `[item, code,
    ms]` newest first, one entry per (item, code), at most MAX_RECENT."""
    starts = np.searchsorted(train.users, users, side="left")
    ends = np.searchsorted(train.users, users, side="right")
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        out: list[list[Any]] = []
        kinds: set[tuple[int, int]] = set()
        for row in range(hi - 1, lo - 1, -1):
            key = (int(train.items[row]), int(train.codes[row]))
            if key in kinds:
                continue
            kinds.add(key)
            out.append([key[0], CODES[key[1]], int(train.times[row])])
            if len(out) >= MAX_RECENT:
                break
        yield out


def history_matrix(
    train: Encoded, users: Ints, n_items: int, params: dict[str, Any]
) -> sp.csr_matrix:
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, recent in enumerate(recent_lists(train, users)):
        weights = history_weights(recent, params["code_weights"], params["position_decay"])
        for item, w in weights.items():
            rows.append(r)
            cols.append(int(item))
            vals.append(w)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(users), n_items))


def item_model_scores(
    s: sp.csr_matrix, hist: sp.csr_matrix, pop: Floats, params: dict[str, Any]
) -> Callable[[Ints], Floats]:
    """recommend()'s score for every item: personal / its max + pop_weight * pop (a
    batch of users at a time: the product of all of them can be large)."""
    pop_part = float(params["pop_weight"]) * pop[None, :]

    def scores(rows: Ints) -> Floats:
        personal = np.asarray(sp.csr_matrix(hist[rows] @ s).toarray())
        top = personal.max(axis=1, initial=0.0)
        personal /= np.where(top > 0, top, 1.0)[:, None]
        return personal + pop_part

    return scores


@dataclass
class Fitted:
    s: sp.csr_matrix
    pop: Floats  # as the artifact stores it (float32 values)


def fit_arrays(train: Encoded, n_items: int, fit: FitParams) -> Fitted:
    now_ms = int(train.times.max(initial=0))
    s = similarity(train.users, train.items, train.weights, n_items, fit)
    pop = popularity(
        train.items,
        train.weights,
        train.times,
        n_items,
        now_ms=now_ms,
        half_life_days=fit.half_life_days,
    )
    s = sp.csr_matrix(s.astype(np.float32).astype(np.float64))
    return Fitted(s, pop.astype(np.float32).astype(np.float64))


@dataclass
class Scoring:
    """What scoring a split needs besides the model, computed once per split: the users'
    training items, and their history matrices by position decay."""

    split: Split
    seen: sp.csr_matrix
    histories: dict[tuple[float, tuple[tuple[str, float], ...]], sp.csr_matrix]

    @classmethod
    def of(cls, split: Split) -> Scoring:
        train = split.train
        return cls(split, seen_matrix(train, len(train.user_ids), len(train.item_ids)), {})

    def history(self, params: dict[str, Any]) -> sp.csr_matrix:
        key = (float(params["position_decay"]), tuple(sorted(params["code_weights"].items())))
        if key not in self.histories:
            train = self.split.train
            self.histories[key] = history_matrix(
                train, self.split.users, len(train.item_ids), params
            )
        return self.histories[key]


def score_item_model(
    scoring: Scoring,
    fitted: Fitted,
    params: dict[str, Any],
    k: int,
    *,
    stage: str,
    progress: Progress,
    tie: Ints | None = None,
) -> tuple[dict[str, float], Ints]:
    split = scoring.split
    if tie is None:
        tie = tie_order(fitted.pop, split.train.item_ids)
    rank = ranks(
        item_model_scores(fitted.s, scoring.history(params), fitted.pop, params),
        scoring.seen,
        split.users,
        split.targets,
        tie,
        stage=stage,
        progress=progress,
    )
    return metrics(rank, k), rank


# the grid searched on the validation split: fit-time, then request-time parameters
FIT_GRID: list[dict[str, Any]] = [
    {"window": 5, "beta": 0.5},
    {"window": 20, "beta": 0.5},
    {"window": 20, "beta": 0.25},
]
PARAM_GRID = [
    {"position_decay": decay, "pop_weight": pw}
    for decay, pw in product((0.6, 0.8, 0.9), (0.01, 0.1))
]


def tune(train: Encoded, k: int, progress: Progress) -> tuple[FitParams, dict[str, Any]]:
    """The grid point with the best HR@k (then NDCG@k) on the validation split."""
    val = leave_last_out(train)
    n_items = len(train.item_ids)
    best: tuple[tuple[float, float], FitParams, dict[str, Any]] | None = None
    total = len(FIT_GRID) * len(PARAM_GRID)
    done = 0
    scoring = Scoring.of(val)
    for fit_point in FIT_GRID:
        fit = replace(FitParams(), **fit_point)
        fitted = fit_arrays(val.train, n_items, fit)
        tie = tie_order(fitted.pop, val.train.item_ids)
        for point in PARAM_GRID:
            params = {**DEFAULT_PARAMS, **point}
            m, _ = score_item_model(
                scoring, fitted, params, k, stage="tuning", progress=_no_progress, tie=tie
            )
            done += 1
            progress("tuning", done, total)
            key = (m["hr"], m["ndcg"])
            if best is None or key > best[0]:
                best = (key, fit, params)
    assert best is not None
    return best[1], best[2]


# ---- baselines --------------------------------------------------------------------------------
def popularity_scores(train: Encoded, n_items: int) -> Floats:
    return np.bincount(train.items, minlength=n_items).astype(np.float64)


def als_available() -> bool:
    try:
        import implicit  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def als_factors(
    train: Encoded, n_users: int, n_items: int, *, seed: int = 0
) -> tuple[Floats, Floats]:
    """implicit's ALS (128 factors, its other defaults) on the training matrix of event
    weights: user and item factors."""
    from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped]

    m = sp.csr_matrix(
        (train.weights.astype(np.float32), (train.users, train.items)), shape=(n_users, n_items)
    )
    m.sum_duplicates()
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # implicit's

    with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
        model = AlternatingLeastSquares(factors=ALS_FACTORS, random_state=seed)
        model.fit(m, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


# ---- the whole evaluation ---------------------------------------------------------------------
def evaluate(
    data: Encoded,
    *,
    k: int = 10,
    als: bool | None = None,
    tuning: bool = True,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """`{"model": {"hr", "ndcg"}, "popularity": {...}, "als": {...} (when run), "k",
    "users", "items", "interactions", "params": {what the tuning chose}}`."""
    split = leave_last_out(data)
    train = split.train
    n_users, n_items = len(train.user_ids), len(train.item_ids)
    scoring = Scoring.of(split)
    seen = scoring.seen
    if tuning and len(split.users):
        fit, params = tune(train, k, progress)
    else:
        fit, params = FitParams(), dict(DEFAULT_PARAMS)
    progress("fitting", 0, 1)
    fitted = fit_arrays(train, n_items, fit)
    progress("fitting", 1, 1)
    model, _ = score_item_model(scoring, fitted, params, k, stage="model", progress=progress)

    counts = popularity_scores(train, n_items)
    tie = tie_order(counts, train.item_ids)
    pop_rank = ranks(
        lambda rows: np.broadcast_to(counts, (len(rows), n_items)).copy(),
        seen,
        split.users,
        split.targets,
        tie,
        stage="popularity",
        progress=progress,
    )
    out: dict[str, Any] = {"model": model, "popularity": metrics(pop_rank, k)}
    if als is None:
        als = als_available()
    if als and len(split.users):
        progress("als", 0, 1)
        uf, itf = als_factors(train, n_users, n_items)
        progress("als", 1, 1)
        als_rank = ranks(
            lambda rows: uf[split.users[rows]] @ itf.T,
            seen,
            split.users,
            split.targets,
            tie,
            stage="als ranking",
            progress=progress,
        )
        out["als"] = metrics(als_rank, k)
    out["k"] = k
    out["users"] = len(split.users)
    out["items"] = n_items
    out["interactions"] = len(data.users)
    out["params"] = {
        "window": fit.window,
        "beta": fit.beta,
        "position_decay": params["position_decay"],
        "pop_weight": params["pop_weight"],
    }
    return out
