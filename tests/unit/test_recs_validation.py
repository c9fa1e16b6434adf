"""The train run's validation of the recommender (nudge.learn.train.items_step): a
candidate fitted without the most recent day is scored on it (HR@10 as the api serves
it) against popularity and the model in service, and replaces the served model only when
it is not worse."""

from __future__ import annotations

import random

from nudge.domain.catalog import Catalog
from nudge.domain.recommend import ItemModel
from nudge.learn.items import fit_item_model
from nudge.learn.train import (
    DAY_MS,
    ITEMS,
    TrainConfig,
    TrainData,
    TrainOutput,
    items_step,
    validation_cases,
)

from tests.fakes import MemoryModelStore

NOW_MS = 1_790_000_000_000


def sessions(seed: int = 7, users: int = 300) -> list[tuple[str, str, str, int]]:
    """Users walk a chain of items (i, i+1, i+2 ...): what follows an item is learnable;
    each user's last step falls on the most recent day."""
    rng = random.Random(seed)
    out = []
    for u in range(users):
        start = rng.randrange(40)
        t0 = NOW_MS - 5 * DAY_MS + rng.randrange(DAY_MS)
        steps = 4
        for k in range(steps):
            t = t0 + k * 3_600_000 if k < steps - 1 else NOW_MS - rng.randrange(DAY_MS // 2)
            out.append((f"u{u}", f"i{(start + k) % 50}", "Product Viewed", t))
    out.sort(key=lambda i: (i[0], i[3]))
    return out


def data_of(interactions: list[tuple[str, str, str, int]]) -> TrainData:
    return TrainData(
        now_ms=NOW_MS,
        config=TrainConfig(),
        profiles=[],
        interactions=interactions,
        catalog=Catalog(),
        abandonments={},
    )


def test_the_held_out_day_is_what_each_user_did_next_and_not_trained_on() -> None:
    interactions = sessions()
    before, cases = validation_cases(interactions, NOW_MS - DAY_MS)
    assert all(t < NOW_MS - DAY_MS for *_, t in before)
    assert len(cases) == 300
    recent, target = cases[0]
    assert target not in {r[0] for r in recent}


def test_a_first_model_is_promoted_and_beats_popularity_on_the_last_day() -> None:
    store, out = MemoryModelStore(), TrainOutput()
    items_step(data_of(sessions()), out, store)
    report = out.stats["items_validation"]
    assert report["promoted"] and ITEMS in out.artifacts
    assert report["hr_serving"] is None
    assert report["hr_candidate"] > 2 * report["hr_popularity"]


def test_a_candidate_worse_than_the_model_in_service_is_not_promoted() -> None:
    interactions = sessions()
    # in service: a model that knew the held-out day (better than any fair candidate)
    serving = fit_item_model(interactions, now_ms=NOW_MS)
    store = MemoryModelStore()
    store.save(ITEMS, serving.to_dict())
    # the new data has lost its structure (a broken feed): random items
    rng = random.Random(3)
    noise = sorted(
        ((u, f"i{rng.randrange(50)}", e, t) for u, _i, e, t in interactions),
        key=lambda i: (i[0], i[3]),
    )
    out = TrainOutput()
    items_step(data_of(noise), out, store)
    report = out.stats["items_validation"]
    assert report["hr_serving"] > report["hr_candidate"]
    assert not report["promoted"] and ITEMS not in out.artifacts
    assert ItemModel.from_dict(store.load(ITEMS) or {}).items == serving.items  # kept


def test_a_segment_filter_sees_the_archetype_of_a_numbered_cluster() -> None:
    from nudge.domain.triggers.compiler import segment_family

    assert segment_family("frequent buyers 2") == "frequent buyers"
    assert segment_family("frequent buyers") == "frequent buyers"
    assert segment_family("top 10 fans") == "top 10 fans"  # a number inside stays
