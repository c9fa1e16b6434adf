"""The train run over in-memory ports: one read of profiles and archive, the steps, the
artifacts and the users' scores; a second run with nothing new writes nothing; a failing
step keeps the last good artifacts and scores."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from nudge.domain.catalog import Catalog, sightings
from nudge.domain.training import ABANDON_AFTER_MS, ArchiveExtract, count_abandonments
from nudge.learn.train import (
    CATALOG,
    CATALOG_STAMPS,
    ITEMS,
    SEGMENTS,
    STEPS,
    TRAIN_RUN,
    TrainData,
    TrainingError,
    TrainOutput,
    run_training,
)

from tests.fakes import (
    NOW,
    MemoryArchiveLines,
    MemoryModelStore,
    MemoryProfileScores,
    MemoryProfileStore,
)
from tests.train_support import Shop


def world(shop: Shop) -> tuple[MemoryProfileStore, MemoryProfileScores, MemoryArchiveLines]:
    store = MemoryProfileStore(shop.profiles())
    return store, MemoryProfileScores(store), MemoryArchiveLines(shop.lines())


def train(
    scores: MemoryProfileScores, archive: MemoryArchiveLines, models: MemoryModelStore, **kw: Any
) -> dict[str, Any]:
    return run_training(profiles=scores, archive=archive, store=models, now=NOW, **kw)


def test_a_run_scores_segments_and_catalogs_every_user() -> None:
    shop = Shop.make(NOW)
    store, scores, archive = world(shop)
    models = MemoryModelStore()
    summary = train(scores, archive, models)
    assert summary["ok"] and summary["errors"] == []
    assert summary["users"] == 60 and summary["profile_writes"] == 60
    assert summary["items"] == 10
    assert set(models.docs) == {SEGMENTS, CATALOG, CATALOG_STAMPS, ITEMS, TRAIN_RUN}
    for user in shop.events:
        p = store.profile(user)
        kind = shop.kind_of(user)
        expected = {
            "buyer": "frequent buyers",
            "adder": "cart abandoners",
            "visitor": "new visitors",
        }
        assert p.segment == expected[kind], user
        assert (p.rfm_score is not None) == (kind == "buyer")
        if p.rfm_score:
            assert len(p.rfm_score) == 3 and set(p.rfm_score) <= set("12345")
    assert Catalog.from_dict(models.docs[CATALOG]).item("p3") == {
        "product_id": "p3", "name": "Product 3", "price": 13.0, "category": "shoes",
        "url": "https://shop.example/p3", "image_url": "https://shop.example/p3.jpg",
    }  # fmt: skip


def test_a_second_run_with_nothing_new_writes_no_profile() -> None:
    shop = Shop.make(NOW)
    _store, scores, archive = world(shop)
    models = MemoryModelStore()
    train(scores, archive, models)
    scores.written.clear()
    again = train(scores, archive, models)
    assert again["profile_writes"] == 0 and scores.written == []


def test_only_users_whose_scores_changed_are_written() -> None:
    shop = Shop.make(NOW)
    store, scores, archive = world(shop)
    models = MemoryModelStore()
    train(scores, archive, models)
    scores.written.clear()
    row, version = store.rows["visitor-3"]
    store.rows["visitor-3"] = ({**row, "segment": "stale"}, version)
    assert train(scores, archive, models)["profile_writes"] == 1
    assert scores.written == ["visitor-3"] and store.profile("visitor-3").segment == "new visitors"


def test_a_failing_step_keeps_the_last_artifacts_and_scores() -> None:
    shop = Shop.make(NOW)
    store, scores, archive = world(shop)
    models = MemoryModelStore()
    train(scores, archive, models)
    good = {name: models.docs[name] for name in (SEGMENTS, CATALOG, CATALOG_STAMPS)}
    before = {u: store.profile(u).segment for u in shop.events}
    # a new user appears, then a step breaks
    store.rows["visitor-new"] = ({"user_id": "visitor-new", "orders": 9}, 1)

    def broken(data: TrainData, out: TrainOutput, store: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(TrainingError) as caught:
        train(scores, archive, models, steps=[*STEPS[:2], ("items", broken)])
    assert caught.value.summary["errors"] == ["items: RuntimeError: boom"]
    assert {name: models.docs[name] for name in (SEGMENTS, CATALOG, CATALOG_STAMPS)} == good
    assert models.docs[TRAIN_RUN]["ok"] is False
    assert {u: store.profile(u).segment for u in shop.events} == before
    assert store.profile("visitor-new").segment is None


def test_an_unreadable_archive_fails_the_run_and_keeps_everything() -> None:
    class Broken(MemoryArchiveLines):
        def lines(self, **kw: Any) -> Any:
            raise OSError("archive unreadable")

    shop = Shop.make(NOW)
    _store, scores, _archive = world(shop)
    models = MemoryModelStore()
    with pytest.raises(TrainingError):
        train(scores, Broken(), models)
    assert set(models.docs) == {TRAIN_RUN}
    assert scores.written == []


def test_extraction_keeps_one_copy_of_each_message_and_the_products_of_orders() -> None:
    shop = Shop.make(NOW, per_kind=3)
    extract = ArchiveExtract()
    for line in shop.lines(duplicates=True):
        extract.add_line(line)
    extract.finish(now_ms=int(NOW.timestamp() * 1000))
    expected = []
    for user, events in shop.events.items():
        for ev in events:
            if ev.event == "Order Completed":
                expected += [(user, p["product_id"], ev.event) for p in ev.properties["products"]]
            else:
                expected.append((user, ev.properties["product_id"], ev.event))
    assert sorted((u, i, e) for u, i, e, _t in extract.interactions) == sorted(expected)
    assert extract.interactions == sorted(
        extract.interactions, key=lambda i: (i[0], i[3], i[1], i[2])
    )


def test_a_product_line_of_another_archive_version_is_skipped_and_counted() -> None:
    row = {"v": 1, "type": "track", "event": "Product Viewed", "user_id": "u", "message_id": "m",
           "timestamp": "2026-03-02T10:00:00.000Z", "received_at": "2026-03-02T10:00:01.000Z",
           "properties": {"product_id": "p7"}}  # fmt: skip
    extract = ArchiveExtract()
    for v in (2, 1):
        extract.add_line(json.dumps({**row, "v": v}, separators=(",", ":")).encode())
    extract.add_line(b'{"event":"Product Viewed" cut short')
    extract.finish(now_ms=0)
    assert (extract.lines, extract.unreadable) == (3, 2)
    assert [(u, i) for u, i, _e, _t in extract.interactions] == [("u", "p7")]


def test_abandonments_count_runs_of_adds_without_a_timely_order() -> None:
    hour = ABANDON_AFTER_MS
    assert count_abandonments([(0, False), (10, True)], now_ms=10 * hour) == 0
    assert count_abandonments([(0, False), (2 * hour, True)], now_ms=10 * hour) == 1
    assert count_abandonments([(0, False), (10, False), (5 * hour, False)], now_ms=10 * hour) == 2
    assert count_abandonments([(0, False)], now_ms=hour // 2) == 0  # still open


def test_the_catalog_keeps_each_attribute_from_its_latest_event_in_any_order() -> None:
    old = sightings(
        "Product Viewed", {"product_id": "p1", "name": "Old", "image_url": "https://i/1"}, 1, "a"
    )
    new = sightings("Product Added", {"product_id": "p1", "name": "New", "price": 5}, 2, "b")
    order = sightings("Order Completed", {"products": [{"product_id": "p2", "price": 3}]}, 3, "c")
    forward = Catalog().merge(old + new + order)
    backward = Catalog().merge(order + new + old)
    assert forward.to_dict() == backward.to_dict()
    assert forward.item("p1") == {
        "product_id": "p1",
        "name": "New",
        "price": 5,
        "image_url": "https://i/1",
    }
    assert forward.item("p2") == {"product_id": "p2", "price": 3}
    assert sightings("Page Viewed", {"product_id": "p1"}, 1, "d") == []
    merged = Catalog.from_dict(forward.to_dict(), forward.stamps_dict()).merge(
        sightings("Product Viewed", {"product_id": "p1", "name": "Older"}, 0, "e")
    )
    assert merged.item("p1")["name"] == "New"  # type: ignore[index]


def test_the_window_reaches_the_archive_reader() -> None:
    seen: dict[str, Any] = {}

    class Spy(MemoryArchiveLines):
        def lines(self, *, since: Any, until: Any) -> Any:
            seen.update(since=since, until=until)
            return iter(())

    from nudge.learn.train import TrainConfig

    run_training(profiles=MemoryProfileScores(MemoryProfileStore()), archive=Spy(),
                 store=MemoryModelStore(), now=NOW, config=TrainConfig(window_days=7))  # fmt: skip
    assert seen == {"since": NOW - timedelta(days=7), "until": NOW}


def test_a_catalog_absorbed_is_the_catalog_of_all_the_sightings() -> None:
    first = sightings("Product Viewed", {"product_id": "p1", "name": "A", "price": 1}, 5, "m1")
    second = sightings("Product Added", {"product_id": "p1", "name": "B"}, 9, "m2")
    second += sightings("Product Removed", {"product_id": "p2", "name": "C"}, 1, "m3")
    absorbed = Catalog().merge(second).absorb(Catalog().merge(first))
    assert absorbed.to_dict() == Catalog().merge(first + second).to_dict()
    assert absorbed.stamps_dict() == Catalog().merge(second + first).stamps_dict()


def test_a_removal_describes_its_product_but_is_no_interaction() -> None:
    extract = ArchiveExtract()
    row = {"v": 1, "type": "track", "event": "Product Removed", "user_id": "u", "message_id": "m",
           "timestamp": "2026-03-02T10:00:00.000Z", "received_at": "2026-03-02T10:00:01.000Z",
           "properties": {"product_id": "p7", "name": "Seven"}}  # fmt: skip
    extract.add_line(json.dumps(row, separators=(",", ":")).encode())
    extract.finish(now_ms=0)
    assert extract.interactions == [] and extract.catalog.item("p7") == {
        "product_id": "p7",
        "name": "Seven",
    }


def test_equal_values_of_different_types_stay_apart_in_the_catalog() -> None:
    one = sightings("Product Viewed", {"product_id": "p1", "price": 1}, 1, "a")
    true = sightings("Product Viewed", {"product_id": "p2", "price": True}, 1, "b")
    real = sightings("Product Viewed", {"product_id": "p3", "price": 1.0}, 1, "c")
    assert [s.attributes["price"] for s in one + true + real] == [1, True, 1.0]
    assert [type(s.attributes["price"]) for s in one + true + real] == [int, bool, float]


def test_describe_adds_the_catalogs_attributes_an_item_lacks() -> None:
    from nudge.domain.catalog import describe

    catalog = Catalog().merge(
        sightings("Product Viewed", {"product_id": "p1", "name": "Boot", "price": 90}, 1, "a")
    )
    recs = [{"item_id": "p1", "score": 0.9}, {"item_id": "unknown", "score": 0.1}]
    assert describe(recs, catalog.items) == [
        {"item_id": "p1", "score": 0.9, "name": "Boot", "price": 90},
        {"item_id": "unknown", "score": 0.1},
    ]
    cart = [{"product_id": "p1", "price": 80}]
    assert describe(cart, catalog.items, key="product_id") == [
        {"product_id": "p1", "price": 80, "name": "Boot"}  # the cart's own price stays
    ]
    assert describe(recs, None) == recs
