"""Normalization of Segment-format events at the edge (docs/api.md, Segment HTTP Tracking API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nudge.constants import MAX_EVENT_BYTES
from nudge.domain.events import (
    PAGE_VIEWED,
    SCREEN_VIEWED,
    Event,
    message_fingerprint,
    normalize_event,
)

RECEIVED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def norm(raw: Any, kind: str | None = "track", **kw: Any) -> Event:
    return normalize_event(raw, kind=kind, received_at=kw.pop("received_at", RECEIVED), **kw)


def track(**fields: Any) -> dict[str, Any]:
    return {"userId": "u1", "event": "Signed Up", **fields}


# ---- identity -------------------------------------------------------------------------


def test_event_without_user_id_or_anonymous_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="userId or anonymousId"):
        norm({"event": "Signed Up"})


def test_blank_user_id_counts_as_missing() -> None:
    with pytest.raises(ValueError, match="userId or anonymousId"):
        norm({"userId": "   ", "event": "Signed Up"})


def test_anonymous_id_alone_is_enough_and_is_the_profile_id() -> None:
    ev = norm({"anonymousId": "anon-1", "event": "Signed Up"})
    assert ev.user_id is None
    assert ev.profile_id == "anon-1"


def test_user_id_wins_over_anonymous_id_as_profile_id() -> None:
    ev = norm(track(anonymousId="anon-1"))
    assert ev.profile_id == "u1"
    assert ev.anonymous_id == "anon-1"


def test_numeric_user_id_is_coerced_to_a_string() -> None:
    ev = norm({"userId": 12345, "event": "Signed Up", "anonymousId": 7})
    assert ev.user_id == "12345"
    assert ev.anonymous_id == "7"
    assert ev.profile_id == "12345"


def test_overlong_user_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="userId"):
        norm(track(userId="x" * 257))


@pytest.mark.parametrize(
    ("raw", "kind", "field"),
    [
        ({"userId": False, "event": "Signed Up"}, "track", "userId"),
        ({"userId": True, "event": "Signed Up"}, "track", "userId"),
        ({"anonymousId": False, "traits": {"plan": "pro"}}, "identify", "anonymousId"),
        ({"userId": "u1", "previousId": True}, "alias", "previousId"),
        ({"userId": "u1", "groupId": False}, "group", "groupId"),
    ],
)
def test_a_boolean_id_is_rejected_not_read_as_the_user_0_or_1(
    raw: dict[str, Any], kind: str, field: str
) -> None:
    # schemathesis sent {"anonymousId": false} to /v1/identify: it was folded into the
    # profile "0", as every other client sending false would have been
    with pytest.raises(ValueError, match=f"{field}.*not true or false"):
        norm(raw, kind=kind)


# ---- types ------------------------------------------------------------------------------


def test_track_needs_an_event_name() -> None:
    with pytest.raises(ValueError, match="event name"):
        norm({"userId": "u1"})
    with pytest.raises(ValueError, match="event name"):
        norm({"userId": "u1", "event": "  "})


def test_track_event_name_is_the_counted_name() -> None:
    ev = norm(track(event="Product Viewed", properties={"product_id": "p1"}))
    assert ev.type == "track"
    assert ev.event == "Product Viewed"
    assert ev.properties == {"product_id": "p1"}


def test_page_counts_as_page_viewed_with_name_and_category_as_properties() -> None:
    ev = norm(
        {"userId": "u1", "name": "Shoes", "category": "Catalog", "properties": {"url": "/shoes"}},
        kind="page",
    )
    assert ev.type == "page"
    assert ev.event == PAGE_VIEWED == "Page Viewed"
    assert ev.properties == {"url": "/shoes", "name": "Shoes", "category": "Catalog"}


def test_screen_counts_as_screen_viewed() -> None:
    ev = norm({"userId": "u1", "name": "Home"}, kind="screen")
    assert ev.event == SCREEN_VIEWED == "Screen Viewed"
    assert ev.properties == {"name": "Home"}


def test_page_without_name_is_still_a_page_view() -> None:
    ev = norm({"anonymousId": "a1"}, kind="page")
    assert ev.event == PAGE_VIEWED
    assert ev.properties == {}


def test_batch_item_must_name_its_type() -> None:
    with pytest.raises(ValueError, match="type is required"):
        norm(track(), kind=None)


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        norm(track(type="purchase"), kind=None)


def test_type_that_contradicts_the_endpoint_is_rejected() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        norm({"type": "identify", "userId": "u1"}, kind="track")


def test_identify_carries_traits_and_counts_no_event() -> None:
    ev = norm({"userId": "u1", "traits": {"email": "a@example.com"}}, kind="identify")
    assert ev.event is None
    assert ev.traits == {"email": "a@example.com"}


def test_identify_falls_back_to_context_traits() -> None:
    ev = norm({"userId": "u1", "context": {"traits": {"plan": "pro"}}}, kind="identify")
    assert ev.traits == {"plan": "pro"}


def test_alias_needs_previous_id_and_user_id() -> None:
    with pytest.raises(ValueError, match="previousId"):
        norm({"userId": "u1"}, kind="alias")
    with pytest.raises(ValueError, match="userId"):
        norm({"anonymousId": "a1", "previousId": "old"}, kind="alias")
    ev = norm({"userId": "u1", "previousId": 42}, kind="alias")
    assert ev.previous_id == "42"


def test_group_needs_group_id() -> None:
    with pytest.raises(ValueError, match="groupId"):
        norm({"userId": "u1"}, kind="group")
    assert norm({"userId": "u1", "groupId": "acme"}, kind="group").group_id == "acme"


def test_non_object_event_is_rejected() -> None:
    for raw in ([], "track", 3, None):
        with pytest.raises(ValueError, match="JSON object"):
            norm(raw)


def test_wrongly_typed_field_is_rejected_with_its_name() -> None:
    with pytest.raises(ValueError, match="properties"):
        norm(track(properties=["not", "an", "object"]))


# ---- messageId ----------------------------------------------------------------------------


def test_message_id_is_kept() -> None:
    assert norm(track(messageId="m-1")).message_id == "m-1"


def test_missing_message_id_is_generated_and_unique() -> None:
    a, b = norm(track()), norm(track())
    assert a.message_id and b.message_id
    assert a.message_id != b.message_id


def test_fingerprint_depends_only_on_message_id() -> None:
    a = norm(track(messageId="m-1", event="A"))
    b = norm(track(messageId="m-1", event="B", userId="other"))
    assert a.fingerprint == b.fingerprint == message_fingerprint("m-1")
    assert norm(track(messageId="m-2")).fingerprint != a.fingerprint


# ---- batch context ---------------------------------------------------------------------------


def test_batch_context_and_integrations_merge_into_item_with_item_winning() -> None:
    ev = norm(
        track(context={"ip": "10.0.0.1", "locale": "fr-FR"}, integrations={"Mixpanel": False}),
        batch_context={"library": {"name": "analytics-python"}, "locale": "en-US"},
        batch_integrations={"All": True, "Mixpanel": True},
    )
    assert ev.context == {
        "library": {"name": "analytics-python"},
        "locale": "fr-FR",
        "ip": "10.0.0.1",
    }
    assert ev.integrations == {"All": True, "Mixpanel": False}


def test_batch_context_applies_when_item_has_none() -> None:
    ev = norm(track(), batch_context={"ip": "1.2.3.4"})
    assert ev.context == {"ip": "1.2.3.4"}


# ---- time ------------------------------------------------------------------------------------


def test_missing_timestamp_is_the_receive_time() -> None:
    ev = norm(track())
    assert ev.timestamp == RECEIVED
    assert ev.received_at == RECEIVED


def test_timestamp_is_corrected_for_client_clock_skew_with_sent_at() -> None:
    # given a client clock 10 minutes fast: it stamped the event 1 minute before sending
    sent_at = RECEIVED + timedelta(minutes=10)
    stamp = sent_at - timedelta(minutes=1)
    # when
    ev = norm(track(timestamp=stamp.isoformat(), sentAt=sent_at.isoformat()))
    # then timestamp + (receivedAt - sentAt)
    assert ev.timestamp == RECEIVED - timedelta(minutes=1)


def test_batch_sent_at_corrects_items_without_their_own() -> None:
    sent_at = RECEIVED - timedelta(hours=1)  # client clock one hour slow
    stamp = sent_at - timedelta(seconds=30)
    ev = norm(track(timestamp=stamp.isoformat()), batch_sent_at=sent_at)
    assert ev.timestamp == RECEIVED - timedelta(seconds=30)


def test_item_sent_at_wins_over_batch_sent_at() -> None:
    ev = norm(
        track(timestamp=(RECEIVED - timedelta(minutes=5)).isoformat(), sentAt=RECEIVED.isoformat()),
        batch_sent_at=RECEIVED - timedelta(days=1),
    )
    assert ev.timestamp == RECEIVED - timedelta(minutes=5)


def test_timestamp_later_than_received_at_is_clamped() -> None:
    future = RECEIVED + timedelta(days=3)
    assert norm(track(timestamp=future.isoformat())).timestamp == RECEIVED


def test_timestamp_later_than_received_at_after_skew_correction_is_clamped() -> None:
    # sentAt before the event's own timestamp: the correction leaves it in the future
    ev = norm(
        track(timestamp=(RECEIVED + timedelta(hours=1)).isoformat(), sentAt=RECEIVED.isoformat())
    )
    assert ev.timestamp == RECEIVED


def test_original_timestamp_is_used_when_timestamp_is_absent() -> None:
    stamp = RECEIVED - timedelta(hours=2)
    assert norm(track(originalTimestamp=stamp.isoformat())).timestamp == stamp


def test_naive_timestamp_is_read_as_utc() -> None:
    ev = norm(track(timestamp="2026-03-01T08:00:00"))
    assert ev.timestamp == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_offset_timestamp_is_converted_to_utc() -> None:
    ev = norm(track(timestamp="2026-03-01T10:00:00+02:00"))
    assert ev.timestamp == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert ev.timestamp.utcoffset() == timedelta(0)


def test_unparseable_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        norm(track(timestamp="yesterday-ish"))


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},
        {"timestamp": "9999-12-31T00:00:00Z", "sentAt": "0001-01-01T00:00:00Z"},
        {"timestamp": "0001-01-01T00:00:00+14:00"},
    ],
)
def test_timestamp_out_of_representable_range_is_a_validation_error(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        norm(track(**fields))


def test_import_marks_events_historical() -> None:
    assert norm(track(), historical=True).historical is True
    assert norm(track()).historical is False


# ---- size and encoding ------------------------------------------------------------------------


def _event_of_size(n: int) -> dict[str, Any]:
    base = track(properties={"pad": ""})
    overhead = len(json.dumps(base, separators=(",", ":")).encode())
    base["properties"]["pad"] = "x" * (n - overhead)
    assert len(json.dumps(base, separators=(",", ":")).encode()) == n
    return base


def test_event_at_the_32_kb_limit_is_accepted() -> None:
    assert norm(_event_of_size(MAX_EVENT_BYTES)).event == "Signed Up"


def test_event_over_32_kb_is_rejected() -> None:
    with pytest.raises(ValueError, match="32 KB"):
        norm(_event_of_size(MAX_EVENT_BYTES + 1))


def test_event_size_counts_utf8_bytes_not_escapes() -> None:
    # 9,000 three-byte characters: 27 KB of UTF-8 (over 32 KB only if counted as \\uXXXX escapes)
    assert norm(track(properties={"text": "\u3042" * 9000})).properties["text"] == "\u3042" * 9000


def test_lone_surrogate_is_a_validation_error() -> None:
    # JSON "\\ud800" decodes to a Python string that cannot be encoded as UTF-8
    raw = json.loads('{"userId": "u1", "event": "x", "properties": {"name": "\\ud800"}}')
    with pytest.raises(ValueError, match=r"[Uu]nicode"):
        norm(raw)


def test_deeply_nested_properties_are_rejected() -> None:
    props: dict[str, Any] = {}
    cur = props
    for _ in range(300):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(ValueError, match="nested"):
        norm(track(properties=props))


def test_normalized_event_survives_the_queue_round_trip() -> None:
    ev = norm(
        track(
            messageId="m-1",
            anonymousId="a1",
            properties={
                "price": 9.99,
                "tags": ["a", "b"],
                "nested": {"k": [1, {"z": None}]},
                "t": "\ufffe\u3042",
            },
            context={"ip": "1.2.3.4"},
        ),
        historical=True,
    )
    body = ev.to_json()
    assert Event.model_validate_json(body) == ev


def test_queued_body_uses_only_characters_sqs_accepts() -> None:
    # SQS accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF only
    ev = norm(track(properties={"s": "a\ufffeb\uffff\x01\u3042\U0001f600"}))
    body = ev.to_json()
    bad = [
        c
        for c in body
        if not (
            c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"
        )
    ]
    assert bad == []
    assert Event.model_validate_json(body).properties["s"] == "a\ufffeb\uffff\x01\u3042\U0001f600"
