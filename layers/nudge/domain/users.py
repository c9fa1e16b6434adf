"""Read and manage users (the api function's use cases)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nudge.domain.errors import ConcurrentUpdateError, NotFoundError
from nudge.domain.events import MAX_ID_LENGTH
from nudge.domain.ports import ProfileStore, resolve_profile
from nudge.domain.profile import Profile


def profile_view(store: ProfileStore, user_id: str, *, now: datetime) -> dict[str, Any]:
    return profile_of(store, user_id).view(now)


def profile_of(store: ProfileStore, user_id: str) -> Profile:
    """The profile that answers for `user_id` (through merges); NotFoundError if none."""
    if len(user_id) > MAX_ID_LENGTH:
        # never stored (ingest refuses longer ids), and DynamoDB would refuse the key
        raise NotFoundError(f"no user with an id of {len(user_id)} characters")
    stored = resolve_profile(store, user_id)
    if stored is None or stored.profile.erased:
        raise NotFoundError(f"no user {user_id!r}")
    return stored.profile


MAX_DEVICES = 5


def update_profile(store: ProfileStore, user_id: str, change: Callable[[Profile], bool]) -> Profile:
    """Read-modify-write with optimistic concurrency (the process function writes the same
    item): `change` returns False when there is nothing to write."""
    for attempt in range(4):
        stored = resolve_profile(store, user_id)
        if stored is None:
            raise NotFoundError(f"no user {user_id!r}")
        if not change(stored.profile):
            return stored.profile
        try:
            store.save(stored)
            return stored.profile
        except ConcurrentUpdateError:
            if attempt == 3:
                raise
    raise AssertionError("unreachable")


def opt_out(store: ProfileStore, user_id: str, channel: str) -> Profile:
    def change(p: Profile) -> bool:
        current = list(p.extra.get("opt_out") or [])
        if channel in current:
            return False
        p.extra["opt_out"] = sorted({*current, channel})
        return True

    return update_profile(store, user_id, change)


def add_device(store: ProfileStore, user_id: str, device: dict[str, Any]) -> Profile:
    def change(p: Profile) -> bool:
        devices = [d for d in p.extra.get("devices") or [] if d.get("token") != device["token"]]
        p.extra["devices"] = ([*devices, device])[-MAX_DEVICES:]
        return True

    return update_profile(store, user_id, change)


def remove_device(store: ProfileStore, user_id: str, endpoint_arn: str) -> Profile:
    def change(p: Profile) -> bool:
        devices = list(p.extra.get("devices") or [])
        kept = [d for d in devices if d.get("endpoint_arn") != endpoint_arn]
        p.extra["devices"] = kept
        return len(kept) != len(devices)

    return update_profile(store, user_id, change)
