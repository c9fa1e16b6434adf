"""The process use case against an in-memory ProfileStore: one conditional write per
user per batch, exactly-once effects per messageId, optimistic concurrency, and identity
merges (alias, identify of an anonymous id). No I/O."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nudge.domain.errors import ConcurrentUpdateError
from nudge.domain.events import Event
from nudge.domain.ports import ProfileStore, StoredProfile
from nudge.domain.processing import MAX_ATTEMPTS, fold_user, process_users
from nudge.domain.profile import Profile

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_ids = iter(range(10**9))


class InMemoryProfileStore:
    """The ProfileStore port in memory, with the adapter's semantics: documents stored as
    JSON, every save conditional on the version read (None: must not exist yet), save_all
    all-or-nothing."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, int]] = {}
        self.saved: list[str] = []  # user id of every item written, in order
        self.dedup: dict[tuple[str, str], int] = {}  # (user, fingerprint) -> minute
        self.transactions: list[list[str]] = []
        self.reads = 0
        # called before each conditional write: a test's stand-in for another writer
        self.before_write: Callable[[StoredProfile], None] | None = None

    # reads
    def get(self, user_id: str) -> StoredProfile | None:
        self.reads += 1
        row = self.rows.get(user_id)
        if row is None:
            return None
        return StoredProfile(Profile.from_dict(json.loads(row[0])), row[1])

    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]:
        out = {}
        for uid in user_ids:
            row = self.rows.get(uid)
            if row is not None:
                out[uid] = StoredProfile(Profile.from_dict(json.loads(row[0])), row[1])
        self.reads += 1
        return out

    # writes
    def _check(self, stored: StoredProfile) -> None:
        current = self.rows.get(stored.profile.user_id)
        if stored.version != (current[1] if current else None):
            raise ConcurrentUpdateError(f"{stored.profile.user_id} changed concurrently")

    def _write(self, stored: StoredProfile) -> None:
        version = (stored.version or 0) + 1
        for fp, minute in stored.profile.evicted.items():
            self.dedup[(stored.profile.user_id, fp)] = minute
        stored.profile.evicted.clear()
        self.rows[stored.profile.user_id] = (json.dumps(stored.profile.to_dict()), version)
        stored.version = version
        self.saved.append(stored.profile.user_id)

    def save(self, stored: StoredProfile) -> None:
        if self.before_write:
            self.before_write(stored)
        self._check(stored)
        self._write(stored)

    def save_all(self, stored: Sequence[StoredProfile]) -> None:
        for s in stored:
            if self.before_write:
                self.before_write(s)
        for s in stored:
            self._check(s)
        for s in stored:
            self._write(s)
        self.transactions.append([s.profile.user_id for s in stored])

    def spilled(self, user_ids: Sequence[str], fingerprints: Collection[str]) -> dict[str, int]:
        """The dedup store (tests/unit/test_dedup.py): what `_write` moved there."""
        return {
            fp: self.dedup[(uid, fp)]
            for uid in user_ids
            for fp in fingerprints
            if (uid, fp) in self.dedup
        }

    def delete(self, user_id: str) -> None:
        self.rows.pop(user_id, None)

    # test helpers
    def profile(self, user_id: str) -> Profile:
        stored = self.get(user_id)
        assert stored is not None, f"no profile {user_id}"
        return stored.profile


def _conforms(store: ProfileStore) -> ProfileStore:
    return store


def ev(
    name: str | None = "Viewed",
    minute: float = 0,
    *,
    user: str | None = "u1",
    anon: str | None = None,
    type: str = "track",
    mid: str | None = None,
    traits: dict[str, Any] | None = None,
    previous: str | None = None,
) -> Event:
    return Event(
        type=type,  # type: ignore[arg-type]
        message_id=mid or f"m-{next(_ids)}",
        user_id=user,
        anonymous_id=anon,
        event=name if type == "track" else None,
        traits=traits or {},
        timestamp=NOW - timedelta(hours=1) + timedelta(minutes=minute),
        received_at=NOW,
        previous_id=previous,
    )


