"""A user's data as one JSON document (GDPR access, nudge.domain.export): every store's
share of the user and of the ids merged into it, the archived events a page at a time,
nothing of another user; unknown and erased users are 404s."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from nudge.domain import export as export_module
from nudge.domain.archive import ArchiveRecord
from nudge.domain.delivery import DeliveryEntry
from nudge.domain.erase import tombstone
from nudge.domain.errors import NotFoundError, ValidationFailedError
from nudge.domain.events import Event
from nudge.domain.export import ExportStores, export_user
from nudge.domain.inbox import InboxMessage
from nudge.domain.processing import process_users

from tests.fakes import (
    NOW,
    DuckArchive,
    MemoryDeliveryLog,
    MemoryInbox,
    MemoryProfileStore,
    MemorySuppressions,
)


def event(
    mid: str,
    minute: int,
    *,
    user: str | None,
    anon: str | None = None,
    name: str = "Product Viewed",
    traits: dict[str, Any] | None = None,
) -> Event:
    at = NOW - timedelta(hours=2) + timedelta(minutes=minute)
    return Event(
        type="track",
        message_id=mid,
        user_id=user,
        anonymous_id=anon,
        event=name,
        properties={"product_id": "p1"},
        traits=traits or {},
        timestamp=at,
        received_at=at,
    )


@pytest.fixture
def shop() -> tuple[ExportStores, DuckArchive]:
    """Erin browsed as anon-1, then logged in (merged); Otto is someone else."""
    profiles = MemoryProfileStore()
    erin_anon = [event(f"a{i}", i, user=None, anon="anon-1") for i in range(3)]
    erin = [
        event("login", 10, user="erin", anon="anon-1", traits={"email": "erin@example.com"}),
        *(event(f"e{i}", 11 + i, user="erin") for i in range(4)),
    ]
    otto = [event(f"o{i}", i, user="otto") for i in range(2)]
    process_users(profiles, {"anon-1": erin_anon, "otto": otto}, now=NOW)
    process_users(profiles, {"erin": erin}, now=NOW)
    p = profiles.profile("erin")
    stored = profiles.get("erin")
    assert stored is not None
    p.extra["devices"] = [{"platform": "fcm", "token": "tok-1", "endpoint_arn": "arn:e1"}]
    profiles.save(type(stored)(p, stored.version))
    lines = [ArchiveRecord.of(e, "anon-1").line() for e in erin_anon]
    lines += [ArchiveRecord.of(e, "erin").line() for e in erin]
    lines += [ArchiveRecord.of(e, "otto").line() for e in otto]
    inbox, log = MemoryInbox(), MemoryDeliveryLog()
    inbox.rows["erin"] = {
        "m1": InboxMessage("m1", "t", "Hello", "Body", None, None, NOW, False, action_id="a1")
    }
    inbox.rows["otto"] = {"m2": InboxMessage("m2", "t", "Otto's", "x", None, None, NOW, False)}
    sent = DeliveryEntry(
        "erin", "a1", "cart_abandonment", "email", "sent", "", NOW,
        to="erin@example.com", subject="Your cart", body="Come back", variant="reminder",
    )  # fmt: skip
    log.record(sent, expect=frozenset({None}))
    log.record(
        DeliveryEntry("otto", "a2", "t", "email", "sent", "", NOW, to="otto@example.com"),
        expect=frozenset({None}),
    )
    archive = DuckArchive(lines)
    stores = ExportStores(
        profiles, inbox, log, query=archive, suppressions=MemorySuppressions(["erin@example.com"])
    )
    return stores, archive


def test_the_export_holds_every_store_of_the_user_and_the_ids_merged_into_it(
    shop: tuple[ExportStores, DuckArchive],
) -> None:
    stores, _ = shop
    doc = export_user(stores, "erin", now=NOW)
    json.dumps(doc)  # one JSON document
    assert doc["user_id"] == "erin" and doc["ids"] == ["erin", "anon-1"]
    assert doc["profile"]["event_counts"] == {"Product Viewed": 8}
    assert doc["profile"]["traits"] == {"email": "erin@example.com"}
    assert doc["stored_profile"]["user_id"] == "erin"
    assert [m["id"] for m in doc["inbox"]] == ["m1"] and doc["inbox"][0]["action_id"] == "a1"
    (delivery,) = doc["deliveries"]
    assert (delivery["to"], delivery["subject"], delivery["body"]) == (
        "erin@example.com",
        "Your cart",
        "Come back",
    )
    assert delivery["variant"] == "reminder"
    assert doc["devices"] == [{"platform": "fcm", "token": "tok-1", "endpoint_arn": "arn:e1"}]
    assert doc["suppressed_addresses"] == ["erin@example.com"]
    # the archived events of both ids, oldest first, none of Otto's
    assert [e["message_id"] for e in doc["events"]] == [
        "a0", "a1", "a2", "login", "e0", "e1", "e2", "e3",
    ]  # fmt: skip
    assert doc["events_next"] is None
    assert {e["user_id"] for e in doc["events"]} == {"anon-1", "erin"}
    assert doc["events"][0]["properties"] == {"product_id": "p1"}


def test_an_anonymous_id_merged_into_the_user_exports_the_user(
    shop: tuple[ExportStores, DuckArchive],
) -> None:
    stores, _ = shop
    doc = export_user(stores, "anon-1", now=NOW)
    assert doc["user_id"] == "erin" and doc["ids"] == ["erin", "anon-1"]


def test_the_events_come_in_pages_each_once_in_order(
    shop: tuple[ExportStores, DuckArchive], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores, _ = shop
    monkeypatch.setattr(export_module, "EXPORT_PAGE_EVENTS", 3)
    seen: list[str] = []
    doc = export_user(stores, "erin", now=NOW)
    pages = 1
    seen += [e["message_id"] for e in doc["events"]]
    while doc["events_next"]:
        doc = export_user(stores, "erin", now=NOW, after=doc["events_next"])
        seen += [e["message_id"] for e in doc["events"]]
        pages += 1
    assert pages == 3
    assert seen == ["a0", "a1", "a2", "login", "e0", "e1", "e2", "e3"]


def test_a_page_stops_at_its_byte_budget(
    shop: tuple[ExportStores, DuckArchive], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores, _ = shop
    monkeypatch.setattr(export_module, "EXPORT_PAGE_BYTES", 1)
    doc = export_user(stores, "erin", now=NOW)
    assert len(doc["events"]) == 1 and doc["events_next"]


@pytest.mark.parametrize("cursor", ["x", "e30=", "WzEsMl0", "W10", "!" * 3000])
def test_a_cursor_nudge_did_not_make_is_a_400(
    shop: tuple[ExportStores, DuckArchive], cursor: str
) -> None:
    stores, _ = shop
    with pytest.raises(ValidationFailedError):
        export_user(stores, "erin", now=NOW, after=cursor)


def test_an_unknown_or_erased_user_is_not_found(shop: tuple[ExportStores, DuckArchive]) -> None:
    stores, _ = shop
    with pytest.raises(NotFoundError):
        export_user(stores, "nobody", now=NOW)
    stored = stores.profiles.get("otto")
    assert stored is not None
    stores.profiles.save(type(stored)(tombstone("otto", NOW), stored.version))
    with pytest.raises(NotFoundError):
        export_user(stores, "otto", now=NOW)


def test_without_an_archive_the_events_are_empty(shop: tuple[ExportStores, DuckArchive]) -> None:
    stores, _ = shop
    stores.query = None
    doc = export_user(stores, "erin", now=NOW)
    assert doc["events"] == [] and doc["events_next"] is None
