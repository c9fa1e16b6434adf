"""The audit's reproducers of trigger engine v2 (late, imported and reordered events;
conditions that validated but did nothing), each with the result in-order, real-time
delivery gives, through the production processing path (`Simulation`).

Lateness rule (docs/triggers.md): an episode whose moment is more than the trigger's
`lateness` (default 1 h) before it is decided counts but sends nothing; a message is
only sent about a state that still holds; a deadline that a batch of events finds
already passed is decided at the next wake-up, so that the rest of a late flush can still
cancel it.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nudge.domain.events import Event, normalize_event
from nudge.domain.triggers import TriggerSet, load_triggers, parse_text
from nudge.domain.triggers.backtest import Simulation

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
_ids = itertools.count()


def ev(
    event_name: str | None,
    at: datetime,
    /,
    *,
    type: str = "track",
    user: str = "u1",
    received: datetime | None = None,
    historical: bool = False,
    **props: Any,
) -> Event:
    raw: dict[str, Any] = {
        "type": type,
        "userId": user,
        "messageId": f"r{next(_ids)}",
        "timestamp": at.isoformat(),
    }
    if type == "track":
        raw["event"], raw["properties"] = event_name, props
    elif type == "identify":
        raw["traits"] = props
    else:
        raw["name"], raw["properties"] = event_name, props
    return normalize_event(raw, kind=None, received_at=received or at, historical=historical)


@pytest.fixture(scope="module")
def defaults() -> TriggerSet:
    return load_triggers(ROOT / "triggers")


def custom(yaml_text: str) -> TriggerSet:
    return parse_text(yaml_text, "test.yaml")


def sent(sim: Simulation, trigger_id: str) -> list[Any]:
    return [r.fire for r in sim.fires if r.fire.trigger_id == trigger_id]


def counted(sim: Simulation, trigger_id: str, user: str = "u1") -> int:
    return int((sim.profiles[user].triggers.get(trigger_id) or {}).get("fired", 0))


# ---- stale messages ------------------------------------------------------------------------
def test_events_three_days_old_count_the_cart_and_the_dwell_but_send_nothing(
    defaults: TriggerSet,
) -> None:
    then = T - 3 * D
    now = T
    sim = Simulation(defaults)
    sim.deliver(
        [
            ev("Product Viewed", then, product_id="p1", received=now),
            ev("Product Added", then + 10 * M, product_id="p2", received=now),
        ],
        now,
    )
    sim.advance(now + 2 * H)
    assert counted(sim, "cart_abandonment") == 1  # the episode happened (in event time)
    assert sent(sim, "cart_abandonment") == []  # ... three days ago: no email now
    assert sent(sim, "product_dwell_upsell") == []


def test_an_imported_old_add_followed_by_a_live_identify_sends_no_cart_email(
    defaults: TriggerSet,
) -> None:
    sim = Simulation(defaults)
    sim.deliver([ev("Product Added", T - 10 * D, product_id="old-shoe", historical=True)], T)
    sim.deliver([ev(None, T + M, type="identify", email="a@example.com")], T + M)
    sim.advance(T + 2 * H)
    assert sent(sim, "cart_abandonment") == []


@pytest.mark.parametrize("requests", [1, 2])
def test_an_add_and_an_order_five_minutes_later_delivered_an_hour_late_send_nothing(
    defaults: TriggerSet, requests: int
) -> None:
    add = ev("Product Added", T, product_id="p1", received=T + H)
    order = ev(
        "Order Completed", T + 5 * M, received=T + H, products=[{"product_id": "p1"}], revenue=10
    )
    sim = Simulation(defaults)
    if requests == 1:
        sim.deliver([add, order], T + H)
    else:
        sim.deliver([add], T + H)
        sim.deliver([order], T + H + 2 * S)
    sim.advance(T + 3 * H)
    assert sent(sim, "cart_abandonment") == []
    assert counted(sim, "cart_abandonment") == 0


def test_an_add_delivered_twenty_minutes_late_still_gets_its_email_at_the_next_wake_up(
    defaults: TriggerSet,
) -> None:
    sim = Simulation(defaults)
    sim.deliver([ev("Product Added", T, product_id="p1", received=T + 20 * M)], T + 20 * M)
    assert sent(sim, "cart_abandonment") == []  # not inline: the flush may hold an order
    sim.advance(T + 25 * M)
    fires = sent(sim, "cart_abandonment")
    assert len(fires) == 1 and fires[0].at == T + 15 * M


# ---- conditions that validated but did nothing -----------------------------------------------
NOT_COUPON = """
triggers:
  - id: checkout_no_coupon
    when:
      all:
        - event: Checkout Started
        - not: {count: {event: Coupon Applied, at_least: 1, within: 1d}}
    action: {channel: inapp, template: product_dwell_upsell}
