"""Erase in the domain (nudge.domain.erase) on in-memory stores: what goes from each
store, the tombstones that keep events in flight from bringing the user back, the retry
when an event folds in between, and the timers found from the trigger state."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pytest
from nudge.domain.erase import EraseStores, _armed, erase_user, tombstone
from nudge.domain.errors import ConcurrentUpdateError, NotFoundError
from nudge.domain.events import normalize_event
from nudge.domain.ports import StoredProfile
from nudge.domain.processing import process_users
from nudge.domain.profile import Profile

from tests.fakes import (
    NOW,
    MemoryArchive,
    MemoryDeadLetterLog,
    MemoryDeliveryLog,
    MemoryInbox,
    MemoryProfileStore,
    a_dead_letter,
    a_profile,
)


class RecordingTimers:
    def __init__(self) -> None:
        self.disarmed: list[tuple[str, str | None, int]] = []

    def disarm(self, user_id: str, timers: Iterable[tuple[str, str | None, int]]) -> int:
        self.disarmed += list(timers)
        return len(self.disarmed)


class RecordingDevices:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, endpoint_arn: str) -> None:
        self.deleted.append(endpoint_arn)


class RecordingSuppressions:
    def __init__(self, addresses: Iterable[str]) -> None:
        self.plain = {a.lower() for a in addresses}
        self.hashed: set[str] = set()

    def anonymize(self, address: str) -> bool:
        if address.lower() not in self.plain:
            return False
        self.plain.discard(address.lower())
        self.hashed.add(f"h({address.lower()})")
        return True

    def is_suppressed(self, address: str) -> bool:
        return address.lower() in self.plain or f"h({address.lower()})" in self.hashed


class RecordingErased:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def add(self, ids: Iterable[str], *, at: datetime) -> None:
        self.ids += list(ids)


def _stores() -> tuple[EraseStores, MemoryProfileStore]:
    erin = a_profile("erin", email="Erin@Example.com", devices=("arn:endpoint/1",))
    erin.anonymous_ids = ["anon-1"]
    pointer = Profile(user_id="anon-1", merged_into="erin")
    other = a_profile("other")
    profiles = MemoryProfileStore([erin, pointer, other])
    inbox, log = MemoryInbox(), MemoryDeliveryLog()
    stores = EraseStores(
        profiles=profiles,
        inbox=inbox,
        log=log,
        timers=RecordingTimers(),
        devices=RecordingDevices(),
        suppressions=RecordingSuppressions(["erin@example.com", "someone@else.com"]),
        archive=RecordingErased(),
    )
    return stores, profiles


def test_erase_tombstones_the_user_and_the_ids_merged_into_them_and_clears_each_store() -> None:
    stores, profiles = _stores()
    from nudge.domain.delivery import DeliveryEntry

    stores.log.record(  # type: ignore[attr-defined]
        DeliveryEntry(
            user_id="erin",
            action_id="a1",
            trigger_id="t",
            channel="email",
            status="sent",
            reason="",
            at=NOW,
        ),
        expect=frozenset({None}),
    )
    report = erase_user(stores, "anon-1", now=NOW)  # by an id merged into her
    assert report.user_id == "erin" and set(report.ids) == {"erin", "anon-1"}
    assert report.deliveries == 1 and report.devices == 1 and report.suppressions == 1
    for uid in ("erin", "anon-1"):
        p = profiles.profile(uid)
        assert p.erased and p.traits == {} and p.cart == {} and p.merged_into is None
    assert stores.devices.deleted == ["arn:endpoint/1"]  # type: ignore[union-attr]
    assert stores.suppressions.plain == {"someone@else.com"}  # type: ignore[union-attr]
    assert set(stores.archive.ids) == {"erin", "anon-1"}  # type: ignore[union-attr]
    assert not profiles.profile("other").erased
    with pytest.raises(NotFoundError):
        erase_user(stores, "erin", now=NOW)  # already erased
    with pytest.raises(NotFoundError):
        erase_user(stores, "nobody", now=NOW)


def test_an_event_in_flight_after_the_erase_changes_nothing_and_is_not_archived() -> None:
    profiles = MemoryProfileStore([tombstone("erin", NOW)])
    archive = MemoryArchive()
    ev = normalize_event(
        {
            "type": "identify",
            "userId": "erin",
            "traits": {"email": "erin@example.com"},
            "messageId": "late",
        },
        kind=None,
        received_at=NOW,
    )
    result = process_users(profiles, {"erin": [ev]}, now=NOW, archive=archive)
    assert result.fresh == 0 and result.writes == 0 and archive.lines == []
    assert profiles.profile("erin").traits == {}


def test_an_event_folded_between_read_and_tombstone_is_erased_on_the_retry() -> None:
    stores, profiles = _stores()
    real_save_all = profiles.save_all
    calls = {"n": 0}

    def racing(stored: list[StoredProfile]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the process function wrote first
            raise ConcurrentUpdateError("erin changed")
        real_save_all(stored)

    profiles.save_all = racing  # type: ignore[method-assign]
    report = erase_user(stores, "erin", now=NOW)
    assert calls["n"] == 2 and report.profiles == 2 and profiles.profile("erin").erased


def test_the_timers_to_disarm_come_from_every_deadline_the_state_records() -> None:
    p = Profile(user_id="erin")
    p.triggers = {
        "cart_abandonment": {"armed_until": 5_000, "k": {"": {"d": 5_000}}},
        "dwell": {"k": {"p1": {"due": 9_000}}},
    }
    found = set(_armed(p))
    assert ("cart_abandonment", None, 5_000) in found
    assert ("cart_abandonment", None, 6_000) in found  # filed a moment after the deadline
    assert ("dwell", "p1", 9_000) in found


def test_a_tombstone_expires_with_the_profile_row_and_keeps_no_data() -> None:
    t = tombstone("erin", NOW)
    assert t.erased and t.to_dict()["extra"] == {Profile.ERASED: int(NOW.timestamp() * 1000)}


def test_erase_deletes_the_dead_letter_entries_of_the_users_messages_only() -> None:
    stores, _ = _stores()
    letters = MemoryDeadLetterLog()
    stores.dead_letters = letters

    letters.record(
        [
            a_dead_letter("erin", "m1"),
            a_dead_letter("anon-1", "m2", queue="actions"),
            a_dead_letter("other", "m3"),
        ]
    )
    report = erase_user(stores, "erin", now=NOW)

    assert report.dead_letters == 2
    assert report.view(NOW)["erased"]["dead_letter_entries"] == 2
    assert [e.message_id for e in letters.entries] == ["m3"]
