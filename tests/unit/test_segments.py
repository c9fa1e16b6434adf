"""k-means segments: k chosen by silhouette, names from centroids, stable under the seed
and under the order users are read in."""

from __future__ import annotations

import random

import pytest
from nudge.learn.segments import FEATURES, UserFeatures, fit_segments, name_clusters
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score


def population(seed: int = 1, n: int = 300) -> list[UserFeatures]:
    """Three behaviors: buyers who come back, adders who never buy, one-visit visitors."""
    r = random.Random(seed)
    users = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            users.append(
                UserFeatures(f"buyer{i}", r.uniform(0, 3), r.randint(4, 9), r.uniform(200, 600),
                             r.randint(6, 12), r.uniform(20, 60), r.randint(15, 40), r.randint(5, 12), 0)
            )  # fmt: skip
        elif kind == 1:
            users.append(
                UserFeatures(f"adder{i}", r.uniform(0, 3), 0, 0, r.randint(2, 4), r.uniform(5, 15),
                             r.randint(4, 9), r.randint(3, 7), r.randint(2, 5))
            )  # fmt: skip
        else:
            users.append(
                UserFeatures(f"visitor{i}", r.uniform(0, 2), 0, 0, 1, r.uniform(0, 2),
                             r.randint(1, 2), 0, 0)
            )  # fmt: skip
    return users


def test_three_behaviors_give_three_named_segments() -> None:
    model = fit_segments(population())
    assert model.k == 3
    by_kind = {
        kind: {model.assignments[u.user_id] for u in population() if u.user_id.startswith(kind)}
        for kind in ("buyer", "adder", "visitor")
    }
    assert by_kind == {
        "buyer": {"frequent buyers"},
        "adder": {"cart abandoners"},
        "visitor": {"new visitors"},
    }
    assert sorted(c.size for c in model.clusters) == [100, 100, 100]


def test_k_is_the_best_silhouette_in_the_range() -> None:
    model = fit_segments(population(), k_min=2, k_max=6)
    assert set(model.silhouettes) == {2, 3, 4, 5, 6}
    assert model.silhouette == max(model.silhouettes.values())
    assert model.silhouettes[model.k] == model.silhouette


def test_the_range_bounds_k() -> None:
    model = fit_segments(population(), k_min=4, k_max=5)
    assert model.k in (4, 5)
    assert len({c.name for c in model.clusters}) == model.k  # unique names


def test_silhouette_matches_scikit_learn_on_the_same_transform() -> None:
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    users = population(seed=4)
    model = fit_segments(users, k_min=3, k_max=3)
    x = StandardScaler().fit_transform(np.log1p(np.array([u.row() for u in users])))
    labels = KMeans(n_clusters=3, n_init=4, random_state=0).fit_predict(x)
    assert model.silhouette == pytest.approx(silhouette_score(x, labels), abs=1e-6)


def test_names_do_not_depend_on_the_order_users_come_in() -> None:
    users = population(seed=2)
    first = fit_segments(users).assignments
    for seed in range(3):
        shuffled = users[:]
        random.Random(seed).shuffle(shuffled)
        assert fit_segments(shuffled).assignments == first


def test_the_same_seed_gives_the_same_segments() -> None:
    users = population(seed=3, n=600)
    a, b = fit_segments(users, seed=7), fit_segments(users, seed=7)
    assert a.assignments == b.assignments
    assert a.to_dict(trained_at_ms=0) == b.to_dict(trained_at_ms=0)


def test_two_clusters_of_the_same_kind_get_unique_names() -> None:
    z = [[0.0] * len(FEATURES), [0.1] * len(FEATURES), [0.2] * len(FEATURES)]
    quiet = dict.fromkeys(FEATURES, 0.0) | {"sessions": 2.0}
    names = name_clusters(z, [quiet, quiet, quiet])
    assert len(set(names)) == 3
    assert names.count("casual browsers") == 1
    assert sorted(names) == ["casual browsers", "casual browsers 2", "casual browsers 3"]


def test_few_users_make_one_cluster_and_none_make_none() -> None:
    one = fit_segments(population()[2:3])  # one visitor
    assert one.k == 1 and one.assignments == {"visitor2": "new visitors"}
    assert fit_segments([]).assignments == {}


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError):
        fit_segments(population(), k_min=5, k_max=4)


def test_k_chosen_on_a_sample_names_the_same_segments_as_on_everyone() -> None:
    users = population(seed=5, n=900)
    full = fit_segments(users)
    sampled = fit_segments(users, selection_sample=300)
    assert sampled.k == full.k == 3
    assert sampled.assignments == full.assignments
    assert sum(c.size for c in sampled.clusters) == 900
