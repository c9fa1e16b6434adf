"""process_users applies a batch's effects in one go (effects that take `apply_all`),
before any write, and a user whose write meets a concurrent update is folded again on its
own (its effects applied again: they are idempotent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nudge.domain.events import Event
from nudge.domain.ports import StoredProfile
from nudge.domain.processing import process_users
from nudge.domain.profile import Profile

from tests.unit.test_processing import NOW, InMemoryProfileStore, by_user, ev


class Engine:
    def on_events(self, profile: Profile, events: list[Event], now: datetime) -> Any:
        return [profile.user_id]  # truthy: some decisions

    def on_timer(self, profile: Profile, trigger_id: str, key: str | None, now: datetime) -> Any:
        raise AssertionError("not a timer")


class BatchEffects:
    def __init__(self, store: InMemoryProfileStore) -> None:
        self.store = store
        self.saved_before = len(store.saved)
        self.calls: list[list[str]] = []
        self.single: list[str] = []

    def apply_all(self, items: list[tuple[str, Any]]) -> None:
        assert len(self.store.saved) == self.saved_before, "effects come before the writes"
        self.calls.append([user for user, _ in items])

    def apply(self, user_id: str, decisions: Any) -> None:
        self.single.append(user_id)


def test_a_batchs_effects_are_applied_once_before_the_writes() -> None:
    store = InMemoryProfileStore()
    effects = BatchEffects(store)
    out = process_users(
        store,
        by_user(ev(user="u1"), ev(user="u2"), ev(user="u3")),
        now=NOW,
        engine=Engine(),
        effects=effects,
    )
    assert out.failed_users == {}
    assert effects.calls == [["u1", "u2", "u3"]] and effects.single == []
    assert sorted(store.saved) == ["u1", "u2", "u3"]


def test_a_user_meeting_a_concurrent_update_is_folded_again_alone() -> None:
    store = InMemoryProfileStore()
    process_users(store, by_user(ev("Signed Up", user="u2", mid="s")), now=NOW)
    effects = BatchEffects(store)
    raced: list[bool] = []

    def another_writer(stored: StoredProfile) -> None:
        if stored.profile.user_id == "u2" and not raced:
            raced.append(True)
            other = store.get("u2")
            assert other is not None
            store._write(other)

    store.before_write = another_writer
    out = process_users(
        store,
        by_user(ev(user="u1"), ev(user="u2", mid="e")),
        now=NOW,
        engine=Engine(),
        effects=effects,
    )
    assert out.failed_users == {}
    assert effects.calls == [["u1", "u2"]] and effects.single == ["u2"]
    assert store.profile("u2").event_counts == {"Signed Up": 1, "Viewed": 1}


def test_failing_effects_fail_the_batch_and_write_nothing() -> None:
    store = InMemoryProfileStore()

    class Down(BatchEffects):
        def apply_all(self, items: list[tuple[str, Any]]) -> None:
            raise RuntimeError("queue unavailable")

    out = process_users(
        store,
        by_user(ev(user="u1"), ev(user="u2")),
        now=NOW,
        engine=Engine(),
        effects=Down(store),
    )
    assert sorted(out.failed_users) == ["u1", "u2"]
    assert store.saved == []
