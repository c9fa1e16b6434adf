"""Recommendations at request time: a sequence-aware item-to-item model, read from a JSON
artifact, applied to the profile's recent items (docs/personalization.md).

Pure Python (no numpy): the api and deliver functions run it, and their layer has none.
The model is fitted at train time by nudge.learn.items; nudge.learn.evaluate scores the
same formula vectorized, so what the offline evaluation measures is what this serves:

    score(j) = personal(j) / max(personal) + pop_weight * pop(j) + cat_boost * affinity(cat(j))
    personal(j) = sum over the user's recent items i (newest first, k-th distinct item)
                  of position_decay ** k * code_weight(i) * S[i, j]

S holds the top-N neighbours of each item (transitions: what follows i in users'
sequences, weighted by how soon); pop is recent decayed popularity scaled to [0, 1];
affinity is the share of the user's recent items (position-weighted) in j's category.
Then bought and excluded items go, at most ceil(limit/2) per category (diversity), and
ceil(limit * exploration) slots go to under-exposed items by Thompson sampling.
"""

from __future__ import annotations

import base64
import math
import random
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from nudge.domain.profile import Profile

ARTIFACT_VERSION = 1
# The profile's item codes (nudge.domain.profile.ITEM_CODES): viewed, added, purchased
DEFAULT_CODE_WEIGHTS = {"v": 1.0, "a": 2.0, "p": 3.0}
DEFAULT_PARAMS: dict[str, Any] = {
    "position_decay": 0.8,  # weight of the k-th most recent distinct item: decay ** k
    "pop_weight": 0.01,  # popularity's share in a personal list (and the whole of a cold one)
    "cat_boost": 0.5,  # how far the categories of the user's recent items lift theirs
    "code_weights": DEFAULT_CODE_WEIGHTS,
    "explore_below": 100,  # an item shown fewer times than this is under-exposed
}
DEFAULT_EXPLORATION = 0.1  # share of the slots for under-exposed items
CATALOG_KEYS = ("name", "price", "url", "image_url", "category")


def _pack(values: Iterable[float] | Iterable[int], typecode: str) -> str:
    """Numbers as base64 of big-endian 4-byte values (as the profile packs its dedup ids):
    one C call each way, 5.3 characters a value instead of ~10 as JSON."""
    arr = array(typecode, values)
    if sys.byteorder == "little":
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode()


def _unpack(text: str, typecode: str) -> array[Any]:
    arr: array[Any] = array(typecode)
    arr.frombytes(base64.b64decode(text))
    if sys.byteorder == "little":
        arr.byteswap()
    return arr


