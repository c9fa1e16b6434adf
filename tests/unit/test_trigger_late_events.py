"""Late instant events (docs/triggers.md, "Time, lateness and order"): an event received
more than LATE_EVENT_MS after its timestamp is decided at the wake-up LATE_FLUSH_MS after
it arrived, with the rest of its flush; an on-time one at once. `bought` is read in event
time, and a message goes out only when its filters still hold now."""

from __future__ import annotations

from nudge.domain.events import normalize_event
from nudge.domain.profile import Profile
from nudge.domain.triggers.backtest import Simulation
from nudge.domain.triggers.behaviors.base import MAX_DEFERRED
from nudge.domain.triggers.contract import LATE_EVENT_MS

from tests.unit.test_trigger_reproducers import M, S, T, counted, custom, ev, sent

EVERY_VIEW = """
triggers:
  - id: viewed
    when: {event: Product Viewed}
    action: {channel: inapp, template: product_dwell_upsell}
    cooldown: 0s
"""

VIEWED_NOT_BOUGHT = """
triggers:
  - id: third_view
    when:
      all:
        - count: {event: Product Viewed, per: product_id, at_least: 3, within: 7d}
        - not: {bought: true}
    action: {channel: inapp, template: product_dwell_upsell}
    cooldown: 0s
"""


def _view(at, received=None, pid="p1"):  # type: ignore[no-untyped-def]
    return ev("Product Viewed", at, received=received, product_id=pid)


def _order(at, received=None, pid="p1"):  # type: ignore[no-untyped-def]
    return ev("Order Completed", at, received=received, products=[{"product_id": pid}])


def test_an_on_time_event_is_decided_at_once() -> None:
    sim = Simulation(custom(EVERY_VIEW))
    sim.deliver([_view(T, received=T + 10 * S)], T + 10 * S)
    assert 10 * S < LATE_EVENT_MS * S / 1000
    assert counted(sim, "viewed") == 1 and len(sent(sim, "viewed")) == 1


def test_a_late_event_waits_for_the_rest_of_its_flush() -> None:
    sim = Simulation(custom(EVERY_VIEW))
    sim.deliver([_view(T, received=T + 5 * M)], T + 5 * M)
    assert counted(sim, "viewed") == 0
    assert sim.profiles["u1"].triggers["viewed"]["armed_until"] is not None
    sim.advance(T + 8 * M)
    assert counted(sim, "viewed") == 1 and len(sent(sim, "viewed")) == 1


def test_an_on_time_event_behind_late_ones_of_its_key_waits_with_them() -> None:
    sim = Simulation(custom(EVERY_VIEW))
    sim.deliver([_view(T, received=T + 4 * M)], T + 4 * M)  # late
    sim.deliver([_view(T + 4 * M, received=T + 4 * M + S)], T + 4 * M + S)  # on time, behind it
    assert counted(sim, "viewed") == 0
    sim.advance(T + 8 * M)
    assert counted(sim, "viewed") == 2


def test_a_late_event_that_completes_nothing_needs_no_wake_up() -> None:
    sim = Simulation(custom(VIEWED_NOT_BOUGHT))
    late = T + 4 * M
    sim.deliver([_view(T, received=late), _view(T + M, received=late)], late)  # two of three
    assert "q" not in (sim.profiles["u1"].triggers.get("third_view") or {})
    assert sim.arms == 0
    sim.deliver([_view(T + 4 * M, received=T + 4 * M + S)], T + 4 * M + S)  # the third, at once
    assert counted(sim, "third_view") == 1


def test_an_order_before_the_third_view_later_in_the_flush_stops_it() -> None:
    sim = Simulation(custom(VIEWED_NOT_BOUGHT))
    sim.deliver(
        [
            _view(T, received=T + 3 * M),
            _view(T + M, received=T + 3 * M),
            _view(T + 2 * M, received=T + 3 * M),
        ],
        T + 3 * M,
    )
    sim.deliver([_order(T + 90 * S, received=T + 3 * M + 5 * S)], T + 3 * M + 5 * S)
    sim.advance(T + 8 * M)
    assert counted(sim, "third_view") == 0


def test_an_order_after_the_third_view_counts_it_but_sends_nothing() -> None:
    sim = Simulation(custom(VIEWED_NOT_BOUGHT))
    sim.deliver(
        [
            _view(T, received=T + 4 * M),
            _view(T + M, received=T + 4 * M),
            _view(T + 2 * M, received=T + 4 * M),
            _order(T + 3 * M, received=T + 4 * M),
        ],
        T + 4 * M,
    )
    sim.advance(T + 8 * M)
    assert counted(sim, "third_view") == 1
    assert sent(sim, "third_view") == []  # not true now: the product is bought


