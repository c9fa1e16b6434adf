"""Erasing a user (`DELETE /v1/users/{userId}`, GDPR's right to erasure): every store that
holds something of theirs is cleared, and the profile becomes a tombstone for
`TOMBSTONE_DAYS`, so that an event still in flight (a queue, a retry, a dead-letter
redrive, a wake-up) does not bring the user back.

What goes, per store (docs/erase.md):
- the profile and every profile merged into it or pointing at it (tombstones);
- the in-app inbox and the delivery log (address, subject and body with it);
- the wake-up index entries of the user's armed timers;
- the push devices (their SNS endpoints);
- the suppression list's entries of the user's email and phone: replaced by a keyed
  hash, so the address stays suppressed without being kept;
- the dedup store's fingerprints of each id (a heavy user's messageIds, digested);
- the dead-letter entries of the user's messages (their start is kept for the report);
- experiment assignments: the user's share of each experiment's report is archived
  again as an anonymous aggregate (nudge.domain.assignments), so the report keeps it;
- the archived events: their ids are listed as erased and every query of the archive
  leaves them out from then on.

Pure: the stores are ports (nudge.domain.ports, nudge.domain.delivery)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from nudge.domain.archive import iso_ms
from nudge.domain.clock import to_ms
from nudge.domain.errors import ConcurrentUpdateError, NotFoundError
from nudge.domain.ports import ProfileStore, StoredProfile
from nudge.domain.profile import Profile
from nudge.domain.triggers.contract import NONE_KEY

log = logging.getLogger("nudge.erase")  # a child of the functions' Powertools logger
TOMBSTONE_DAYS = 14  # the events queue's dead-letter retention: nothing older can return
MAX_ATTEMPTS = 3


class UserRows(Protocol):
    """A store with rows per user (the inbox, the delivery log)."""

    def erase_user(self, user_id: str) -> int:
        """Deletes every row of the user; how many."""
        ...


class DeadLetterEntries(Protocol):
    """The dead-letter report's entries (nudge.domain.dead_letters.DeadLetterLog)."""

    def erase_users(self, user_ids: Sequence[str]) -> int:
        """Deletes the entries of the messages of any of these ids; how many."""
        ...


class Devices(Protocol):
    def delete(self, endpoint_arn: str) -> None: ...


class Timers(Protocol):
    def disarm(self, user_id: str, timers: Iterable[tuple[str, str | None, int]]) -> int:
        """Deletes the wake-up index entries of (trigger, key, due ms); how many."""
        ...


class Suppressions(Protocol):
    def anonymize(self, address: str) -> bool:
        """Keeps the address suppressed under a keyed hash only; whether it was there."""
        ...

    def is_suppressed(self, address: str) -> bool:
        """Whether the address (plain or as its keyed hash) is suppressed (the export)."""
        ...


class Assignments(Protocol):
    """The user's experiment assignments (nudge.domain.assignments.AnonymousAssignments)."""

    def shares(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The ids' share of each experiment's report, read before they are erased."""
        ...

    def keep(self, shares: Sequence[dict[str, Any]], *, at: datetime) -> int:
        """Archives the shares with no id at all; how many."""
        ...


class ErasedIds(Protocol):
    def add(self, ids: Iterable[str], *, at: datetime) -> None:
        """Lists ids whose archived events every query leaves out."""
        ...


@dataclass
class EraseStores:
    profiles: ProfileStore
    inbox: UserRows
    log: UserRows
    timers: Timers | None = None
    devices: Devices | None = None
    suppressions: Suppressions | None = None
    archive: ErasedIds | None = None
    dedup: UserRows | None = None  # the fingerprints heavy users' profiles moved out
    assignments: Assignments | None = None
    dead_letters: DeadLetterEntries | None = None


@dataclass
class EraseReport:
    user_id: str
    ids: list[str] = field(default_factory=list)
    profiles: int = 0
    inbox: int = 0
    deliveries: int = 0
    timers: int = 0
    devices: int = 0
    suppressions: int = 0
    fingerprints: int = 0
    assignments: int = 0
    dead_letters: int = 0
    archive: str = "none"

    def view(self, until: datetime) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "erased": {
                "ids": self.ids,
                "profiles": self.profiles,
                "inbox_messages": self.inbox,
                "deliveries": self.deliveries,
                "timers": self.timers,
                "devices": self.devices,
                "suppressions_hashed": self.suppressions,
                "dedup_fingerprints": self.fingerprints,
                "experiment_shares_anonymized": self.assignments,
                "dead_letter_entries": self.dead_letters,
                "archive": self.archive,
            },
            "tombstone_until": iso_ms(until),
        }


def tombstone(user_id: str, now: datetime) -> Profile:
    """The profile that stands in for an erased user: nothing of theirs but the id."""
    profile = Profile(user_id=user_id)
    profile.extra[Profile.ERASED] = to_ms(now)
    return profile


def _ids_of(requested: str, profile: Profile, store: ProfileStore) -> list[str]:
    ids = [profile.user_id, requested, *profile.anonymous_ids, *profile.unmerged_ids]
    return list(dict.fromkeys(i for i in ids if i))


def _armed(profile: Profile) -> list[tuple[str, str | None, int]]:
    """(trigger, key, due ms) of the timers the engine may have filed for the profile:
    each key's recorded `due`, and its deadline `d` (the timer is filed a moment after
    it), and the trigger's `armed_until`."""
    out: set[tuple[str, str | None, int]] = set()
    for trigger_id, state in profile.triggers.items():
        if not isinstance(state, dict):
            continue
        keys = state.get("k")
        for key, entry in keys.items() if isinstance(keys, dict) else ():
            if not isinstance(entry, dict):
                continue
            name = None if key == NONE_KEY else str(key)
            for at in (entry.get("due"), entry.get("d")):
                if isinstance(at, int):
                    out.update({(trigger_id, name, at), (trigger_id, name, at + 1000)})
        until = state.get("armed_until")
        if isinstance(until, int):
            out.update({(trigger_id, None, until), (trigger_id, None, until + 1000)})
    return sorted(out, key=lambda t: (t[0], t[1] or "", t[2]))