def by_user(*events: Event) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(e.profile_id, []).append(e)
    return out


@pytest.fixture
def store() -> InMemoryProfileStore:
    return InMemoryProfileStore()


def test_the_fake_implements_the_port(store: InMemoryProfileStore) -> None:
    assert _conforms(store) is store


# ---- writes and duplicates ----------------------------------------------------------------------


def test_one_write_per_user_per_batch(store: InMemoryProfileStore) -> None:
    # given a batch with 5 events of u1 and 3 of u2
    batch = by_user(*[ev(minute=i) for i in range(5)], *[ev(minute=i, user="u2") for i in range(3)])
    # when
    out = process_users(store, batch, now=NOW)
    # then
    assert sorted(store.saved) == ["u1", "u2"]
    assert (out.fresh, out.duplicates, out.writes) == (8, 0, 2)
    assert store.profile("u1").event_counts == {"Viewed": 5}
    assert store.profile("u2").event_counts == {"Viewed": 3}


def test_a_batch_seen_before_writes_nothing(store: InMemoryProfileStore) -> None:
    batch = by_user(ev(minute=1), ev(minute=2), ev(minute=3, user="u2"))
    process_users(store, batch, now=NOW)
    writes_before = list(store.saved)
    # when the same batch is delivered again
    out = process_users(store, batch, now=NOW)
    # then
    assert store.saved == writes_before
    assert (out.fresh, out.duplicates, out.writes) == (0, 3, 0)
    assert store.profile("u1").event_counts == {"Viewed": 2}


def test_a_partly_seen_batch_counts_only_the_new_events(store: InMemoryProfileStore) -> None:
    old = ev(minute=1)
    process_users(store, by_user(old), now=NOW)
    out = process_users(store, by_user(old, ev(minute=2)), now=NOW)
    assert (out.fresh, out.duplicates, out.writes) == (1, 1, 1)
    assert store.profile("u1").event_counts == {"Viewed": 2}


def test_the_engine_sees_only_fresh_events_and_effects_go_to_the_user(
    store: InMemoryProfileStore,
) -> None:
    calls: list[tuple[str, list[str]]] = []
    applied: list[tuple[str, Any]] = []

    class Engine:
        def on_events(self, profile: Profile, events: list[Event], now: datetime) -> Any:
            calls.append((profile.user_id, [e.message_id for e in events]))
            return ["decision"]

        def on_timer(
            self, profile: Profile, trigger_id: str, key: str | None, now: datetime
        ) -> Any:
            raise AssertionError("not a timer")

    class Effects:
        def apply(self, user_id: str, decisions: Any) -> None:
            applied.append((user_id, decisions))

    a, b = ev(mid="a"), ev(mid="b")
    process_users(store, by_user(a), now=NOW, engine=Engine(), effects=Effects())
    process_users(store, by_user(a, b), now=NOW, engine=Engine(), effects=Effects())
    process_users(store, by_user(a, b), now=NOW, engine=Engine(), effects=Effects())
    assert calls == [("u1", ["a"]), ("u1", ["b"])]
    assert applied == [("u1", ["decision"]), ("u1", ["decision"])]


# ---- optimistic concurrency --------------------------------------------------------------------


def test_a_concurrent_update_is_reread_and_refolded(store: InMemoryProfileStore) -> None:
    # given u1 exists, and our batch has e1, e2
    process_users(store, by_user(ev("Signed Up", mid="s")), now=NOW)
    e1, e2, theirs = ev(mid="e1"), ev(mid="e2"), ev("Ordered", mid="x")
    raced = []

    def another_writer_commits_first(stored: StoredProfile) -> None:
        if raced:
            return
        raced.append(True)
        other = store.get("u1")
        assert other is not None
        other.profile.apply([e1, theirs])  # it got e1 too (a redelivery) and one of its own
        store._write(other)

    store.before_write = another_writer_commits_first
    # when
    out = process_users(store, by_user(e1, e2), now=NOW)
    # then our write was refused once, re-read, refolded without double counting
    assert out.failed_users == {}
    assert store.profile("u1").event_counts == {"Signed Up": 1, "Viewed": 2, "Ordered": 1}
    assert out.writes == 1
    assert (out.fresh, out.duplicates) == (1, 1)


