"""The recommender at request time (nudge.domain.recommend) on a model fitted to generated
interactions (nudge.learn.items): exclusions, cold start, exploration, diversity, the
session's categories, the artifact, and agreement with the offline evaluation's scores."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from nudge.domain.profile import Profile
from nudge.domain.recommend import (
    ItemModel,
    PopularRecommender,
    recommend,
    recommender,
)
from nudge.learn.evaluate import (
    fit_arrays,
    history_matrix,
    item_model_scores,
    leave_last_out,
    recent_lists,
)
from nudge.learn.items import FitParams, encode, fit_item_model, model_from_arrays

from tests.recs_support import categories, interactions

ROWS = interactions(users=200)
NOW_MS = max(t for *_, t in ROWS)


@pytest.fixture(scope="module")
def model() -> ItemModel:
    return fit_item_model(ROWS, now_ms=NOW_MS, categories=categories())


def recent(*items: str, code: str = "v") -> list[list[Any]]:
    """The profile's recent_items for views of `items`, the first the newest."""
    return [[item, code, NOW_MS - 60_000 * k] for k, item in enumerate(items)]


def ids(recs: list[dict[str, Any]]) -> list[str]:
    return [r["item_id"] for r in recs]


def test_a_user_with_no_history_gets_the_most_popular_items(model: ItemModel) -> None:
    recs = recommend(model, [], limit=10, exploration=0, diversity=False)

    by_popularity = sorted(model.items, key=lambda i: (-model.popularity[model.index[i]], i))
    assert ids(recs) == by_popularity[:10]
    assert {r["reason"] for r in recs} == {"popular"}


def test_bought_excluded_and_seen_items_never_come_back(model: ItemModel) -> None:
    # given the most popular items bought, and a session of views
    popular = ids(recommend(model, [], limit=5, exploration=0))
    session = recent("shoes-03", "shoes-07", "bags-01")

    recs = recommend(model, session, exclude=popular, limit=20, exploration=0)

    assert len(recs) == 20
    assert not set(ids(recs)) & (set(popular) | {"shoes-03", "shoes-07", "bags-01"})


def test_the_recommender_port_excludes_what_the_profile_bought(model: ItemModel) -> None:
    profile = Profile("u1", recent_items=recent("shoes-03"))
    first = ids(recommender("personal", model).recommend(profile, 5))
    profile.bought = {first[0]: NOW_MS}

    assert first[0] not in ids(recommender("personal", model).recommend(profile, 5))
    assert first[0] not in ids(PopularRecommender(model).recommend(profile, 5))


def test_the_items_that_follow_the_last_one_come_first(model: ItemModel) -> None:
    # what users viewed right after shoes-03, most often: the model's first neighbour
    followers = Counter(
        b[1]
        for a, b in itertools.pairwise(ROWS)
        if a[0] == b[0] and a[1] == "shoes-03" and b[1] != "shoes-03"
    )
    recs = recommend(model, recent("shoes-03"), limit=5, exploration=0)

    assert followers.most_common(1)[0][0] in ids(recs)[:3]
    assert recs[0]["reason"] == "similar"


@pytest.mark.parametrize(("limit", "share"), [(10, 0.1), (10, 0.25), (10, 0.3), (7, 0.3), (4, 0.5)])
def test_exploration_takes_its_share_of_the_slots(
    model: ItemModel, limit: int, share: float
) -> None:
    session = recent("tents-02", "tents-05")

    recs = recommend(model, session, limit=limit, exploration=share, rng=random.Random(3))

    explored = [r for r in recs if r["reason"] == "explore"]
    assert len(recs) == limit
    assert len(explored) == math.ceil(limit * share)
    assert recs[-len(explored) :] == explored  # after the best matches
    exploit = ids(recommend(model, session, limit=limit, exploration=0))
    assert not set(ids(explored)) & set(exploit[: limit - len(explored)])


def test_exploration_is_reproducible_with_a_seed_and_varies_without(model: ItemModel) -> None:
    session = recent("hats-01")
    runs = [
        ids(recommend(model, session, limit=10, exploration=0.3, rng=random.Random(s)))
        for s in (1, 1, 2, 3, 4)
    ]
    assert runs[0] == runs[1]
    assert len({tuple(r) for r in runs}) > 1


def test_exploration_picks_under_exposed_items_by_thompson_sampling() -> None:
    model = fit_item_model(ROWS, now_ms=NOW_MS, categories=categories())
    session = recent("tents-02")
    ranked = ids(recommend(model, session, limit=60, exploration=0, diversity=False))
    # every item shown often enough but two of the next candidates: one that mostly
    # converted, one that never did
    for item in model.items:
        model.exposure[item] = [1000, 10]
    winner, loser = ranked[12], ranked[20]
    model.exposure[winner], model.exposure[loser] = [50, 45], [50, 0]

    for seed in range(5):
        rng1, rng2 = random.Random(seed), random.Random(seed)
        one = recommend(model, session, limit=10, exploration=0.1, diversity=False, rng=rng1)
        two = recommend(model, session, limit=10, exploration=0.2, diversity=False, rng=rng2)
        assert [r["item_id"] for r in one if r["reason"] == "explore"] == [winner]
        assert [r["item_id"] for r in two if r["reason"] == "explore"] == [winner, loser]
    # nothing under-exposed: the slots go to the next best matches
    model.exposure[winner], model.exposure[loser] = [1000, 10], [1000, 10]
    recs = recommend(model, session, limit=10, exploration=0.2, rng=random.Random(0))
    assert len(recs) == 10 and "explore" not in {r["reason"] for r in recs}