def test_beyond_max_deferred_the_oldest_late_events_are_decided_at_once() -> None:
    sim = Simulation(custom(EVERY_VIEW))
    views = [_view(T + k * S, T + 10 * M, f"p{k}") for k in range(MAX_DEFERRED + 3)]
    sim.deliver(views, T + 10 * M)
    assert counted(sim, "viewed") == 3
    assert len(sim.profiles["u1"].triggers["viewed"]["q"]) == MAX_DEFERRED
    sim.advance(T + 15 * M)
    assert counted(sim, "viewed") == MAX_DEFERRED + 3
    assert "q" not in sim.profiles["u1"].triggers["viewed"]


def test_bought_keeps_the_first_order_of_each_product_whatever_the_arrival_order() -> None:
    p = Profile(user_id="u1")
    p.apply([_order(T + M), _order(T)])
    assert p.bought == {"p1": int(T.timestamp() * 1000)}
    assert not p.bought_by("p1", int(T.timestamp() * 1000))  # not before itself
    assert p.bought_by("p1", int(T.timestamp() * 1000) + 1)
    assert p.bought_by("p1", None)


def test_a_profile_stored_with_the_old_bought_list_loads() -> None:
    p = Profile.from_dict({"user_id": "u1", "bought": ["p1", "p2"]})
    assert p.bought_by("p1", 1) and p.bought_by("p2", None) and not p.bought_by("p3", None)


def test_backtest_reports_each_batch_it_delivered() -> None:
    from nudge.domain.triggers.backtest import backtest

    seen: list[int] = []
    events = [_view(T), _view(T + S), _view(T + M, received=T + M)]
    backtest(events, custom(EVERY_VIEW), on_delivered=seen.append)
    assert sum(seen) == 3 and len(seen) == 3


INACTIVE_10M = """
triggers:
  - id: idle
    when: {inactivity: {for: 10m}}
    action: {channel: inapp, template: product_dwell_upsell}
    cooldown: 0s
"""


def test_a_wake_up_that_only_re_arms_files_the_timer_without_a_profile_write() -> None:
    sim = Simulation(custom(INACTIVE_10M))
    sim.deliver([ev("Seen", T)], T)
    sim.deliver([ev("Seen", T + 5 * M)], T + 5 * M)  # the deadline moves to T + 15m
    writes, arms = sim.store._versions["u1"], sim.arms
    sim.advance(T + 12 * M)  # the first wake-up: nothing due, armed again for T + 15m
    assert sim.arms == arms + 1
    assert sim.store._versions["u1"] == writes  # only bookkeeping changed: not written
    sim.advance(T + 20 * M)
    assert counted(sim, "idle") == 1 and len(sent(sim, "idle")) == 1
    sim.deliver([ev("Seen", T + 21 * M)], T + 21 * M)  # the stale due recorded covers nothing
    sim.advance(T + 40 * M)
    assert counted(sim, "idle") == 2


def test_episodes_of_an_anonymous_visitor_count_on_the_user_after_login() -> None:
    sim = Simulation(custom(EVERY_VIEW))
    raw = {
        "type": "track",
        "anonymousId": "anon-1",
        "event": "Product Viewed",
        "messageId": "a1",
        "timestamp": T.isoformat(),
        "properties": {"product_id": "p1"},
    }
    sim.deliver([normalize_event(raw, kind=None, received_at=T)], T)
    sim.deliver([ev("Product Viewed", T + M, product_id="p2")], T + M)
    assert counted(sim, "viewed", user="anon-1") == 1 and counted(sim, "viewed") == 1
    login = ev(None, T + 2 * M, type="identify", email="a@example.com")
    login = login.model_copy(update={"anonymous_id": "anon-1"})
    sim.deliver([login], T + 2 * M)
    assert counted(sim, "viewed") == 2  # the visitor's episode is the user's now
    state = sim.profiles["u1"].triggers["viewed"]
    assert state["last_fired_at"] == int((T + M).timestamp() * 1000)
    sim.deliver([ev("Product Viewed", T + 3 * M, product_id="p1")], T + 3 * M)
    ids = [f.action_id for f in sent(sim, "viewed")]
    assert len(ids) == len(set(ids)) == 3  # no action id reused after the merge


def test_an_event_on_time_at_the_door_is_decided_at_once_however_late_it_is_processed() -> None:
    # a backlog (the queue behind, the process function minutes late) is not a late event
    sim = Simulation(custom(EVERY_VIEW))
    sim.deliver([_view(T, received=T + S)], T + 5 * M)
    assert counted(sim, "viewed") == 1 and len(sent(sim, "viewed")) == 1