def test_a_new_profile_racing_another_creator_is_refolded(store: InMemoryProfileStore) -> None:
    theirs = ev("Ordered", mid="x")

    def created_meanwhile(stored: StoredProfile) -> None:
        if "u1" not in store.rows:
            other = Profile("u1")
            other.apply([theirs])
            store._write(StoredProfile(other, None))

    store.before_write = created_meanwhile
    process_users(store, by_user(ev(mid="mine")), now=NOW)
    assert store.profile("u1").event_counts == {"Viewed": 1, "Ordered": 1}


def test_endless_conflicts_fail_only_that_user(store: InMemoryProfileStore) -> None:
    def always_stale(stored: StoredProfile) -> None:
        if stored.profile.user_id == "hot":
            current = store.rows.get("hot")
            store.rows["hot"] = (
                current[0] if current else json.dumps({"user_id": "hot"}),
                (current[1] if current else 0) + 1,
            )

    store.before_write = always_stale
    out = process_users(store, by_user(ev(user="hot"), ev(user="calm")), now=NOW)
    assert list(out.failed_users) == ["hot"]
    assert isinstance(out.failed_users["hot"], ConcurrentUpdateError)
    assert store.profile("calm").event_counts == {"Viewed": 1}
    assert store.saved.count("hot") == 0


def test_a_failing_user_does_not_stop_the_others(store: InMemoryProfileStore) -> None:
    def broken_for_u2(stored: StoredProfile) -> None:
        if stored.profile.user_id == "u2":
            raise RuntimeError("throttled")

    store.before_write = broken_for_u2
    out = process_users(store, by_user(ev(user="u1"), ev(user="u2"), ev(user="u3")), now=NOW)
    assert list(out.failed_users) == ["u2"]
    assert sorted(store.saved) == ["u1", "u3"]


def test_fold_user_gives_up_after_max_attempts(store: InMemoryProfileStore) -> None:
    attempts = []

    def stale(stored: StoredProfile) -> None:
        attempts.append(1)
        raise ConcurrentUpdateError("moved")

    store.before_write = stale
    with pytest.raises(ConcurrentUpdateError):
        fold_user(store, "u1", [ev()], now=NOW)
    assert len(attempts) == MAX_ATTEMPTS


# ---- identity ------------------------------------------------------------------------------------


def _browse_anonymously(store: InMemoryProfileStore, anon: str = "anon-1") -> None:
    process_users(
        store,
        by_user(
            ev("Product Viewed", 0, user=None, anon=anon, mid=f"{anon}-v"),
            ev("Product Added", 1, user=None, anon=anon, mid=f"{anon}-a"),
        ),
        now=NOW,
    )


def test_identify_with_both_ids_merges_the_anonymous_profile_and_leaves_a_pointer(
    store: InMemoryProfileStore,
) -> None:
    _browse_anonymously(store)
    # when the visitor logs in
    out = process_users(
        store,
        by_user(
            ev(
                type="identify",
                minute=5,
                anon="anon-1",
                traits={"email": "a@example.com"},
                mid="id",
            ),
        ),
        now=NOW,
    )
    # then
    user = store.profile("u1")
    assert user.event_counts == {"Product Viewed": 1, "Product Added": 1}
    assert user.traits == {"email": "a@example.com"}
    assert "anon-1" in user.anonymous_ids
    pointer = store.profile("anon-1")
    assert pointer.merged_into == "u1"
    assert pointer.event_counts == {}
    # in one transaction with the user
    assert store.transactions == [["u1", "anon-1"]]
    assert out.writes == 2


def test_later_anonymous_only_events_fold_into_the_user(store: InMemoryProfileStore) -> None:
    _browse_anonymously(store)
    process_users(store, by_user(ev(type="identify", minute=5, anon="anon-1")), now=NOW)
    # when an anonymous-only event arrives after the merge (late, or from a cached page)
    process_users(store, by_user(ev("Product Viewed", 6, user=None, anon="anon-1")), now=NOW)
    # then it lands on the user, and the pointer stays a pointer
    assert store.profile("u1").event_counts == {"Product Viewed": 2, "Product Added": 1}
    assert store.profile("anon-1").event_counts == {}


