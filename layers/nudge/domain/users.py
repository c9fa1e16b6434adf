"""Read and manage users (the api function's use cases)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nudge.domain.errors import NotFoundError
from nudge.domain.ports import ProfileStore


def profile_view(store: ProfileStore, user_id: str, *, now: datetime) -> dict[str, Any]:
    stored = store.get(user_id)
    hops = 0
    while stored is not None and stored.profile.merged_into and hops < 3:
        stored = store.get(stored.profile.merged_into)
        hops += 1
    if stored is None:
        raise NotFoundError(f"no user {user_id!r}")
    return stored.profile.view(now)
