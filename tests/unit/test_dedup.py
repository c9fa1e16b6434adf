"""Dedup past the profile's bound (docs/decisions.md D42): a messageId sent again within
24 h is folded once however many events the user sent meanwhile. The profile keeps up to
MAX_SEEN fingerprints itself; past that they move out to the dedup store, read only for
users that spilled there, so that the guarantee holds at any rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nudge.domain.events import Event
from nudge.domain.processing import MAX_FOLD_EVENTS, fold_user, process_users
from nudge.domain.profile import MAX_SEEN

from tests.fakes import MemoryProfileStore

T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def event(i: int, received: datetime, user: str = "heavy") -> Event:
    return Event(
        type="track",
        message_id=f"m{i}",
        user_id=user,
        event="Product Viewed",
        properties={"product_id": f"p{i % 7}"},
        timestamp=received - timedelta(seconds=1),
        received_at=received,
    )


def send(store: MemoryProfileStore, ids: range, received: datetime, per_batch: int = 100) -> int:
    """Folds the events `ids` in batches as the process function would; how many were new."""
    fresh = 0
    for lo in range(ids.start, ids.stop, per_batch):
        batch = [event(i, received) for i in range(lo, min(lo + per_batch, ids.stop))]
        fresh += fold_user(store, "heavy", batch, now=received).fresh
    return fresh


def counted(store: MemoryProfileStore) -> int:
    return store.profile("heavy").event_counts.get("Product Viewed", 0)


def test_old_message_ids_resent_within_24_hours_past_the_bound_are_not_counted_again() -> None:
    # the audit: past 2,000 events a user's oldest fingerprints were forgotten, and 100 old
    # messageIds resent within the day counted again
    store = MemoryProfileStore()
    n = MAX_SEEN + 1_000
    assert send(store, range(n), T) == n
    # when the first 100 and the last 100 are sent again 20 hours later
    later = T + timedelta(hours=20)
    again = send(store, range(100), later) + send(store, range(n - 100, n), later)
    # then none is counted again
    assert again == 0
    assert counted(store) == n


def test_a_user_under_the_bound_never_reads_or_writes_the_dedup_store() -> None:
    # given a user with MAX_SEEN events in the window, each batch resent once
    store = MemoryProfileStore()
    assert send(store, range(MAX_SEEN), T, per_batch=10) == MAX_SEEN
    assert send(store, range(MAX_SEEN), T + timedelta(hours=1), per_batch=10) == 0
    # then everything was deduplicated from the profile alone
    assert store.dedup == {} and store.dedup_reads == 0
    assert store.profile("heavy").spilled == {}
    assert len(store.profile("heavy").seen) == MAX_SEEN


def test_past_the_bound_the_profile_keeps_its_last_fold_and_the_store_the_rest() -> None:
    store = MemoryProfileStore()
    n = 10 * MAX_SEEN
    send(store, range(n), T)
    p = store.profile("heavy")
    # the profile holds at most MAX_SEEN (here the last fold's 100 or more); every other
    # fingerprint of the window is in the dedup store, under the user's id
    assert 100 <= len(p.seen) <= MAX_SEEN
    in_store = {fp for (uid, fp) in store.dedup if uid == "heavy"}
    assert len(in_store) + len(p.seen) == n
    assert not in_store & set(p.seen)
    assert p.spilled == {"heavy": to_minute(T)}


def to_minute(at: datetime) -> int:
    return int(at.timestamp()) // 60


def test_after_the_window_a_message_id_counts_again_and_the_store_is_no_longer_read() -> None:
    store = MemoryProfileStore()
    send(store, range(MAX_SEEN + 300), T)
    reads = store.dedup_reads
    # when the first messageIds come back 26 hours later (past the 25-hour window)
    later = T + timedelta(hours=26)
    assert send(store, range(100), later) == 100
    # then they are new events, and the profile no longer looks into the dedup store
    assert store.dedup_reads == reads
    assert store.profile("heavy").spilled == {}


def test_a_fold_whose_profile_write_fails_after_the_spill_loses_no_event() -> None:
    # given a user who spilled, and a batch that takes the profile past the bound again,
    # whose save fails after the fingerprints it moves out are stored
    store = MemoryProfileStore()
    n = MAX_SEEN + 100
    send(store, range(n), T)
    assert store.profile("heavy").spilled
    k = MAX_SEEN - len(store.profile("heavy").seen) + 50
    batch = [event(i, T + timedelta(minutes=1)) for i in range(n, n + k)]
    store.fail_saves["heavy"] = RuntimeError("DynamoDB unreachable")
    spilled_before = len(store.dedup)
    with pytest.raises(RuntimeError):
        fold_user(store, "heavy", batch, now=T)
    assert len(store.dedup) > spilled_before  # the earlier folds' fingerprints moved out
    assert counted(store) == n  # nothing of the batch was written
    # when the batch is retried
    del store.fail_saves["heavy"]
    assert fold_user(store, "heavy", batch, now=T).fresh == k
    # then each event counts once: a fold moves out only what earlier folds wrote
    assert counted(store) == n + k
    assert fold_user(store, "heavy", batch, now=T).fresh == 0


def test_an_anonymous_heavy_profile_merged_into_a_user_keeps_its_dedup() -> None:
    # given an anonymous visitor past the bound
    store = MemoryProfileStore()
    anon = [
        Event(
            type="track",
            message_id=f"a{i}",
            anonymous_id="anon-1",
            event="Product Viewed",
            timestamp=T,
            received_at=T,
        )
        for i in range(MAX_SEEN + 200)
    ]
    for lo in range(0, len(anon), 100):
        fold_user(store, "anon-1", anon[lo : lo + 100], now=T)
    # when they log in, and their first anonymous events are sent again
    login = Event(
        type="identify",
        message_id="login",
        user_id="heavy",
        anonymous_id="anon-1",
        timestamp=T,
        received_at=T,
    )
    fold_user(store, "heavy", [login], now=T)
    assert counted(store) == MAX_SEEN + 200
    resent = [e.model_copy(update={"received_at": T + timedelta(hours=2)}) for e in anon[:100]]
    out = fold_user(store, "anon-1", resent, now=T + timedelta(hours=2))
    # then they fold into the user as duplicates: the anonymous id's stored fingerprints
    # are looked up too
    assert (out.user_id, out.fresh) == ("heavy", 0)
    assert counted(store) == MAX_SEEN + 200
    assert "anon-1" in store.profile("heavy").spilled


def test_a_batch_of_more_than_max_fold_events_is_folded_in_chunks_each_counted_once() -> None:
    # given one user's batch of 2.5 folds' worth of events (one large request)
    store = MemoryProfileStore()
    n = MAX_FOLD_EVENTS * 5 // 2
    events = [event(i, T) for i in range(n)]
    out = process_users(store, {"heavy": events}, now=T)
    # then every event counted once, in three writes, and the profile keeps one fold
    assert (out.fresh, out.writes, out.failed_users) == (n, 3, {})
    assert counted(store) == n
    assert len(store.profile("heavy").seen) <= MAX_FOLD_EVENTS
    again = process_users(store, {"heavy": events}, now=T + timedelta(hours=1))
    assert (again.fresh, again.duplicates) == (0, n)
