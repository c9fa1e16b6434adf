"""An erased user's experiment assignments kept as anonymous aggregates (nudge.domain.
assignments): the report over the archive without the user, plus their archived share,
is the report with them — users, conversions, rates, tests — and the share names no one."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nudge.domain.archive import ArchiveRecord
from nudge.domain.assignments import AnonymousAssignments
from nudge.domain.erase import EraseStores, erase_user
from nudge.domain.events import Event
from nudge.domain.experiment_report import experiment_report
from nudge.domain.processing import process_users
from nudge.domain.triggers.loader import load_triggers
from nudge.domain.triggers.model import Experiment

from tests.fakes import (
    NOW,
    DuckArchive,
    MemoryArchive,
    MemoryDeliveryLog,
    MemoryInbox,
    MemoryProfileStore,
)

ROOT = Path(__file__).resolve().parents[2]


def shipped_experiment() -> Experiment:
    exp = load_triggers(ROOT / "triggers").experiment("cart_abandonment_holdout")
    assert exp is not None
    return exp


def line(mid: str, user: str, name: str, minutes: float, **props: Any) -> bytes:
    at = NOW - timedelta(days=3) + timedelta(minutes=minutes)
    ev = Event(
        type="track",
        message_id=mid,
        user_id=user,
        event=name,
        properties=props,
        timestamp=at,
        received_at=at,
    )
    return ArchiveRecord.of(ev, user).line()


def history() -> list[bytes]:
    """Twelve shoppers exposed over two days, some converting (with revenue), some with
    activity before their exposure (CUPED's covariate); `erin` exposed twice, converting."""
    out: list[bytes] = []
    for i in range(12):
        user = "erin" if i == 0 else f"u{i}"
        variant = "holdout" if i % 4 == 0 else "reminder"
        start = i * 200.0
        out.append(line(f"pre{i}", user, "Product Viewed", start - 60, product_id="p"))
        for k in (0, 30):
            out.append(
                line(
                    f"x{i}-{k}",
                    user,
                    "Experiment Viewed",
                    start + k,
                    experiment_id="cart_abandonment_holdout",
                    experiment_name="cart_abandonment_holdout",
                    variation_id=variant,
                    variation_name=variant,
                )
            )
        if i % 3 == 0:
            out.append(line(f"o{i}", user, "Order Completed", start + 90, revenue=10.0 + i))
    return out


def report(lines: list[bytes]) -> dict[str, Any]:
    return experiment_report(shipped_experiment(), DuckArchive(lines))


def without(lines: list[bytes], user: str) -> list[bytes]:
    return [x for x in lines if json.loads(x)["user_id"] != user]


def test_the_report_without_the_user_plus_their_anonymous_share_is_the_report_with_them() -> None:
    lines = history()
    before = report(lines)
    written = MemoryArchive()
    kept = AnonymousAssignments([shipped_experiment()], DuckArchive(lines), written)
    # when erin's share is read, erin leaves the archive, and the share is archived
    shares = kept.shares(["erin", "anon-erin"])
    assert len(shares) == 1 and shares[0]["users"] == 1 and shares[0]["conversions"] == 1
    assert kept.keep(shares, at=NOW) == 1
    after = report(without(lines, "erin") + written.lines)
    # then the report is the same, number for number
    assert after == before
    assert report(without(lines, "erin")) != before  # (without the share it is not)
    # and the archived share names no one
    (aggregate,) = written.events()
    assert aggregate["user_id"] is None and aggregate["anonymous_id"] is None
    assert "erin" not in json.dumps(aggregate)
    assert aggregate["event"] == "Experiment Aggregate"


def test_a_user_never_exposed_has_no_share_and_no_experiment_is_queried() -> None:
    engine = DuckArchive(history())
    kept = AnonymousAssignments([shipped_experiment()], engine, MemoryArchive())
    assert kept.shares(["nobody"]) == []
    assert len(engine.sql) == 1  # the exposures only


class RecordingAssignments:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def shares(self, ids: Any) -> list[dict[str, Any]]:
        self.calls.append(f"shares {sorted(ids)}")
        return [{"experiment_id": "e", "variation_id": "v", "day": "2026-03-01", "users": 1}]

    def keep(self, shares: Any, *, at: Any) -> int:
        self.calls.append("keep")
        if self.fail:
            raise RuntimeError("Firehose down")
        return len(shares)


def _erasable() -> EraseStores:
    profiles = MemoryProfileStore()
    user = [
        Event(
            type="track",
            message_id="m1",
            user_id="erin",
            event="Product Viewed",
            timestamp=NOW,
            received_at=NOW,
        )
    ]
    process_users(profiles, {"erin": user}, now=NOW)
    return EraseStores(profiles=profiles, inbox=MemoryInbox(), log=MemoryDeliveryLog())


@pytest.mark.parametrize("fail", [False, True])
def test_erase_reads_the_shares_first_and_archives_them_once_erased(fail: bool) -> None:
    stores = _erasable()
    recorder = RecordingAssignments(fail=fail)
    stores.assignments = recorder
    report_ = erase_user(stores, "erin", now=NOW)
    assert recorder.calls == ["shares ['erin']", "keep"]
    # archived after the tombstones; a failure to archive them does not undo the erase
    assert report_.view(NOW)["erased"]["experiment_shares_anonymized"] == (0 if fail else 1)
    profile = stores.profiles.get("erin")
    assert profile is not None and profile.profile.erased
