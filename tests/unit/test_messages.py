"""The messages that cross the queues (nudge.domain.messages): events packed per user,
timers, actions; versioned, and read back whatever format was queued before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from nudge.domain import messages as M
from nudge.domain.events import Event, normalize_event
from nudge.domain.triggers.contract import Fire

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


# ---- the actions queue ----------------------------------------------------------------------------
def a_fire(**kw: object) -> Fire:
    fields: dict[str, object] = {
        "trigger_id": "cart_abandonment",
        "key": "p1",
        "at": NOW,
        "episode": 2,
        "action_id": "a1",
        "action": {
            "channel": "email",
            "template": "cart_abandonment",
            "fallback": "inapp",
            "send_window": {"days": ["mon", "tue"], "start": "09:00", "end": "17:00"},
        },
        "priority": 100,
        "cooldown_seconds": 86_400,
        "context": {"event": "Product Added", "properties": {"name": "Zürich mug"}},
        "experiment": {"id": "cart_test", "name": "Cart", "variant": "b", "holdout": False},
    }
    fields.update(kw)
    return Fire(**fields)  # type: ignore[arg-type]


def test_an_action_round_trips_with_its_variant_typed() -> None:
    msg = M.ActionMessage.of("ü1", a_fire(), enqueued_at=NOW + timedelta(seconds=1))
    body = msg.to_json()

    back = M.parse_action(body)

    assert back == msg and body.isascii()
    assert (back.kind, back.v, back.user_id) == ("action", M.ACTION_VERSION, "ü1")
    assert back.experiment == M.ExperimentArm(id="cart_test", name="Cart", variant="b")
    assert (back.variant, back.experiment_id, back.holdout) == ("b", "cart_test", None)
    assert back.action.send_window is not None and back.action.send_window.days == ("mon", "tue")
    data = json.loads(body)
    assert (data["at"], data["enqueued_at"]) == (
        "2026-03-02T12:00:00.000Z",
        "2026-03-02T12:00:01.000Z",
    )
    assert data["action"]["send_window"] == {
        "days": ["mon", "tue"],
        "start": "09:00",
        "end": "17:00",
    }


def test_a_holdout_variant_and_a_strategy_ride_on_the_action() -> None:
    held = {"id": "cart_test", "name": "Cart", "variant": "control", "holdout": True}
    msg = M.ActionMessage.of("u1", a_fire(experiment=held), enqueued_at=NOW)
    assert (msg.holdout, msg.variant) == ("cart_test", "control")
    popular = {"id": "recs", "variant": "popular", "strategy": "popular"}
    back = M.parse_action(
        M.ActionMessage.of("u1", a_fire(experiment=popular), enqueued_at=NOW).to_json()
    )
    assert back.experiment is not None and back.experiment.strategy == "popular"
    assert M.ActionMessage.of("u1", a_fire(experiment=None), enqueued_at=NOW).variant is None


def test_a_deferred_action_keeps_everything_and_says_until_when() -> None:
    msg = M.ActionMessage.of("u1", a_fire(), enqueued_at=NOW)
    later = msg.deferred(NOW + timedelta(hours=9))
    back = M.parse_action(later.to_json())
    assert back.deferred_until == NOW + timedelta(hours=9)
    assert back.model_copy(update={"deferred_until": None}) == msg


def test_an_action_queued_before_action_messages_still_reads() -> None:
    # the dict the process function queued before ActionMessage: Fire's fields, the user,
    # enqueued_at; no kind, no v
    legacy = {
        "user_id": "u1",
        "trigger_id": "cart_abandonment",
        "key": "p1",
        "at": "2026-03-02T12:00:00.000Z",
        "episode": 2,
        "action_id": "a1",
        "action": {"channel": "email", "template": "cart_abandonment", "fallback": None},
        "priority": 100,
        "cooldown_seconds": 86400,
        "context": {"event": "Product Added", "properties": {}},
        "experiment": {"id": "cart_test", "name": "Cart", "variant": "b", "holdout": False},
        "enqueued_at": "2026-03-02T12:00:01.000Z",
    }
    msg = M.parse_action(json.dumps(legacy))
    assert (msg.user_id, msg.action_id, msg.action.channel, msg.variant) == (
        "u1",
        "a1",
        "email",
        "b",
    )
    assert (msg.at, msg.enqueued_at) == (NOW, NOW + timedelta(seconds=1))
    # as deferred before ActionMessage: the same with deferred_until, the experiment null
    old = {**legacy, "experiment": None, "deferred_until": "2026-03-02T21:00:00.000Z"}
    back = M.parse_action(json.dumps(old))
    assert back.variant is None and back.deferred_until == NOW + timedelta(hours=9)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"kind": "action", "v": 2, "user_id": "u1"}', "unknown action message version 2"),
        ('{"kind": "action", "user_id": "u1"}', "unknown action message version None"),
        ('{"kind": "events", "v": 1}', "not an action message"),
        ('{"user_id": "u1"}', "an action needs user_id, action_id, trigger_id, action"),
        (
            '{"user_id": "u1", "action_id": "a", "trigger_id": "t", "action": {}, "priority": "x"}',
            "priority: Input should be a valid integer",
        ),
        ("[1]", "JSON object"),
    ],
)
def test_an_action_that_cannot_be_read_is_a_value_error_with_the_reason(
    body: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        M.parse_action(body)