@dataclass
class ItemModel:
    """What the train function fits and the api reads: items, their neighbours (CSR:
    item k's are `neighbours[offsets[k]:offsets[k+1]]`, best first, with `scores`), recent
    popularity in [0, 1], optional categories, exposure statistics for exploration
    (item -> [times shown, successes]; unknown items count as never shown) and the
    request-time parameters tuned with it."""

    items: list[str] = field(default_factory=list)
    popularity: array[float] = field(default_factory=lambda: array("f"))
    offsets: array[int] = field(default_factory=lambda: array("I", [0]))
    neighbours: array[int] = field(default_factory=lambda: array("I"))
    scores: array[float] = field(default_factory=lambda: array("f"))
    categories: list[str | None] = field(default_factory=list)  # per item, or empty
    exposure: dict[str, list[int]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    trained_at: int = 0  # ms

    @classmethod
    def empty(cls) -> ItemModel:
        return cls()

    def __len__(self) -> int:
        return len(self.items)

    def param(self, name: str) -> Any:
        return self.params.get(name, DEFAULT_PARAMS[name])

    @cached_property
    def index(self) -> dict[str, int]:
        return {item: k for k, item in enumerate(self.items)}

    @cached_property
    def by_popularity(self) -> list[int]:
        """Item indices, most popular first (ties: item id)."""
        pop, items = self.popularity, self.items
        return sorted(range(len(items)), key=lambda k: (-pop[k], items[k]))

    def neighbours_of(self, k: int) -> Iterable[tuple[int, float]]:
        lo, hi = self.offsets[k], self.offsets[k + 1]
        return zip(self.neighbours[lo:hi], self.scores[lo:hi], strict=True)

    # ---- the JSON artifact ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        names = sorted({c for c in self.categories if c is not None})
        code = {c: i for i, c in enumerate(names)}
        return {
            "version": ARTIFACT_VERSION,
            "trained_at": self.trained_at,
            "items": self.items,
            "popularity": _pack(self.popularity, "f"),
            "offsets": _pack(self.offsets, "I"),
            "neighbours": _pack(self.neighbours, "I"),
            "scores": _pack(self.scores, "f"),
            "category_names": names,
            # per item: its category's index in category_names, -1 for none
            "categories": _pack([code.get(c, -1) for c in self.categories], "i")  # type: ignore[arg-type]
            if names
            else "",
            "exposure": self.exposure,
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemModel:
        if data.get("version") != ARTIFACT_VERSION:
            raise ValueError(f"item model artifact version {data.get('version')!r} is not 1")
        names = list(data.get("category_names") or [])
        cats = _unpack(data["categories"], "i") if data.get("categories") else []
        model = cls(
            items=list(data["items"]),
            popularity=_unpack(data["popularity"], "f"),
            offsets=_unpack(data["offsets"], "I"),
            neighbours=_unpack(data["neighbours"], "I"),
            scores=_unpack(data["scores"], "f"),
            categories=[names[c] if c >= 0 else None for c in cats],
            exposure={str(k): [int(v[0]), int(v[1])] for k, v in data["exposure"].items()},
            params={**DEFAULT_PARAMS, **dict(data.get("params") or {})},
            trained_at=int(data.get("trained_at") or 0),
        )
        n = len(model.items)
        if len(model.popularity) != n or len(model.offsets) != n + 1:
            raise ValueError("item model artifact: arrays do not match its items")
        if len(model.neighbours) != len(model.scores) or model.offsets[-1] != len(model.scores):
            raise ValueError("item model artifact: neighbours do not match their scores")
        if model.categories and len(model.categories) != n:
            raise ValueError("item model artifact: categories do not match its items")
        return model


def history_weights(
    recent: Sequence[Sequence[Any]], code_weights: Mapping[str, float], position_decay: float
) -> dict[str, float]:
    """Item -> weight from the profile's recent items (`[item_id, code, ms]`, newest
    first): the k-th distinct item weighs position_decay ** k times its strongest code's
    weight (an item viewed then added counts once, as added)."""
    weights: dict[str, float] = {}
    position: dict[str, int] = {}
    for entry in recent:
        item, code = str(entry[0]), str(entry[1])
        k = position.setdefault(item, len(position))
        w = position_decay**k * float(code_weights.get(code, 1.0))
        weights[item] = max(weights.get(item, 0.0), w)
    return weights


def _category(
    model: ItemModel, item: str, k: int | None, catalog: Mapping[str, Mapping[str, Any]] | None
) -> str | None:
    if catalog is not None:
        attrs = catalog.get(item)
        if attrs is not None and attrs.get("category") not in (None, ""):
            return str(attrs["category"])
    if k is not None and model.categories:
        return model.categories[k]
    return None


def _viewed_not_bought(
    recent: Sequence[Sequence[Any]], exclude: frozenset[str], limit: int
) -> list[dict[str, Any]]:
    """What a user with no model to go by is shown: their own recent items, newest first."""
    out: list[str] = []
    for entry in recent:
        item = str(entry[0])
        if item not in exclude and item not in out:
            out.append(item)
        if len(out) >= limit:
            break
    n = len(out)
    return [
        {"item_id": item, "score": round(1.0 - i / max(n, 1), 4), "reason": "recent"}
        for i, item in enumerate(out)
    ]


def recommend(
    model: ItemModel,
    recent: Sequence[Sequence[Any]],
    *,
    exclude: Iterable[str] = (),
    limit: int = 10,
    exploration: float = DEFAULT_EXPLORATION,
    diversity: bool = True,
    catalog: Mapping[str, Mapping[str, Any]] | None = None,
    rng: random.Random | None = None,
    exclude_seen: bool = True,
) -> list[dict[str, Any]]:
    """Up to `limit` items for a user whose recent items are `recent` (the profile's
    `recent_items`, newest first): `[{"item_id", "score", "reason", name/price/... from
    the catalog}]` in the order to show. `exclude` (bought items, the cart...) never
    appear, nor (with `exclude_seen`) the recent items themselves. No history: popular
    items. An empty model: the user's own recent items not excluded.

    `exploration` (0..1) reserves ceil(limit * exploration) slots, at the end, for
    under-exposed items among the next candidates, picked by Thompson sampling on
    Beta(successes + 1, failures + 1) (`rng`: seed it for reproducible lists); with
    `diversity` and known categories, at most ceil(limit / 2) items share one."""
    excluded = frozenset(exclude)
    if limit <= 0:
        return []
    if not model.items:
        return _viewed_not_bought(recent, excluded, limit)
    hist = history_weights(recent, model.param("code_weights"), model.param("position_decay"))
    if exclude_seen:
        excluded |= frozenset(hist)
    index = model.index

    # personal: the neighbours of the recent items
    acc: dict[int, float] = {}
    for item, w in hist.items():
        k = index.get(item)
        if k is None:
            continue
        for j, s in model.neighbours_of(k):
            acc[j] = acc.get(j, 0.0) + w * s
    top = max(acc.values(), default=0.0)
    personal = {j: v / top for j, v in acc.items()} if top > 0 else {}

    # the categories of the recent items, position-weighted
    affinity: dict[str, float] = {}
    total = sum(hist.values())
    for item, w in hist.items():
        cat = _category(model, item, index.get(item), catalog)
        if cat is not None:
            affinity[cat] = affinity.get(cat, 0.0) + w / total

    cat_of: dict[int, str | None] = {}

    def category(j: int) -> str | None:
        if j not in cat_of:
            cat_of[j] = _category(model, model.items[j], j, catalog)
        return cat_of[j]

    # candidates: the personal ones, then by popularity enough to fill every slot (any
    # other item scores lower than these); with affinities, those categories' items too
    pop, pop_weight, cat_boost = (
        model.popularity,
        model.param("pop_weight"),
        model.param("cat_boost"),
    )
    wanted = 3 * limit + len(excluded)
    candidates = dict.fromkeys(personal)
    for j in model.by_popularity[:wanted]:
        candidates[j] = None
    if affinity and cat_boost:
        found = dict.fromkeys(affinity, 0)
        full = 0
        for j in model.by_popularity:
            c = category(j)
            if c in found and found[c] < wanted:
                found[c] += 1
                candidates[j] = None
                full += found[c] == wanted
                if full == len(found):
                    break
    scored: list[tuple[float, int]] = []
    for j in candidates:
        if model.items[j] in excluded:
            continue
        score = personal.get(j, 0.0) + pop_weight * pop[j]
        if affinity:
            c = category(j)
            if c is not None:
                score += cat_boost * affinity.get(c, 0.0)
        scored.append((score, j))
    scored.sort(key=lambda sj: (-sj[0], -pop[sj[1]], model.items[sj[1]]))

    # (less a hair: 10 x 0.3 is 3.0000000000000004 in floating point)
    n_explore = min(limit, math.ceil(limit * exploration - 1e-9)) if exploration > 0 else 0
    cap = math.ceil(limit / 2) if diversity else limit
    per_cat: dict[str, int] = {}

    def fits(j: int) -> bool:
        c = category(j) if diversity else None
        return c is None or per_cat.get(c, 0) < cap

    def take(j: int, picked: list[int]) -> None:
        picked.append(j)
        c = category(j) if diversity else None
        if c is not None:
            per_cat[c] = per_cat.get(c, 0) + 1

    exploit: list[int] = []
    rest: list[int] = []
    for _, j in scored:
        if len(exploit) < limit - n_explore and fits(j):
            take(j, exploit)
        else:
            rest.append(j)
    explored: list[int] = []
    if n_explore:
        below = model.param("explore_below")
        rng = rng or random.Random()
        pool = []
        for j in rest:  # the next best under-exposed candidates that the diversity rule allows
            shown, won = model.exposure.get(model.items[j], [0, 0])
            if shown < below and fits(j):
                pool.append((rng.betavariate(won + 1, max(shown - won, 0) + 1), j))
                if len(pool) >= 5 * limit:
                    break
        for _, j in sorted(pool, reverse=True):
            if len(explored) < n_explore and fits(j):
                take(j, explored)
    chosen = set(exploit) | set(explored)
    # slots still open (too few candidates, or only candidates of full categories left):
    # the best of the rest, whatever their category
    for j in rest:
        if len(exploit) + len(explored) >= limit:
            break
        if j not in chosen:
            take(j, exploit)
            chosen.add(j)
    score_of = {j: s for s, j in scored}
    out = []
    for reason_default, picks in (("", exploit), ("explore", explored)):
        for j in picks:
            item = model.items[j]
            if reason_default:
                reason = reason_default
            elif j in personal:
                reason = "similar"
            elif affinity.get(category(j) or "", 0.0) and cat_boost:
                reason = "category"
            else:
                reason = "popular"
            rec: dict[str, Any] = {
                "item_id": item,
                "score": round(score_of[j], 6),
                "reason": reason,
            }
            attrs = (catalog or {}).get(item) or {}
            rec.update({key: attrs[key] for key in CATALOG_KEYS if attrs.get(key) is not None})
            cat = category(j)
            if cat is not None:
                rec["category"] = cat
            out.append(rec)
    return out


# ---- strategies (the Recommender port, nudge.domain.ports) -----------------------------------
@dataclass
class PersonalRecommender:
    """The model applied to the profile's recent items, bought items excluded."""

    model: ItemModel
    catalog: Mapping[str, Mapping[str, Any]] | None = None
    exploration: float = DEFAULT_EXPLORATION
    diversity: bool = True
    rng: random.Random | None = None

    def recommend(
        self, profile: Profile, limit: int, exclude: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        return recommend(
            self.model,
            profile.recent_items,
            exclude=frozenset(profile.bought) | frozenset(exclude),
            limit=limit,
            exploration=self.exploration,
            diversity=self.diversity,
            catalog=self.catalog,
            rng=self.rng,
        )


@dataclass
class PopularRecommender:
    """Popular items only (what an experiment's control may show), bought ones excluded."""

    model: ItemModel
    catalog: Mapping[str, Mapping[str, Any]] | None = None

    def recommend(
        self, profile: Profile, limit: int, exclude: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        return recommend(
            self.model,
            [],
            exclude=frozenset(profile.bought) | frozenset(exclude),
            limit=limit,
            exploration=0.0,
            diversity=False,
            catalog=self.catalog,
        )


STRATEGIES = ("personal", "popular")


def recommender(
    strategy: str,
    model: ItemModel | None,
    *,
    catalog: Mapping[str, Mapping[str, Any]] | None = None,
    rng: random.Random | None = None,
) -> PersonalRecommender | PopularRecommender:
    """The strategy an experiment variant names (`personal` by default); no model yet:
    an empty one (the user's own recent items for `personal`, nothing for `popular`)."""
    m = model if model is not None else ItemModel.empty()
    if strategy == "popular":
        return PopularRecommender(m, catalog)
    if strategy != "personal":
        raise ValueError(f"unknown recommendation strategy {strategy!r}: {STRATEGIES}")
    return PersonalRecommender(m, catalog, rng=rng)