def test_a_redelivered_anonymous_event_after_the_merge_is_not_counted_again(
    store: InMemoryProfileStore,
) -> None:
    _browse_anonymously(store)
    process_users(store, by_user(ev(type="identify", minute=5, anon="anon-1")), now=NOW)
    process_users(
        store, by_user(ev("Product Viewed", 0, user=None, anon="anon-1", mid="anon-1-v")), now=NOW
    )
    assert store.profile("u1").event_counts == {"Product Viewed": 1, "Product Added": 1}


def test_identify_of_an_unseen_anonymous_id_routes_its_later_events_to_the_user(
    store: InMemoryProfileStore,
) -> None:
    process_users(store, by_user(ev(type="identify", anon="anon-9")), now=NOW)
    assert store.profile("anon-9").merged_into == "u1"
    process_users(store, by_user(ev("Viewed", 3, user=None, anon="anon-9")), now=NOW)
    assert store.profile("u1").event_counts == {"Viewed": 1}


def test_a_second_identify_does_not_merge_again(store: InMemoryProfileStore) -> None:
    _browse_anonymously(store)
    process_users(store, by_user(ev(type="identify", minute=5, anon="anon-1")), now=NOW)
    process_users(store, by_user(ev(type="identify", minute=6, anon="anon-1")), now=NOW)
    assert store.profile("u1").event_counts == {"Product Viewed": 1, "Product Added": 1}
    assert len(store.transactions) == 1


def test_alias_merges_the_previous_anonymous_id(store: InMemoryProfileStore) -> None:
    # (an identified previousId is refused: tests/unit/test_identity.py)
    process_users(store, by_user(ev("Signed Up", 0, user=None, anon="old-id", mid="o1")), now=NOW)
    process_users(
        store, by_user(ev(type="alias", minute=1, user="new-id", previous="old-id")), now=NOW
    )
    assert store.profile("new-id").event_counts == {"Signed Up": 1}
    assert store.profile("old-id").merged_into == "new-id"
    # later events under the old id follow
    process_users(store, by_user(ev("Signed Up", 2, user=None, anon="old-id")), now=NOW)
    assert store.profile("new-id").event_counts == {"Signed Up": 2}


@pytest.mark.parametrize("anonymous_first", [True, False])
def test_anonymous_events_and_the_identify_in_one_batch_fold_once(
    store: InMemoryProfileStore, anonymous_first: bool
) -> None:
    # given a batch holding the visitor's events and the login, in either user order
    anon_events = [
        ev("Product Viewed", 0, user=None, anon="anon-1"),
        ev("Product Added", 1, user=None, anon="anon-1"),
    ]
    login = ev(type="identify", minute=5, anon="anon-1")
    groups = {"anon-1": anon_events, "u1": [login]}
    batch = groups if anonymous_first else dict(reversed(list(groups.items())))
    # when
    out = process_users(store, batch, now=NOW)
    # then everything is on the user, exactly once
    assert out.failed_users == {}
    assert store.profile("u1").event_counts == {"Product Viewed": 1, "Product Added": 1}
    assert store.profile("anon-1").merged_into == "u1"


def test_merge_does_not_depend_on_whether_an_event_with_both_ids_came_before_the_identify(
    store: InMemoryProfileStore,
) -> None:
    # given an anonymous visitor, then (out of order) a track that carries both ids
    # folded before the identify that links them
    _browse_anonymously(store)
    process_users(store, by_user(ev("Checkout Started", 6, anon="anon-1")), now=NOW)
    process_users(store, by_user(ev(type="identify", minute=5, anon="anon-1")), now=NOW)
    # then the anonymous history is merged just as when the identify comes first
    assert store.profile("u1").event_counts == {
        "Product Viewed": 1,
        "Product Added": 1,
        "Checkout Started": 1,
    }
    assert store.profile("anon-1").merged_into == "u1"
