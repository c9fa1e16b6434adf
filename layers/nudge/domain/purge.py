"""Erased users' events taken out of the archive's objects (docs/erase.md, "The archive";
docs/decisions.md D38).

Erase puts each id on the archive's erased list at once, and every query leaves its
events out from then on. This step, run by the train function on its schedule, then
rewrites every archive object that holds such an event without it:

1. An id is **ripe** SETTLE after its erase: by then nothing the user sent can still
   reach the archive (the process function drops their events at the tombstone, and
   Firehose holds what it was given for at most 24 hours of retries).
2. A **pass** takes the ripe ids listed since the last pass and reads the objects under
   `events/`, in key order, up to the arrival hour of the latest erase among them
   (Firehose files a record under the hour it took it in), writing back each one that
   held a line of theirs without those lines (`user_id`, `anonymous_id`, or the
   `eventUserId` / `eventAnonymousId` a tracking-plan violation names). A pass may span
   runs: it stops at its time budget and the next run goes on from the last key done.
   When it is done, the list's entries up to its last are purged (`purged_through`).

The ids stay on the list: what nudge itself may still archive about a user after their
erase (an email's open or click reported by SES days later, an action still queued) is
hidden by it, as everything was before the pass.

Pure: the archive and its list are the ArchivePurge port (nudge.adapters.erased).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from nudge.constants import ARCHIVE_PREFIX

SETTLE = timedelta(hours=25)  # an erase to the first pass that may take its id
VIOLATION_IDS = ("eventUserId", "eventAnonymousId")  # a tracking-plan violation's


@dataclass(frozen=True)
class Listed:
    """An entry of the erased list: the id's digest and when it was listed."""

    digest: str
    listed_at: datetime


@dataclass
class Pass:
    """A rewrite under way: the digests it takes out, the last key done ("" before the
    first), the last hour prefix it reads (`events/YYYY/MM/DD/HH/`), when the last of its
    entries was listed, when it started."""

    digests: list[str]
    through: str
    listed_through: datetime
    after: str = ""
    started_at: datetime | None = None


@dataclass
class PurgeState:
    """How far the list is purged (its entries listed up to then), and the pass under way."""

    purged_through: datetime | None = None
    current: Pass | None = None


def hour_key(at: datetime) -> str:
    """The arrival-hour prefix Firehose files a record taken in at `at` under."""
    return f"{ARCHIVE_PREFIX}{at.astimezone(UTC):%Y/%m/%d/%H}/"


class ArchivePurge(Protocol):
    def listed_since(self, after: datetime | None) -> list[Listed]:
        """The list's entries listed after `after` (all for None), oldest first."""
        ...

    def erased_at(self, entry: Listed) -> datetime:
        """When the entry's id was erased (as the erase recorded it)."""
        ...

    def state(self) -> PurgeState: ...

    def save_state(self, state: PurgeState) -> None: ...

    def keys(self, after: str) -> Iterator[str]:
        """The archive's object keys under `events/`, in order, after `after`."""
        ...

    def read(self, key: str) -> bytes:
        """The object's lines (decompressed)."""
        ...

    def write(self, key: str, body: bytes) -> None:
        """Replaces the object with these lines (compressed as the one it replaces)."""
        ...


def digest_of(value: Any) -> str | None:
    return hashlib.sha256(value.encode("utf-8")).hexdigest() if isinstance(value, str) else None


def line_of(line: bytes, digests: frozenset[str]) -> bool:
    """Whether an archive line is about one of the erased ids. A line that is not JSON
    is kept (no reader can see it as anyone's)."""
    try:
        row = json.loads(line)
    except ValueError:
        return False
    if not isinstance(row, dict):
        return False
    ids = [row.get("user_id"), row.get("anonymous_id")]
    props = row.get("properties")
    if isinstance(props, dict):
        ids += [props.get(k) for k in VIOLATION_IDS]
    return any(d in digests for d in map(digest_of, ids) if d is not None)


def without(body: bytes, digests: frozenset[str]) -> tuple[bytes, int]:
    """The object's lines without those of the erased ids, and how many went."""
    kept: list[bytes] = []
    removed = 0
    for raw in body.splitlines(keepends=True):
        if raw.strip() and line_of(raw, digests):
            removed += 1
        else:
            kept.append(raw)
    return b"".join(kept), removed


@dataclass
class PurgeSummary:
    ids_purged: int = 0
    objects_read: int = 0
    objects_rewritten: int = 0
    lines_removed: int = 0
    pass_pending: bool = False  # stopped at the budget: the next run goes on

    def view(self) -> dict[str, Any]:
        return {
            "ids_purged": self.ids_purged,
            "objects_read": self.objects_read,
            "objects_rewritten": self.objects_rewritten,
            "lines_removed": self.lines_removed,
            "pass_pending": self.pass_pending,
        }


def next_pass(store: ArchivePurge, state: PurgeState, now: datetime) -> Pass | None:
    """A pass over the ids listed since the last one and ripe now, oldest first (stopping
    at the first not ripe: the list is in the order of the erases)."""
    ripe: list[tuple[Listed, datetime]] = []
    for entry in store.listed_since(state.purged_through):
        erased_at = store.erased_at(entry)
        if erased_at + SETTLE > now:
            break
        ripe.append((entry, erased_at))
    if not ripe:
        return None
    # the later of the erase's own time and the list's (S3's clock; local mode's Firehose
    # names hours by the machine's, whatever its settable clock says)
    last = max(max(at, e.listed_at) for e, at in ripe)
    return Pass(
        digests=sorted({e.digest for e, _ in ripe}),
        through=hour_key(last),
        listed_through=max(e.listed_at for e, _ in ripe),
        started_at=now,
    )


def purge_archive(
    store: ArchivePurge, *, now: datetime, out_of_time: Callable[[], bool]
) -> PurgeSummary:
    """One run's share of the work: the pass under way (or a new one, if ids are ripe)
    taken on until it is done or `out_of_time()` says to stop."""
    summary = PurgeSummary()
    state = store.state()
    current = state.current or next_pass(store, state, now)
    if current is None:
        return summary
    state.current = current
    digests = frozenset(current.digests)
    for key in store.keys(current.after):
        if key[: len(current.through)] > current.through:
            break  # past the last hour that can hold their events
        if out_of_time():
            store.save_state(state)
            summary.pass_pending = True
            return summary
        body = store.read(key)
        summary.objects_read += 1
        kept, removed = without(body, digests)
        if removed:
            store.write(key, kept)
            summary.objects_rewritten += 1
            summary.lines_removed += removed
        current.after = key
    store.save_state(PurgeState(purged_through=current.listed_through, current=None))
    summary.ids_purged = len(current.digests)
    return summary
