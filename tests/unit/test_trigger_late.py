"""Late events that complete a past cart episode count it as in-order delivery would.

Events of a stretch of two hours (so deadlines pass in between) are delivered either one
by one at their own time, with the clock running, or after the stretch in chunks of event
time, the newest first (the case of a batch held up upstream), each shuffled. Both must
end with the same `fired` and `last_fired_at` for `cart_abandonment`. A past episode a late
event reveals counts but never sends (docs/triggers.md, "Time, lateness and order"); a
deadline that events find passed is decided at the wake-up after them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nudge.domain.events import Event, normalize_event
from nudge.domain.profile import Profile
from nudge.domain.triggers import Engine, TriggerSet, load_triggers
from nudge.domain.triggers.backtest import Simulation
from nudge.domain.triggers.contract import LATE_FLUSH_MS, action_id

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)
TRIGGERS: TriggerSet = load_triggers(ROOT / "triggers")
CART = "cart_abandonment"


def _raw(i: int, kind: str, product: int, at: datetime) -> dict[str, Any]:
    base: dict[str, Any] = {"userId": "u1", "messageId": f"m{i}", "timestamp": at.isoformat()}
    if kind == "order":
        return {
            **base,
            "type": "track",
            "event": "Order Completed",
            "properties": {"products": [{"product_id": f"p{product}"}]},
        }
    if kind == "page":
        return {**base, "type": "page", "name": "Home"}
    name = {"add": "Product Added", "remove": "Product Removed"}[kind]
    return {**base, "type": "track", "event": name, "properties": {"product_id": f"p{product}"}}


def _event(raw: dict[str, Any], received: datetime) -> Event:
    return normalize_event(raw, kind=None, received_at=received)


def _public(sim: Simulation) -> dict[str, Any]:
    state = sim.profiles["u1"].triggers.get(CART) or {}
    return {f: state.get(f) or 0 for f in ("fired", "last_fired_at")}


stretches = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "remove", "order", "page"]),
        st.integers(0, 2),
        st.integers(0, 120),  # minutes: deadlines of 15 minutes pass in between
    ),
    min_size=1,
    max_size=12,
).map(lambda items: [_raw(i, k, p, T + m * M) for i, (k, p, m) in enumerate(items)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stretch=stretches, data=st.data())
def test_late_batches_count_the_same_cart_episodes_as_in_order_delivery(
    stretch: list[dict[str, Any]], data: st.DataObject
) -> None:
    in_order = Simulation(TRIGGERS)
    for raw in sorted(stretch, key=lambda r: (r["timestamp"], r["messageId"])):
        at = datetime.fromisoformat(raw["timestamp"])
        in_order.deliver([_event(raw, at)], at)
    in_order.advance(T + timedelta(days=1))

    # the stretch cut at event times into chunks that arrive newest first, each shuffled
    end = T + 150 * M
    times = sorted({r["timestamp"] for r in stretch})
    cuts = sorted(set(data.draw(st.lists(st.sampled_from(times), max_size=4))))
    bounds = [times[0], *[c for c in cuts if c != times[0]]]
    chunks = [
        [r for r in stretch if lo <= r["timestamp"] and (hi is None or r["timestamp"] < hi)]
        for lo, hi in zip(bounds, [*bounds[1:], None], strict=True)
    ]
    late = Simulation(TRIGGERS)
    for n, chunk in enumerate(reversed(chunks)):
        received = end + n * M
        batch = data.draw(st.permutations(chunk))
        late.deliver([_event(r, received) for r in batch], received)
    late.advance(T + timedelta(days=1))

    assert _public(late) == _public(in_order)
    assert late.profiles["u1"].triggers.get(CART) == in_order.profiles["u1"].triggers.get(CART)
    sent = [r.fire for r in late.fires if r.fire.trigger_id == CART]
    assert len({f.action_id for f in sent}) == len(sent)  # no message twice


def test_an_event_stamped_at_a_deadline_is_judged_before_the_deadline_whatever_comes_first() -> (
    None
):
    # found by hypothesis (seed 6): adds at 09:00, 10:40 and 10:55 and a page at 10:55.
    # In order, the page (sorted first) checked the 10:40 cart at 10:55 exactly and fired
    # it, so the add of 10:55 counted as the same state; delivered together, the add of
    # 10:55 changed the cart within the 10:40 window. An event at the deadline comes
    # first (as `timer_due` has it): the cart of 10:55 is the one abandoned, at 11:10.
    stretch = [_raw(i, "add", 0, T) for i in range(8)]
    stretch += [_raw(8, "add", 0, T + 100 * M), _raw(9, "add", 0, T + 115 * M)]
    stretch += [_raw(10, "page", 0, T + 115 * M)]
    results = []
    for order in (stretch, list(reversed(stretch))):
        sim = Simulation(TRIGGERS)
        for raw in sorted(order, key=lambda r: r["timestamp"]):  # stable: the given order
            at = datetime.fromisoformat(raw["timestamp"])
            sim.deliver([_event(raw, at)], at)
        sim.advance(T + timedelta(days=1))
        results.append(_public(sim))
    together = Simulation(TRIGGERS)
    together.deliver([_event(r, T + 150 * M) for r in stretch], T + 150 * M)
    together.advance(T + timedelta(days=1))
    expected = {"fired": 2, "last_fired_at": int((T + 130 * M).timestamp() * 1000)}
    assert results == [expected, expected]
    assert _public(together) == expected


def _feed(engine: Engine, profile: Profile, raws: list[dict[str, Any]], now: datetime):
    return engine.on_events(profile, profile.apply([_event(r, now) for r in raws]), now)


def _wake(engine: Engine, profile: Profile, now: datetime):
    """The wake-up that follows a batch: LATE_FLUSH_MS and a minute bucket later."""
    return engine.on_timer(profile, CART, None, now + timedelta(milliseconds=LATE_FLUSH_MS) + M)


FIRST = [_raw(1, "add", 1, T + 2 * M), _raw(2, "add", 2, T + 3 * M)]
SECOND = [
    _raw(3, "remove", 2, T + 61 * M),
    _raw(4, "order", 1, T + 62 * M),
    _raw(5, "add", 1, T + 65 * M),
]


def test_a_late_past_episode_is_counted_with_its_deadline_but_sends_nothing() -> None:
    engine = Engine(TRIGGERS)
    profile = Profile(user_id="u1")
    now = T + 3 * 60 * M  # 12:00, long after both deadlines
    assert not [f for f in _feed(engine, profile, SECOND, now).fires if f.trigger_id == CART]
    first = _wake(engine, profile, now)  # decided at the wake-up: 10:20 is over an hour ago
    assert [f for f in first.fires if f.trigger_id == CART] == []
    assert profile.triggers[CART]["fired"] == 1
    # when the adds of 09:02-09:03 arrive late: the cart of 09:03 was abandoned at 09:18
    late = _feed(engine, profile, FIRST, now)
    late.fires += _wake(engine, profile, now).fires
    state = profile.triggers[CART]
    assert state["fired"] == 2
    assert state["last_fired_at"] == int((T + 80 * M).timestamp() * 1000)
    assert [f for f in late.fires if f.trigger_id == CART] == []  # past: the cart changed since
    # the same events again change nothing
    again = _feed(engine, profile, FIRST, now + M)
    assert profile.triggers[CART]["fired"] == 2 and not again.fires


def test_a_late_past_episode_counts_as_in_order_delivery_numbers_it_and_the_current_sends() -> None:
    # an add at 09:00 and one at 09:30 arrive together at 09:35: the cart of 09:00 was
    # abandoned at 09:15 (nothing changed it until 09:30), the one of 09:30 is pending
    engine = Engine(TRIGGERS)
    profile = Profile(user_id="u1")
    now = T + 35 * M
    d = _feed(engine, profile, [_raw(1, "add", 2, T + 30 * M), _raw(2, "add", 1, T)], now)
    assert [f for f in d.fires if f.trigger_id == CART] == []  # decided at the wake-up
    d = _wake(engine, profile, now)
    assert [f for f in d.fires if f.trigger_id == CART] == []  # the cart of 09:00 is gone
    assert profile.triggers[CART]["fired"] == 1
    assert profile.triggers[CART]["armed_until"] == int((T + 45 * M).timestamp() * 1000)
    # the current one fires in its turn as episode 2, the number in-order delivery gives it
    d = engine.on_timer(profile, CART, None, T + 46 * M)
    assert [(f.episode, f.at) for f in d.fires] == [(2, T + 45 * M)]
    assert d.fires[0].action_id == action_id("u1", CART, None, 2)


def test_a_late_event_inside_the_window_cancels_nothing_already_decided_twice() -> None:
    # in order: add 09:00, order 09:10 -> no episode; the late add at 09:05 changes nothing
    engine = Engine(TRIGGERS)
    profile = Profile(user_id="u1")
    _feed(engine, profile, [_raw(1, "add", 1, T), _raw(2, "order", 1, T + 10 * M)], T + 60 * M)
    _feed(engine, profile, [_raw(3, "add", 2, T + 5 * M)], T + 61 * M)
    assert (profile.triggers.get(CART) or {}).get("fired", 0) == 0


STALLED = """
triggers:
  - id: checkout_stalled
    when:
      absence:
        after: {event: Checkout Started}
        without: {event: Order Completed}
        within: 30m
        correlate: checkout_id
    action: {channel: email, template: t}
"""


def _track(i: int, name: str, at: datetime, **props: Any) -> dict[str, Any]:
    return {
        "userId": "u1",
        "messageId": f"s{i}",
        "timestamp": at.isoformat(),
        "type": "track",
        "event": name,
        "properties": props,
    }


def test_a_correlated_absence_counts_a_past_episode_revealed_late() -> None:
    from nudge.domain.triggers import parse_text

    started = [_track(1, "Checkout Started", T, checkout_id="c1")]
    rest = [
        _track(2, "Checkout Started", T + 60 * M, checkout_id="c1"),
        _track(3, "Order Completed", T + 70 * M, checkout_id="c1"),
    ]
    states = []
    for batches in ((started, rest), (rest, started)):
        engine = Engine(parse_text(STALLED))
        profile = Profile(user_id="u1")
        for batch in batches:
            _feed(engine, profile, batch, T + 3 * 60 * M)
        engine.on_timer(profile, "checkout_stalled", "c1", T + 3 * 60 * M + 2 * M)
        states.append(profile.triggers["checkout_stalled"])
    # the checkout of 09:00 stalled at 09:30; the one of 10:00 ended in an order
    assert states[0]["fired"] == states[1]["fired"] == 1
    assert states[0] == states[1]