"""


@pytest.mark.parametrize(("coupon", "fires"), [(True, 0), (False, 1)])
def test_not_over_a_count_is_a_history_filter(coupon: bool, fires: int) -> None:
    sim = Simulation(custom(NOT_COUPON))
    if coupon:
        sim.deliver([ev("Coupon Applied", T - 5 * M)], T - 5 * M)
    sim.deliver([ev("Checkout Started", T)], T)
    assert len(sent(sim, "checkout_no_coupon")) == fires


def test_a_coupon_older_than_the_window_does_not_block() -> None:
    sim = Simulation(custom(NOT_COUPON))
    sim.deliver([ev("Coupon Applied", T - 2 * D)], T - 2 * D)
    sim.deliver([ev("Checkout Started", T)], T)
    assert len(sent(sim, "checkout_no_coupon")) == 1


ORDER_LAPSE = """
triggers:
  - id: order_lapse
    when:
      absence:
        after: {event: Order Completed}
        without: {event: Order Completed}
        within: 30d
    action: {channel: inapp, template: product_dwell_upsell}
"""


def test_no_order_for_30_days_since_the_last_one_fires_30_days_after_the_last() -> None:
    sim = Simulation(custom(ORDER_LAPSE))
    sim.deliver([ev("Order Completed", T, revenue=5)], T)
    sim.deliver([ev("Order Completed", T + 10 * D, revenue=5)], T + 10 * D)
    sim.advance(T + 39 * D)
    assert sent(sim, "order_lapse") == []
    sim.advance(T + 41 * D)
    fires = sent(sim, "order_lapse")
    assert len(fires) == 1 and fires[0].at == T + 40 * D


SEGMENT = """
triggers:
  - id: vip_view
    when:
      all:
        - event: Product Viewed
        - segment: {eq: frequent buyers}
    action: {channel: inapp, template: product_dwell_upsell}
"""


@pytest.mark.parametrize(("segment", "fires"), [("frequent buyers", 1), ("casual browsers", 0)])
def test_a_segment_filter_sees_the_profiles_segment(segment: str, fires: int) -> None:
    sim = Simulation(custom(SEGMENT))
    sim.profile("u1").segment = segment
    sim.deliver([ev("Product Viewed", T, product_id="p1")], T)
    assert len(sent(sim, "vip_view")) == fires


# ---- order and batching ----------------------------------------------------------------------
EVERY_SIGNUP = """
triggers:
  - id: welcome
    when: {event: Signed Up}
    action: {channel: inapp, template: product_dwell_upsell}
    cooldown: 0s
"""


def test_two_matching_events_sent_later_first_are_two_episodes() -> None:
    in_order, reversed_ = Simulation(custom(EVERY_SIGNUP)), Simulation(custom(EVERY_SIGNUP))
    a, b = ev("Signed Up", T), ev("Signed Up", T + M)
    in_order.deliver([a], T)
    in_order.deliver([b], T + M)
    late_b = ev("Signed Up", T + M, received=T + 2 * M)
    late_a = ev("Signed Up", T, received=T + 2 * M + S)
    reversed_.deliver([late_b], T + 2 * M)
    reversed_.deliver([late_a], T + 2 * M + S)
    assert counted(reversed_, "welcome") == 0  # late: decided with the rest of the flush
    reversed_.advance(T + 5 * M)
    assert counted(in_order, "welcome") == counted(reversed_, "welcome") == 2
    assert len(sent(reversed_, "welcome")) == 2


PRO_SIGNUP = """
triggers:
  - id: pro_welcome
    when:
      all:
        - event: Signed Up
        - trait: {plan: {eq: pro}}
    action: {channel: inapp, template: product_dwell_upsell}