def erase_user(stores: EraseStores, user_id: str, *, now: datetime) -> EraseReport:
    """Erases the user named `user_id` (or the profile it was merged into). 404 for a
    user nudge does not know, or one already erased."""
    for attempt in range(MAX_ATTEMPTS):
        stored = stores.profiles.get(user_id)
        hops = 0
        while stored is not None and stored.profile.merged_into and hops < 8:
            stored = stores.profiles.get(stored.profile.merged_into)
            hops += 1
        if stored is None or stored.profile.erased:
            raise NotFoundError(f"no user {user_id!r}")
        profile = stored.profile
        ids = _ids_of(user_id, profile, stores.profiles)
        others = stores.profiles.get_many([i for i in ids if i != profile.user_id])
        report = EraseReport(user_id=profile.user_id, ids=ids)
        # read while the archive still shows the user's events (kept once they are erased)
        shares = stores.assignments.shares(ids) if stores.assignments is not None else []
        # the stores first, the tombstones last: a retry after a failure finds the
        # profile still there and erases what is left
        for uid in ids:
            report.inbox += stores.inbox.erase_user(uid)
            report.deliveries += stores.log.erase_user(uid)
            if stores.dedup is not None:
                report.fingerprints += stores.dedup.erase_user(uid)
        if stores.dead_letters is not None:  # one pass for all the ids
            report.dead_letters = stores.dead_letters.erase_users(ids)
        if stores.timers is not None:
            report.timers = stores.timers.disarm(profile.user_id, _armed(profile))
        if stores.devices is not None:
            for device in profile.extra.get("devices") or []:
                arn = device.get("endpoint_arn") if isinstance(device, dict) else None
                if arn:
                    stores.devices.delete(str(arn))
                    report.devices += 1
        if stores.suppressions is not None:
            for trait in ("email", "phone"):
                value = profile.traits.get(trait)
                if isinstance(value, str) and value.strip():
                    report.suppressions += int(stores.suppressions.anonymize(value))
        if stores.archive is not None:
            stores.archive.add(ids, at=now)
            report.archive = "hidden from every query"
        stones = [StoredProfile(tombstone(profile.user_id, now), stored.version)]
        for uid in ids:
            if uid != profile.user_id:
                version = others[uid].version if uid in others else None
                stones.append(StoredProfile(tombstone(uid, now), version))
        try:
            stores.profiles.save_all(stones)
        except ConcurrentUpdateError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            continue  # an event folded meanwhile: erase again what it brought
        report.profiles = len(stones)
        report.assignments = _keep_shares(stores, shares, now)
        return report
    raise AssertionError("unreachable")


def _keep_shares(stores: EraseStores, shares: Sequence[dict[str, Any]], now: datetime) -> int:
    """The anonymous shares, archived once the user is erased (not before: a retry of a
    failed erase would archive them twice). The erase is done by then, so a failure to
    archive them is logged, not raised: a retry would find no user (404) and the shares
    would be lost all the same."""
    if stores.assignments is None or not shares:
        return 0
    try:
        return stores.assignments.keep(shares, at=now)
    except Exception as err:  # the erase stands; the experiment loses this user's share
        log.warning("experiment shares not archived", extra={"error": repr(err)})
        return 0


def tombstone_until(now: datetime) -> datetime:
    return now + timedelta(days=TOMBSTONE_DAYS)