def test_no_category_fills_more_than_half_the_list(model: ItemModel) -> None:
    # a session deep in one category
    session = recent(*(f"jackets-{r:02d}" for r in range(8)))

    for limit in (4, 5, 10):
        recs = recommend(model, session, limit=limit, exploration=0)
        counts = Counter(r["category"] for r in recs)
        assert len(recs) == limit
        assert max(counts.values()) == math.ceil(limit / 2)
    undiversified = recommend(model, session, limit=10, exploration=0, diversity=False)
    assert Counter(model.categories[model.index[i]] for i in ids(undiversified))["jackets"] > 5


def test_three_views_of_a_category_lift_it_without_training() -> None:
    # given a model that knows categories only through the catalog (as served)
    model = fit_item_model(ROWS, now_ms=NOW_MS)
    catalog = {item: {"category": cat, "name": item.title()} for item, cat in categories().items()}
    before = recommend(model, [], limit=10, exploration=0, catalog=catalog)
    socks_before = sum(r["category"] == "socks" for r in before)

    # when the user views three items of one category
    session = recent("socks-30", "socks-25", "socks-35")
    after = recommend(model, session, limit=10, exploration=0, catalog=catalog)

    socks_after = sum(r["category"] == "socks" for r in after)
    assert socks_after > socks_before
    assert socks_after == math.ceil(10 / 2)  # as far as the diversity rule lets it
    assert after[0]["category"] == "socks" and after[0]["name"]


def test_the_artifact_round_trips_through_json(model: ItemModel) -> None:
    model.exposure["shoes-01"] = [12, 3]
    text = json.dumps(model.to_dict())
    back = ItemModel.from_dict(json.loads(text))

    assert back.items == model.items and back.categories == model.categories
    assert list(back.popularity) == list(model.popularity)
    assert list(back.neighbours) == list(model.neighbours)
    assert list(back.scores) == list(model.scores)
    assert back.exposure["shoes-01"] == [12, 3] and back.params == model.params
    session = recent("bags-04", "bags-11", code="a")
    assert recommend(back, session, limit=10, rng=random.Random(5)) == recommend(
        model, session, limit=10, rng=random.Random(5)
    )


def test_an_artifact_of_another_version_or_shape_is_refused(model: ItemModel) -> None:
    data = model.to_dict()
    with pytest.raises(ValueError, match="version"):
        ItemModel.from_dict({**data, "version": 99})
    with pytest.raises(ValueError, match="match"):
        ItemModel.from_dict({**data, "items": data["items"][:-1]})


def test_the_artifact_stays_within_its_size_bound() -> None:
    # 240 items at 20 neighbours each: about 11 bytes a neighbour, plus the ids
    fit = FitParams(neighbours=20)
    model = fit_item_model(ROWS, now_ms=NOW_MS, fit=fit, categories=categories())
    size = len(json.dumps(model.to_dict()))

    assert max(b - a for a, b in zip(model.offsets, model.offsets[1:], strict=False)) == 20
    assert size <= len(model) * (20 * 11 + 40) + 2048


def test_an_empty_model_falls_back_to_the_users_own_recent_items() -> None:
    session = [*recent("p3", "p2", "p1"), ["p3", "a", NOW_MS - 10]]

    recs = recommend(ItemModel.empty(), session, exclude={"p2"}, limit=10)

    assert ids(recs) == ["p3", "p1"] and {r["reason"] for r in recs} == {"recent"}
    assert recommender("popular", None).recommend(Profile("u1", recent_items=session), 5) == []


def test_the_served_ranking_is_the_one_the_evaluation_measures() -> None:
    # the evaluation's vectorized scores and recommend() give the same list, users' whole
    # training history excluded as the evaluation excludes it
    data = encode(ROWS)
    split = leave_last_out(data)
    train = split.train
    model = model_from_arrays(train, now_ms=int(train.times.max()))
    fitted = fit_arrays(train, len(data.item_ids), FitParams())
    hist = history_matrix(train, split.users, len(data.item_ids), model.params)
    scores = item_model_scores(fitted.s, hist, fitted.pop, model.params)(np.arange(40))
    pop = model.popularity
    for row, history in zip(range(40), recent_lists(train, split.users), strict=False):
        u = int(split.users[row])
        seen = {data.item_ids[i] for i in train.items[train.users == u]}
        profile_recent = [[data.item_ids[i], code, t] for i, code, t in history]

        served = recommend(
            model, profile_recent, exclude=seen, limit=5, exploration=0, diversity=False
        )

        block = scores[row]
        open_items = [j for j in range(len(data.item_ids)) if data.item_ids[j] not in seen]
        best = sorted(open_items, key=lambda j: (-block[j], -pop[j], data.item_ids[j]))[:5]
        assert ids(served) == [data.item_ids[j] for j in best]
        assert [r["score"] for r in served] == pytest.approx([block[j] for j in best], abs=1e-5)
