"""The archive rewritten without erased users (nudge.domain.purge): a day after the
erase, every object holding a line of theirs is written back without it, and nothing
else; a pass spans runs when it must; each id is purged once; the list stays."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nudge.domain.purge import (
    SETTLE,
    Listed,
    PurgeState,
    hour_key,
    line_of,
    purge_archive,
    without,
)

ERASED_AT = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def digest(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()


def line(mid: str, user: str | None, anon: str | None = None, **props: Any) -> bytes:
    row = {"message_id": mid, "user_id": user, "anonymous_id": anon, "properties": props}
    return (json.dumps(row) + "\n").encode()


class MemoryPurge:
    """The ArchivePurge port in memory: the list's entries, the objects, the state."""

    def __init__(self) -> None:
        self.entries: list[tuple[Listed, datetime]] = []
        self.objects: dict[str, bytes] = {}
        self.saved = PurgeState()
        self.reads: list[str] = []
        self.writes: list[str] = []

    def erase(self, user: str, at: datetime) -> None:
        self.entries.append((Listed(digest(user), at), at))

    def listed_since(self, after: datetime | None) -> list[Listed]:
        return [e for e, _ in self.entries if after is None or e.listed_at > after]

    def erased_at(self, entry: Listed) -> datetime:
        return next(at for e, at in self.entries if e == entry)

    def state(self) -> PurgeState:
        return PurgeState(self.saved.purged_through, self.saved.current)

    def save_state(self, state: PurgeState) -> None:
        self.saved = state

    def keys(self, after: str) -> Iterator[str]:
        yield from (k for k in sorted(self.objects) if k > after)

    def read(self, key: str) -> bytes:
        self.reads.append(key)
        return self.objects[key]

    def write(self, key: str, body: bytes) -> None:
        self.writes.append(key)
        self.objects[key] = body


def obj(at: datetime, n: int) -> str:
    return f"{hour_key(at)}nudge-archive-{n}"


@pytest.fixture
def archive() -> MemoryPurge:
    """Erin's events in two hours before her erase, Otto's beside them, and a later hour."""
    a = MemoryPurge()
    before, earlier = ERASED_AT - timedelta(minutes=20), ERASED_AT - timedelta(days=3)
    a.objects[obj(earlier, 1)] = line("e1", "anon-erin", "anon-erin") + line("o1", "otto")
    a.objects[obj(before, 2)] = (
        line("e2", "erin", "anon-erin")
        + b"not json\n"
        + line("v1", None, eventUserId="erin", violationType="type")
        + line("o2", "otto")
    )
    a.objects[obj(before, 3)] = line("o3", "otto")
    a.objects[obj(ERASED_AT + timedelta(hours=2), 4)] = line("o4", "otto")
    a.erase("erin", ERASED_AT)
    a.erase("anon-erin", ERASED_AT)
    return a


def never() -> bool:
    return False


def test_before_the_settle_time_nothing_is_touched(archive: MemoryPurge) -> None:
    out = purge_archive(archive, now=ERASED_AT + SETTLE - timedelta(minutes=1), out_of_time=never)
    assert (out.ids_purged, archive.reads, archive.writes) == (0, [], [])


def test_a_pass_rewrites_only_the_objects_with_their_lines_and_removes_only_those(
    archive: MemoryPurge,
) -> None:
    others = {k: v for k, v in archive.objects.items()}
    out = purge_archive(archive, now=ERASED_AT + SETTLE, out_of_time=never)
    assert out.ids_purged == 2 and out.lines_removed == 3 and out.objects_rewritten == 2
    text = b"".join(archive.objects.values()).decode()
    assert "erin" not in text  # not as user, anonymous id, nor a violation's eventUserId
    assert [json.loads(x)["message_id"] for x in text.splitlines() if x.startswith("{")] == [
        "o1",
        "o2",
        "o3",
        "o4",
    ]
    assert "not json" in text  # a line no reader sees as anyone's is kept
    # objects without their lines are not rewritten; an hour after the erase is not read
    assert archive.writes == sorted(archive.writes) and len(archive.writes) == 2
    later = obj(ERASED_AT + timedelta(hours=2), 4)
    assert later not in archive.reads and archive.objects[later] == others[later]
    # and the list is purged up to its last entry: the next run reads nothing
    assert archive.saved == PurgeState(purged_through=ERASED_AT, current=None)
    again = purge_archive(archive, now=ERASED_AT + 2 * SETTLE, out_of_time=never)
    assert again.ids_purged == 0 and again.objects_read == 0


def test_a_pass_stopped_at_its_budget_goes_on_in_the_next_run(archive: MemoryPurge) -> None:
    budget = iter([False, True])  # one object, then out of time
    first = purge_archive(archive, now=ERASED_AT + SETTLE, out_of_time=lambda: next(budget))
    assert first.pass_pending and first.objects_read == 1 and first.ids_purged == 0
    assert archive.saved.current is not None and archive.saved.current.after
    second = purge_archive(archive, now=ERASED_AT + SETTLE + timedelta(hours=1), out_of_time=never)
    assert second.ids_purged == 2 and not second.pass_pending
    assert len(archive.reads) == len(set(archive.reads)) == 3  # each object read once
    assert "erin" not in b"".join(archive.objects.values()).decode()


def test_an_id_erased_later_waits_for_its_own_pass(archive: MemoryPurge) -> None:
    later = ERASED_AT + timedelta(hours=5)
    archive.objects[obj(later - timedelta(minutes=5), 5)] = line("t1", "otto-2")
    archive.erase("otto-2", later)
    first = purge_archive(archive, now=ERASED_AT + SETTLE, out_of_time=never)
    assert first.ids_purged == 2 and "otto-2" in b"".join(archive.objects.values()).decode()
    second = purge_archive(archive, now=later + SETTLE, out_of_time=never)
    assert second.ids_purged == 1 and second.lines_removed == 1
    assert "otto-2" not in b"".join(archive.objects.values()).decode()


def test_lines_are_matched_by_digest_of_each_id_field() -> None:
    erased = frozenset({digest("erin")})
    assert line_of(line("a", "erin"), erased)
    assert line_of(line("a", None, "erin"), erased)
    assert line_of(line("a", None, eventAnonymousId="erin"), erased)
    assert not line_of(line("a", "otto", "otto"), erased)
    assert not line_of(b"[1, 2]\n", erased)
    body, removed = without(line("a", "otto") + line("b", "erin") + b"\n", erased)
    assert removed == 1 and body == line("a", "otto") + b"\n"