"""


@pytest.mark.parametrize("shape", ["identify first", "one request", "identify after"])
def test_an_event_and_the_identify_that_sets_its_traits_fire_whatever_their_order(
    shape: str,
) -> None:
    sim = Simulation(custom(PRO_SIGNUP))
    signup = ev("Signed Up", T)
    identify = ev(None, T + S, type="identify", plan="pro")
    if shape == "identify first":
        sim.deliver([identify], T)
        sim.deliver([signup], T + S)
    elif shape == "one request":
        sim.deliver([signup, identify], T + S)
    else:
        sim.deliver([signup], T)
        sim.deliver([identify], T + S)
    assert len(sent(sim, "pro_welcome")) == 1


def test_the_identify_long_after_the_event_does_not_fire_it() -> None:
    sim = Simulation(custom(PRO_SIGNUP))
    sim.deliver([ev("Signed Up", T)], T)
    sim.deliver([ev(None, T + H, type="identify", plan="pro")], T + H)
    assert sent(sim, "pro_welcome") == []


@pytest.mark.parametrize("requests", [1, 2])
def test_a_product_view_and_a_page_a_minute_later_delivered_late_fire_no_dwell(
    defaults: TriggerSet, requests: int
) -> None:
    late = T + 30 * M
    view = ev("Product Viewed", T, product_id="p1", received=late)
    page = ev("Home", T + M, type="page", received=late)
    sim = Simulation(defaults)
    if requests == 1:
        sim.deliver([view, page], late)
    else:
        sim.deliver([view], late)
        sim.deliver([page], late + S)
    sim.advance(late + H)
    assert sent(sim, "product_dwell_upsell") == []
    assert counted(sim, "product_dwell_upsell") == 0


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_cart_quantity_after_add_remove_add_does_not_depend_on_arrival(
    defaults: TriggerSet, order: tuple[int, ...]
) -> None:
    events = [
        ev("Product Added", T, product_id="p1", quantity=2),
        ev("Product Removed", T + M, product_id="p1"),
        ev("Product Added", T + 2 * M, product_id="p1", quantity=1),
    ]
    sim = Simulation(defaults)
    for n, i in enumerate(order):
        sim.deliver([events[i]], T + 3 * M + n * S)
    items = sim.profiles["u1"].cart_items()
    assert [(i["product_id"], i["qty"]) for i in items] == [("p1", 1)]


def test_an_order_the_next_day_does_not_revive_a_product_page_of_a_session_long_over(
    defaults: TriggerSet,
) -> None:
    # found by the e2e backtest: the product was in the cart while its page was open
    # (nothing to upsell); an order 20 hours later emptied the cart, and the page of the
    # day before counted as a dwell
    sim = Simulation(defaults)
    sim.deliver([ev("Product Added", T - H, product_id="p1")], T - H)
    sim.deliver([ev("Product Viewed", T, product_id="p1")], T)
    later = T + 20 * H
    sim.deliver([ev("Order Completed", later, products=[{"product_id": "p1"}])], later)
    sim.advance(later + H)
    assert counted(sim, "product_dwell_upsell") == 0


def test_a_product_removed_while_its_page_is_open_counts_from_the_removal(
    defaults: TriggerSet,
) -> None:
    sim = Simulation(defaults)
    sim.deliver([ev("Product Added", T - H, product_id="p1")], T - H)
    sim.deliver([ev("Product Viewed", T, product_id="p1")], T)
    sim.deliver([ev("Product Removed", T + 2 * M, product_id="p1")], T + 2 * M)
    sim.advance(T + 30 * M)
    fires = sent(sim, "product_dwell_upsell")
    assert [f.at for f in fires] == [T + 5 * M]


@pytest.mark.parametrize("late", [False, True])
def test_a_48_hour_gap_counts_once_whether_its_events_come_live_or_after_it(
    defaults: TriggerSet, late: bool
) -> None:
    events = [
        ev(None, T, type="identify", email="a@example.com"),
        ev("Home", T + M, type="page"),
        ev("Home", T + 3 * D, type="page"),
    ]
    sim = Simulation(defaults)
    if late:  # a device offline for three days flushes everything at once
        sim.deliver(events, T + 3 * D + M)
    else:
        for e in events:
            sim.deliver([e], e.timestamp)
    sim.advance(T + 4 * D)
    assert counted(sim, "inactivity_winback") == 1
    assert len(sent(sim, "inactivity_winback")) == (0 if late else 1)
    state = sim.profiles["u1"].triggers["inactivity_winback"]
    assert state["last_fired_at"] == int((T + M + 2 * D).timestamp() * 1000)


def test_the_backtest_reports_episodes_counted_without_a_message(defaults: TriggerSet) -> None:
    from nudge.domain.triggers.backtest import backtest

    then, now = T - 3 * D, T
    events = [ev("Product Added", then, product_id="p1", received=now)]
    report = backtest(events, defaults).trigger("cart_abandonment")
    assert (report.episodes, report.fires, report.unsent) == (1, 0, 1)
    live = backtest([ev("Product Added", now, product_id="p1")], defaults)
    cart = live.trigger("cart_abandonment")
    assert (cart.episodes, cart.fires, cart.unsent, cart.would_send) == (1, 1, 0, 1)
    assert "episodes" in live.table() and live.to_dict()["triggers"][0]["unsent"] == 0
