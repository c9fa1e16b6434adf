"""Ports owned by the core: one Protocol per outside thing. Adapters in nudge.adapters
implement them against AWS; tests and the backtest pass in-memory ones."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from nudge.domain.events import Event
from nudge.domain.inbox import InboxMessage
from nudge.domain.messages import ActionMessage, TimerItem, TimersMessage
from nudge.domain.profile import Profile
from nudge.domain.query import QueryResult

if TYPE_CHECKING:  # the triggers package imports this module (through processing)
    from nudge.domain.triggers.contract import Timer


class EventQueue(Protocol):
    def send(self, events: Sequence[Event]) -> None:
        """Durably queues every event (one EventsMessage per user, in the user's group)
        or raises DependencyUnavailableError."""


class TimersQueue(Protocol):
    """The events queue as the check function writes to it."""

    def send_timers(self, messages: Sequence[TimersMessage]) -> None:
        """Queues each message in its user's group (a retried bucket is dropped)."""


class DueTimers(Protocol):
    """The wake-up index as the check function reads it."""

    def due(self, bucket: str) -> list[tuple[str, TimerItem]]:
        """The (user, timer) pairs filed in a minute bucket (BUCKET_FORMAT)."""
        ...


class WakeUpIndex(Protocol):
    """The wake-up index as the process function files the engine's timers in it."""

    def arm_many(self, timers: Iterable[tuple[str, Timer]], *, now: datetime) -> int:
        """Files (user, timer) pairs in their minute buckets (nudge.domain.wakeups
        .file_timers); returns how many it filed again because their first write came
        too late for their bucket's sweep."""


class ActionQueue(Protocol):
    def send(self, actions: Sequence[ActionMessage]) -> None:
        """Queues the action messages (nudge.domain.messages.ActionMessage) for the
        deliver function, each in its user's group, idempotently by action id."""


class Inbox(Protocol):
    """The in-app inbox as the api reads it (the deliver function writes it, a Sender)."""

    def messages(self, user_id: str, limit: int = 100) -> list[InboxMessage]:
        """Newest first."""
        ...

    def mark_read(self, user_id: str, message_id: str) -> InboxMessage | None:
        """The message, now read; None when the user has no such message."""
        ...


class DeviceRegistry(Protocol):
    def register(self, user_id: str, platform: str, token: str) -> str:
        """A push endpoint for the token; its id (an SNS endpoint ARN)."""
        ...


class SigningKey(Protocol):
    def get(self) -> bytes:
        """The key that signs unsubscribe tokens."""
        ...


class SuppressionList(Protocol):
    def suppress(self, address: str, reason: str, *, at: datetime) -> None:
        """Never mails `address` again (SES bounce or complaint)."""


@dataclass
class StoredProfile:
    profile: Profile
    version: int | None  # None: not stored yet


class ProfileStore(Protocol):
    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]: ...

    def get(self, user_id: str) -> StoredProfile | None: ...

    def save(self, stored: StoredProfile) -> None:
        """Conditional on the version read; raises ConcurrentUpdateError when it moved.
        First the fingerprints the fold moved out of the profile (`profile.evicted`) go to
        the dedup store, under the profile's id (then `evicted` is cleared)."""

    def save_all(self, stored: Sequence[StoredProfile]) -> None:
        """Saves several profiles in one transaction, each conditional on its version
        (each profile's `evicted` first, as `save`)."""

    def spilled(self, user_ids: Sequence[str], fingerprints: Collection[str]) -> dict[str, int]:
        """Those of `fingerprints` the dedup store holds under any of `user_ids`, each
        with its received minute (docs/decisions.md D42). Read with strong consistency."""

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


class Recommender(Protocol):
    """A recommendation strategy (nudge.domain.recommend.recommender): an experiment's
    variant may name another (`personal`, `popular`)."""

    def recommend(
        self, profile: Profile, limit: int, exclude: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Up to `limit` items for the user, in the order to show: `{"item_id", "score",
        "reason", ...catalog attributes}`; bought and `exclude`d items never."""
        ...


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


class ModelStore(Protocol):
    """Where the train function keeps its artifacts (segments, catalog, items, the last
    run's summary) and the functions that use them read them: one JSON document per
    name. A reader may serve a copy up to its cache period old."""

    def load(self, name: str) -> dict[str, Any] | None:
        """The last document saved under `name`, None when there is none."""
        ...

    def save(self, name: str, doc: dict[str, Any]) -> None: ...


class ArchiveLines(Protocol):
    """The event archive as training reads it: its raw lines (duplicates included)."""

    def lines(self, *, since: datetime, until: datetime) -> Iterator[bytes]:
        """Every line of the objects that arrived in [since, until] (arrival hours)."""
        ...


@dataclass(frozen=True)
class ScoreChange:
    user_id: str
    segment: str | None
    rfm_score: str | None


class ProfileScores(Protocol):
    """The profiles as training reads them and writes its scores back."""

    def scan(self) -> Iterator[Profile]:
        """Every stored profile, with its current segment and RFM score."""
        ...

    def write_scores(self, changes: Sequence[ScoreChange]) -> int:
        """Sets each user's segment and RFM score, never their other state (a concurrent
        save keeps them; they never undo one). Returns how many were written: a profile
        erased since the scan is skipped, never created again."""
        ...
