"""Ports owned by the core: one Protocol per outside thing. Adapters in nudge.adapters
implement them against AWS; tests and the backtest pass in-memory ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from nudge.domain.events import Event
from nudge.domain.profile import Profile
from nudge.domain.query import QueryResult


class EventQueue(Protocol):
    def send(self, events: Sequence[Event]) -> None:
        """Durably queues every event (grouped by user) or raises QueueUnavailableError."""


@dataclass
class StoredProfile:
    profile: Profile
    version: int | None  # None: not stored yet


class ProfileStore(Protocol):
    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]: ...

    def get(self, user_id: str) -> StoredProfile | None: ...

    def save(self, stored: StoredProfile) -> None:
        """Conditional on the version read; raises ConcurrentUpdateError when it moved."""

    def save_all(self, stored: Sequence[StoredProfile]) -> None:
        """Saves several profiles in one transaction, each conditional on its version."""

    def delete(self, user_id: str) -> None: ...


MAX_MERGE_HOPS = 3  # pointers followed from an id to the profile it was merged into


def resolve_profile(store: ProfileStore, user_id: str) -> StoredProfile | None:
    """The profile that answers for `user_id` when reading: its own, or the one an alias
    or identify merged it into (the merged id is left as a pointer, `merged_into`),
    followed up to MAX_MERGE_HOPS pointers. None for an unknown user."""
    stored = store.get(user_id)
    hops = 0
    while stored is not None and stored.profile.merged_into and hops < MAX_MERGE_HOPS:
        stored = store.get(stored.profile.merged_into)
        hops += 1
    return stored


class ArchiveWriter(Protocol):
    """Where accepted events go for history (Firehose → S3 on AWS and in local mode)."""

    def write(self, lines: Iterable[bytes]) -> None:
        """Archives the lines (one JSON event each); raises when some could not be."""


class QueryEngine(Protocol):
    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        """Runs one SQL statement (DuckDB's dialect) over the view `events` of the event
        archive (columns: nudge.domain.archive), read-only. `since` / `until` keep the
        events received in that range and let the engine read only the archive's hours
        that can hold them. Raises QuerySyntaxError (the query is wrong, with the
        engine's message), QueryForbiddenError (files, extensions, settings),
        QueryTimeoutError, or QueryError (anything else, the archive unreadable)."""
        ...
