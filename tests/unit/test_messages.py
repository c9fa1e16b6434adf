"""The messages that cross the events queue (nudge.domain.messages): packed per user,
versioned, and read back whatever format was queued before packing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from nudge.domain import messages as M
from nudge.domain.events import Event, normalize_event

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def ev(user: str, mid: str, **props: object) -> Event:
    raw = {"type": "track", "userId": user, "event": "A", "messageId": mid, "properties": props}
    return normalize_event(raw, kind=None, received_at=NOW)


def test_events_are_packed_one_message_per_user_in_arrival_order() -> None:
    events = [ev("u1", "a"), ev("u2", "b"), ev("u1", "c")]
    packed = M.pack_events(events)
    assert [(user, [e.message_id for e in evs]) for user, _, evs in packed] == [
        ("u1", ["a", "c"]),
        ("u2", ["b"]),
    ]
    for user, body, evs in packed:
        parsed = M.parse_message(body)
        assert parsed.user_id == user and parsed.events == evs and parsed.timers == []
        assert body.isascii()


def test_a_body_over_the_limit_is_split() -> None:
    big = "x" * 30_000
    events = [ev("u1", f"m{i}", blob=big) for i in range(20)]  # ~600 KB for one user
    packed = M.pack_events(events)
    assert len(packed) > 1
    assert all(len(body) <= M.MAX_BODY_BYTES + 1_000 for _, body, _ in packed)
    assert [e for _, _, evs in packed for e in evs] == events


def test_timers_round_trip() -> None:
    msg = M.TimersMessage(
        user_id="u1", bucket="2026-03-02T12:01", timers=[M.TimerItem(trigger_id="t", key="p1")]
    )
    parsed = M.parse_message(msg.to_json())
    assert parsed.user_id == "u1" and parsed.events == []
    assert [(t.trigger_id, t.key) for t in parsed.timers] == [("t", "p1")]


def test_the_formats_queued_before_packing_still_read() -> None:
    one = ev("u1", "a")
    assert M.parse_message(one.to_json()).events == [one]
    legacy = {"kind": "timer", "user_id": "u1", "trigger_id": "t", "key": None, "due": 1}
    parsed = M.parse_message(json.dumps(legacy))
    assert parsed.user_id == "u1" and parsed.timers[0].trigger_id == "t"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"kind": "events", "v": 2, "user_id": "u1", "events": []}', "version 2"),
        ('{"kind": "timers", "user_id": "u1", "bucket": "b", "timers": []}', "version None"),
        ('{"kind": "events", "v": 1, "user_id": "u1", "events": []}', "user_id and events"),
        ("[1, 2]", "JSON object"),
        ("not json", "Expecting value"),
    ],
)
def test_what_cannot_be_read_is_a_value_error_with_the_reason(body: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        M.parse_message(body)


def test_an_events_message_holds_one_users_events() -> None:
    [(_, body, _)] = M.pack_events([ev("u1", "a")])
    data = json.loads(body)
    data["events"].append(json.loads(ev("u2", "b").to_json()))
    with pytest.raises(ValueError, match="one user"):
        M.parse_message(json.dumps(data))
