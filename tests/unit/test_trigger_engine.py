"""The trigger engine with a simulated clock: the scenarios of docs/triggers.md and issue 3, at
the engine level (no I/O but reading the shipped definitions)."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nudge.domain.clock import to_ms
from nudge.domain.events import Event, normalize_event
from nudge.domain.profile import Profile
from nudge.domain.triggers import Engine, TriggerSet, load_triggers, parse_text
from nudge.domain.triggers.backtest import Simulation
from nudge.domain.triggers.behaviors.instant import LATE_SLACK_MS
from nudge.domain.triggers.contract import action_id
from nudge.domain.triggers.state import MAX_KEYS

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
_ids = itertools.count()


def ev(
    user: str,
    event_name: str | None,
    at: datetime,
    /,
    *,
    type: str = "track",
    mid: str | None = None,
    historical: bool = False,
    **props: Any,
) -> Event:
    raw: dict[str, Any] = {
        "type": type,
        "userId": user,
        "messageId": mid or f"m{next(_ids)}",
        "timestamp": at.isoformat(),
    }
    if type == "track":
        raw["event"], raw["properties"] = event_name, props
    elif type == "identify":
        raw["traits"] = props
    else:
        raw["name"], raw["properties"] = event_name, props
    return normalize_event(raw, kind=None, received_at=at, historical=historical)


@pytest.fixture(scope="module")
def triggers() -> TriggerSet:
    return load_triggers(ROOT / "triggers")


@pytest.fixture
def engine(triggers: TriggerSet) -> Engine:
    return Engine(triggers)


@pytest.fixture
def sim(triggers: TriggerSet) -> Simulation:
    return Simulation(triggers)


def feed(engine: Engine, profile: Profile, *events: Event, now: datetime):
    return engine.on_events(profile, profile.apply(list(events)), now)


def only(trigger_id: str, decisions) -> list:
    return [f for f in decisions.fires if f.trigger_id == trigger_id]


def fired(sim: Simulation, trigger_id: str, user: str | None = None) -> list:
    return [
        r.fire
        for r in sim.fires
        if r.fire.trigger_id == trigger_id and (user is None or r.user_id == user)
    ]


# ---- cart abandonment -----------------------------------------------------------------------------
class TestCartAbandonment:
    def test_an_add_arms_a_timer_at_15_minutes_and_fires_once_after(self, engine: Engine) -> None:
        # given
        p = Profile("u1")
        # when
        d = feed(
            engine,
            p,
            ev("u1", "Product Added", T, product_id="p1", name="Trail Shoe", price=89),
            now=T,
        )
        # then
        [timer] = [t for t in d.arm if t.trigger_id == "cart_abandonment"]
        assert timer.due == T + 15 * M + S and timer.key is None  # the second after the deadline
        assert p.triggers["cart_abandonment"]["armed_until"] == to_ms(T + 15 * M)
        fire = only("cart_abandonment", engine.on_timer(p, "cart_abandonment", None, T + 16 * M))
        assert len(fire) == 1
        assert fire[0].at == T + 15 * M and fire[0].episode == 1
        assert fire[0].context["cart"][0]["name"] == "Trail Shoe"
        assert fire[0].action == {
            "channel": "email",
            "template": "cart_abandonment",
            "fallback": None,
        }
        assert p.triggers["cart_abandonment"]["fired"] == 1
        assert p.triggers["cart_abandonment"]["last_fired_at"] == to_ms(T + 15 * M)
        assert p.triggers["cart_abandonment"]["armed_until"] is None

    def test_a_duplicate_or_late_timer_fires_nothing_more(self, engine: Engine) -> None:
        p = Profile("u1")
        feed(engine, p, ev("u1", "Product Added", T, product_id="p1"), now=T)
        first = engine.on_timer(p, "cart_abandonment", None, T + 16 * M)
        again = engine.on_timer(p, "cart_abandonment", None, T + 16 * M)
        later = engine.on_timer(p, "cart_abandonment", None, T + 3 * H)
        assert len(first.fires) == 1
        assert not again and not later
        assert p.triggers["cart_abandonment"]["fired"] == 1

    def test_an_order_within_15_minutes_cancels(self, engine: Engine) -> None:
        p = Profile("u1")
        feed(engine, p, ev("u1", "Product Added", T, product_id="p1"), now=T)
        feed(
            engine,
            p,
            ev("u1", "Order Completed", T + 5 * M, products=[{"product_id": "p1"}]),
            now=T + 5 * M,
        )
        d = engine.on_timer(p, "cart_abandonment", None, T + 15 * M)
        assert not d.fires and not d.arm
        assert p.triggers["cart_abandonment"]["fired"] == 0
        assert p.triggers["cart_abandonment"]["armed_until"] is None

    def test_a_late_order_with_an_event_time_before_the_deadline_still_cancels(
        self, engine: Engine
    ) -> None:
        p = Profile("u1")
        feed(engine, p, ev("u1", "Product Added", T, product_id="p1"), now=T)
        # arrives after the deadline, before the (late) timer runs
        feed(engine, p, ev("u1", "Order Completed", T + 10 * M), now=T + 15 * M + 30 * S)
        assert not engine.on_timer(p, "cart_abandonment", None, T + 16 * M).fires

    def test_a_second_add_restarts_the_wait_without_moving_the_timer(self, engine: Engine) -> None:
        p = Profile("u1")
        feed(engine, p, ev("u1", "Product Added", T, product_id="p1"), now=T)
        d = feed(engine, p, ev("u1", "Product Added", T + M, product_id="p2"), now=T + M)
        assert not [
            t for t in d.arm if t.trigger_id == "cart_abandonment"
        ]  # lazy: the armed one is earlier
        assert p.triggers["cart_abandonment"]["armed_until"] == to_ms(T + 16 * M)
        at_15 = engine.on_timer(p, "cart_abandonment", None, T + 15 * M)
        assert not at_15.fires
        assert [t.due for t in at_15.arm] == [T + 16 * M + S]
        assert not engine.on_timer(
            p, "cart_abandonment", None, T + 15 * M + 30 * S
        ).fires  # a stray early call
        at_16 = engine.on_timer(p, "cart_abandonment", None, T + 16 * M + S)
        assert [f.episode for f in at_16.fires] == [1]
        assert [i["product_id"] for i in at_16.fires[0].context["cart"]] == ["p1", "p2"]

    def test_one_episode_per_cart_state_and_a_new_add_starts_the_next(
        self, sim: Simulation
    ) -> None:
        sim.deliver([ev("u1", "Product Added", T, product_id="p1")], T)
        sim.advance(T + H)
        sim.deliver([ev("u1", "Page Viewed", T + 2 * H, type="page")], T + 2 * H)
        sim.advance(T + 3 * H)
        assert [f.episode for f in fired(sim, "cart_abandonment")] == [1]
        sim.deliver([ev("u1", "Product Added", T + 4 * H, product_id="p2")], T + 4 * H)
        sim.advance(T + 5 * H)
        fires = fired(sim, "cart_abandonment")
        assert [(f.episode, f.at) for f in fires] == [(1, T + 15 * M), (2, T + 4 * H + 15 * M)]
        assert fires[0].action_id != fires[1].action_id
        assert sim.profiles["u1"].triggers["cart_abandonment"]["fired"] == 2

    def test_a_late_add_from_before_the_fire_is_the_same_episode(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", "Product Added", T, product_id="p1")], T)
        sim.advance(T + 20 * M)
        sim.deliver([ev("u1", "Product Added", T + 5 * M, product_id="p2")], T + 21 * M)
        sim.advance(T + 2 * H)
        assert len(fired(sim, "cart_abandonment")) == 1

    def test_the_same_event_twice_changes_nothing(self, sim: Simulation) -> None:
        add = ev("u1", "Product Added", T, product_id="p1", mid="same")
        sim.deliver([add], T)
        state = repr(sim.profiles["u1"].triggers)
        arms = sim.arms
        sim.deliver([ev("u1", "Product Added", T, product_id="p1", mid="same")], T + 30 * S)
        assert repr(sim.profiles["u1"].triggers) == state and sim.arms == arms
        sim.advance(T + H)
        assert len(fired(sim, "cart_abandonment")) == 1

    def test_emptying_the_cart_cancels(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", "Product Added", T, product_id="p1")], T)
        sim.deliver([ev("u1", "Product Removed", T + 2 * M, product_id="p1")], T + 2 * M)
        sim.advance(T + H)
        assert not fired(sim, "cart_abandonment")


# ---- inactivity ----------------------------------------------------------------------------------
class TestInactivity:
    def test_fires_once_after_48_hours_not_before(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", None, T, type="identify", email="ada@example.com")], T)
        assert sim.profiles["u1"].triggers["inactivity_winback"]["armed_until"] == to_ms(T + 48 * H)
        sim.advance(T + 47 * H)
        assert not fired(sim, "inactivity_winback")
        sim.advance(T + 49 * H)
        assert [f.at for f in fired(sim, "inactivity_winback")] == [T + 48 * H]
        sim.advance(T + 30 * D)  # still inactive: the same episode
        assert len(fired(sim, "inactivity_winback")) == 1
        assert sim.profiles["u1"].triggers["inactivity_winback"]["fired"] == 1

    def test_activity_moves_the_deadline_and_the_timer_rearms_lazily(self, engine: Engine) -> None:
        p = Profile("u1")
        d0 = feed(engine, p, ev("u1", None, T, type="identify", email="ada@example.com"), now=T)
        assert [t.due for t in d0.arm if t.trigger_id == "inactivity_winback"] == [T + 48 * H + S]
        d1 = feed(engine, p, ev("u1", "Page Viewed", T + 24 * H, type="page"), now=T + 24 * H)
        assert not [t for t in d1.arm if t.trigger_id == "inactivity_winback"]
        assert p.triggers["inactivity_winback"]["armed_until"] == to_ms(T + 72 * H)
        at_48 = engine.on_timer(p, "inactivity_winback", None, T + 48 * H + S)
        assert not at_48.fires and [t.due for t in at_48.arm] == [T + 72 * H + S]
        at_72 = engine.on_timer(p, "inactivity_winback", None, T + 72 * H + S)
        assert [f.at for f in at_72.fires] == [T + 72 * H]

    def test_a_new_inactive_stretch_is_the_next_episode(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", None, T, type="identify", email="a@b.c")], T)
        sim.advance(T + 50 * H)
        sim.deliver([ev("u1", "Page Viewed", T + 60 * H, type="page")], T + 60 * H)
        sim.advance(T + 200 * H)
        assert [(f.episode, f.at) for f in fired(sim, "inactivity_winback")] == [
            (1, T + 48 * H),
            (2, T + 108 * H),
        ]

    def test_no_email_no_timer(self, sim: Simulation) -> None:
        sim.deliver([ev("anon", "Page Viewed", T, type="page")], T)
        assert not [t for t in sim.timers.values() if t.trigger_id == "inactivity_winback"]
        sim.advance(T + 100 * H)
        assert not fired(sim, "inactivity_winback")


# ---- repeat product view -----------------------------------------------------------------------------
class TestRepeatProductView:
    def test_fires_at_the_third_view_of_the_same_product(self, engine: Engine) -> None:
        p = Profile("u1")
        for i in range(2):
            assert not only(
                "repeat_product_view",
                feed(
                    engine, p, ev("u1", "Product Viewed", T + i * D, product_id="p1"), now=T + i * D
                ),
            )
        d = feed(
            engine,
            p,
            ev("u1", "Product Viewed", T + 6 * D, product_id="p1", name="Hat"),
            now=T + 6 * D,
        )
        [fire] = only("repeat_product_view", d)
        assert fire.key == "p1" and fire.at == T + 6 * D
        assert fire.action == {
            "channel": "push",
            "template": "repeat_product_view",
            "fallback": "inapp",
        }
        assert fire.context["product"]["name"] == "Hat"
        assert not [t for t in d.arm if t.trigger_id == "repeat_product_view"]

    def test_three_different_products_do_not(self, sim: Simulation) -> None:
        for i, pid in enumerate(["p1", "p2", "p3"]):
            sim.deliver([ev("u1", "Product Viewed", T + i * M, product_id=pid)], T + i * M)
        assert not fired(sim, "repeat_product_view")

    def test_views_spread_over_more_than_7_days_do_not(self, sim: Simulation) -> None:
        for i in range(3):
            sim.deliver([ev("u1", "Product Viewed", T + i * 4 * D, product_id="p1")], T + i * 4 * D)
        assert not fired(sim, "repeat_product_view")

    def test_a_product_already_ordered_does_not(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", "Order Completed", T, products=[{"product_id": "p1"}])], T)
        for i in range(1, 4):
            sim.deliver([ev("u1", "Product Viewed", T + i * M, product_id="p1")], T + i * M)
        assert not fired(sim, "repeat_product_view")

    def test_once_per_7_days_per_product(self, sim: Simulation) -> None:
        for i in range(6):
            sim.deliver([ev("u1", "Product Viewed", T + i * H, product_id="p1")], T + i * H)
        assert len(fired(sim, "repeat_product_view")) == 1
        for i in range(3):
            at = T + 8 * D + i * H
            sim.deliver([ev("u1", "Product Viewed", at, product_id="p1")], at)
        assert [f.episode for f in fired(sim, "repeat_product_view")] == [1, 2]


# ---- dwell ----------------------------------------------------------------------------------------------
class TestDwell:
    def test_five_minutes_on_a_product_page_fires(self, engine: Engine) -> None:
        p = Profile("u1")
        d = feed(engine, p, ev("u1", "Product Viewed", T, product_id="p1", name="Hat"), now=T)
        [timer] = [t for t in d.arm if t.trigger_id == "product_dwell_upsell"]
        assert timer.due == T + 5 * M + S
        [fire] = engine.on_timer(p, "product_dwell_upsell", None, T + 6 * M).fires
        assert fire.context["product"] == {"product_id": "p1", "name": "Hat"}
        assert fire.action["channel"] == "inapp"

    def test_adding_that_product_prevents_it(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", "Product Viewed", T, product_id="p1")], T)
        sim.deliver([ev("u1", "Product Added", T + 2 * M, product_id="p1")], T + 2 * M)
        sim.advance(T + 10 * M)
        assert not fired(sim, "product_dwell_upsell")

    def test_another_page_prevents_it(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", "Product Viewed", T, product_id="p1")], T)
        sim.deliver([ev("u1", "Home", T + M, type="page")], T + M)
        sim.advance(T + H)
        assert not fired(sim, "product_dwell_upsell")

    def test_the_next_product_page_is_the_one_that_counts(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", "Product Viewed", T, product_id="p1")], T)
        sim.deliver([ev("u1", "Product Viewed", T + 3 * M, product_id="p2")], T + 3 * M)
        sim.advance(T + H)
        assert [
            (f.at, f.context["product"]["product_id"]) for f in fired(sim, "product_dwell_upsell")
        ] == [(T + 8 * M, "p2")]

    def test_a_track_event_on_the_page_keeps_the_dwell(self, sim: Simulation) -> None:
        sim.deliver([ev("u1", "Product Viewed", T, product_id="p1")], T)
        sim.deliver([ev("u1", "Image Zoomed", T + 2 * M)], T + 2 * M)
        sim.advance(T + H)
        assert len(fired(sim, "product_dwell_upsell")) == 1


# ---- import, identity of timers and actions, bounds -------------------------------------------------------
class TestHistoricalEvents:
    def test_they_update_state_but_never_fire_nor_arm(self, sim: Simulation) -> None:
        events = [
            ev("u1", None, T, type="identify", email="a@b.c", historical=True),
            ev("u1", "Product Added", T, product_id="p1", historical=True),
            *[
                ev("u1", "Product Viewed", T + i * M, product_id="p2", historical=True)
                for i in range(4)
            ],
        ]
        decisions = sim.engine.on_events(
            sim.profile("u1"), sim.profile("u1").apply(events), T + 5 * M
        )
        assert not decisions
        sim.advance(T + 30 * D)
        assert not sim.fires
        state = sim.profiles["u1"].triggers["repeat_product_view"]
        assert state["fired"] == 0 and state["p"]  # the views were counted

    def test_a_live_event_after_an_import_sees_the_imported_state(self, sim: Simulation) -> None:
        p = sim.profile("u1")
        imported = [
            ev("u1", "Product Viewed", T + i * M, product_id="p2", historical=True)
            for i in range(2)
        ]
        sim.engine.on_events(p, p.apply(imported), T + 2 * M)
        sim.deliver([ev("u1", "Product Viewed", T + 3 * M, product_id="p2")], T + 3 * M)
        assert [f.key for f in fired(sim, "repeat_product_view")] == ["p2"]


class TestIdentities:
    def test_action_ids_are_per_episode(self) -> None:
        assert action_id("u", "t", None, 1) == action_id("u", "t", None, 1)
        assert (
            len(
                {
                    action_id("u", "t", None, 1),
                    action_id("u", "t", None, 2),
                    action_id("u", "t", "k", 1),
                }
            )
            == 3
        )

    def test_a_retry_from_the_same_state_decides_the_same(self, engine: Engine) -> None:
        base = Profile("u1")
        feed(engine, base, ev("u1", "Product Added", T, product_id="p1"), now=T)
        snapshot = base.to_dict()
        one = engine.on_timer(
            Profile.from_dict(copy.deepcopy(snapshot)), "cart_abandonment", None, T + 16 * M
        )
        two = engine.on_timer(
            Profile.from_dict(copy.deepcopy(snapshot)), "cart_abandonment", None, T + 16 * M
        )
        assert one.fires == two.fires and one.fires

    def test_an_unknown_trigger_timer_does_nothing(self, engine: Engine) -> None:
        assert not engine.on_timer(Profile("u1"), "removed_trigger", None, T)


class TestBounds:
    def test_per_key_state_stays_bounded(self, sim: Simulation) -> None:
        at = T
        for i in range(400):
            at += M
            sim.deliver([ev("u1", "Product Viewed", at, product_id=f"p{i % 120}")], at)
        state = sim.profiles["u1"].triggers["repeat_product_view"]
        [slot] = state["p"].values()
        assert len(slot) <= MAX_KEYS
        assert all(len(times) <= 6 for times in slot.values())
        assert len(state.get("k", {})) <= MAX_KEYS

    def test_old_counts_are_dropped_after_the_window_and_the_late_slack(
        self, sim: Simulation
    ) -> None:
        # kept for a late event of a flush that much older than its newest (stream bug 9)
        gone = T + 7 * D + timedelta(milliseconds=LATE_SLACK_MS)
        sim.deliver([ev("u1", "Product Viewed", T, product_id="p1")], T)
        sim.deliver([ev("u1", "Product Viewed", gone - M, product_id="p2")], gone - M)
        [slot] = sim.profiles["u1"].triggers["repeat_product_view"]["p"].values()
        assert list(slot) == ["p1", "p2"]
        sim.deliver([ev("u1", "Product Viewed", gone + M, product_id="p3")], gone + M)
        [slot] = sim.profiles["u1"].triggers["repeat_product_view"]["p"].values()
        assert list(slot) == ["p2", "p3"]

    def test_the_state_survives_a_round_trip_through_the_profile_dict(
        self, triggers: TriggerSet
    ) -> None:
        engine = Engine(triggers)
        p = Profile("u1")
        feed(engine, p, ev("u1", "Product Viewed", T, product_id="p1"), now=T)
        p2 = Profile.from_dict(p.to_dict())
        feed(engine, p2, ev("u1", "Product Viewed", T + M, product_id="p1"), now=T + M)
        d = feed(engine, p2, ev("u1", "Product Viewed", T + 2 * M, product_id="p1"), now=T + 2 * M)
        assert only("repeat_product_view", d)


# ---- the format's other behaviors -----------------------------------------------------------------------------
def _one(yaml_text: str) -> Engine:
    return Engine(parse_text(yaml_text))


class TestOtherConditions:
    def test_event_with_property_filters(self) -> None:
        engine = _one(
            """
triggers:
  - id: big_shoe_view
    when:
      event: Product Viewed
      where: {category: shoes, price: {gte: 100}, tags: {contains: sale}, coupon: {exists: false}}
    action: {channel: inapp, template: t}
"""
        )
        p = Profile("u1")
        hit = ev("u1", "Product Viewed", T, category="shoes", price="120", tags=["sale", "new"])
        misses = [
            ev("u1", "Product Viewed", T + M, category="hats", price=120, tags=["sale"]),
            ev("u1", "Product Viewed", T + 2 * M, category="shoes", price=99, tags=["sale"]),
            ev(
                "u1",
                "Product Viewed",
                T + 3 * M,
                category="shoes",
                price=120,
                tags=["sale"],
                coupon="X",
            ),
        ]
        assert len(feed(engine, p, hit, now=T).fires) == 1
        for i, miss in enumerate(misses):
            assert not feed(engine, p, miss, now=T + (i + 1) * M).fires

    def test_correlated_absence_per_product(self) -> None:
        engine = _one(
            """
triggers:
  - id: checkout_stalled
    when:
      absence:
        after: {event: Checkout Started}
        without: {event: Order Completed}
        within: 1h
        correlate: checkout_id
    action: {channel: email, template: t}
"""
        )
        sim = Simulation(engine)
        sim.deliver([ev("u1", "Checkout Started", T, checkout_id="c1")], T)
        sim.deliver([ev("u1", "Checkout Started", T + M, checkout_id="c2")], T + M)
        sim.deliver([ev("u1", "Order Completed", T + 10 * M, checkout_id="c1")], T + 10 * M)
        sim.advance(T + 3 * H)
        assert [(r.fire.key, r.fire.at) for r in sim.fires] == [("c2", T + M + H)]

    def test_sequence_with_time_limits(self) -> None:
        engine = _one(
            """
triggers:
  - id: browse_add_leave
    when:
      sequence:
        correlate: product_id
        steps:
          - event: Product Viewed
          - {event: Product Added, within: 10m}
          - {event: Cart Viewed, within: 5m}
    action: {channel: inapp, template: t}
"""
        )
        sim = Simulation(engine)
        sim.deliver([ev("u1", "Product Viewed", T, product_id="p1")], T)
        sim.deliver(
            [ev("u1", "Product Added", T + 20 * M, product_id="p1")], T + 20 * M
        )  # too late
        sim.deliver([ev("u1", "Cart Viewed", T + 21 * M, product_id="p1")], T + 21 * M)
        assert not sim.fires
        sim.deliver([ev("u1", "Product Viewed", T + 30 * M, product_id="p1")], T + 30 * M)
        sim.deliver([ev("u1", "Product Added", T + 35 * M, product_id="p1")], T + 35 * M)
        sim.deliver([ev("u1", "Cart Viewed", T + 36 * M, product_id="p1")], T + 36 * M)
        assert [(r.fire.key, r.fire.at) for r in sim.fires] == [("p1", T + 36 * M)]

    def test_any_of_two_behaviors_and_segment_filters(self) -> None:
        engine = _one(
            """
triggers:
  - id: vip_signal
    when:
      all:
        - any:
            - event: Wishlist Added
            - count: {event: Search, at_least: 2, within: 1h}
        - segment: {in: [frequent buyers]}
        - not: {trait: {plan: enterprise}}
    action: {channel: push, template: t}
"""
        )
        p = Profile("u1")
        assert not feed(engine, p, ev("u1", "Wishlist Added", T), now=T).fires  # no segment yet
        p.segment = "frequent buyers"
        assert len(feed(engine, p, ev("u1", "Wishlist Added", T + M), now=T + M).fires) == 1
        feed(engine, p, ev("u1", "Search", T + 2 * M), now=T + 2 * M)
        assert len(feed(engine, p, ev("u1", "Search", T + 3 * M), now=T + 3 * M).fires) == 1
        feed(
            engine, p, ev("u1", None, T + 4 * M, type="identify", plan="enterprise"), now=T + 4 * M
        )
        assert not feed(engine, p, ev("u1", "Wishlist Added", T + 5 * M), now=T + 5 * M).fires

    def test_once_ever(self) -> None:
        engine = _one(
            """
triggers:
  - id: welcome
    when: {event: Signed Up}
    action: {channel: email, template: t}
    reeligibility: once
"""
        )
        p = Profile("u1")
        assert len(feed(engine, p, ev("u1", "Signed Up", T), now=T).fires) == 1
        assert not feed(engine, p, ev("u1", "Signed Up", T + D), now=T + D).fires

    def test_short_inactivity_and_disabled_triggers(self) -> None:
        engine = _one(
            """
triggers:
  - id: idle_10m
    when: {inactivity: 10m}
    action: {channel: inapp, template: t}
  - id: switched_off
    enabled: false
    when: {event: Page Viewed}
    action: {channel: inapp, template: t}
"""
        )
        sim = Simulation(engine)
        sim.deliver([ev("u1", "Home", T, type="page")], T)
        sim.advance(T + H)
        assert [(r.fire.trigger_id, r.fire.at) for r in sim.fires] == [("idle_10m", T + 10 * M)]

    def test_not_of_an_event_match_excludes_some_events(self) -> None:
        engine = _one(
            """
triggers:
  - id: non_gift_view
    when:
      all:
        - event: Product Viewed
        - not: {event: Product Viewed, where: {category: {in: [gift cards, vouchers]}}}
    action: {channel: inapp, template: t}
"""
        )
        p = Profile("u1")
        assert not feed(engine, p, ev("u1", "Product Viewed", T, category="vouchers"), now=T).fires
        assert feed(engine, p, ev("u1", "Product Viewed", T + M, category="shoes"), now=T + M).fires


class TestLazyTimers:
    def test_one_timer_wakes_the_user_for_every_later_deadline(self, engine: Engine) -> None:
        # given a user who can be emailed, browsing and adding to the cart
        p = Profile("u1")
        arms = []
        arms += feed(engine, p, ev("u1", None, T, type="identify", email="a@b.c"), now=T).arm
        arms += feed(engine, p, ev("u1", "Product Viewed", T + M, product_id="p1"), now=T + M).arm
        arms += feed(
            engine, p, ev("u1", "Product Added", T + 2 * M, product_id="p1"), now=T + 2 * M
        ).arm
        arms += feed(engine, p, ev("u1", "Home", T + 3 * M, type="page"), now=T + 3 * M).arm
        # then only the earliest deadline got a schedule on the way (48 h, then the dwell at 6 min)
        assert [(t.trigger_id, t.due) for t in arms] == [
            ("inactivity_winback", T + 48 * H + S),
            ("product_dwell_upsell", T + 6 * M + S),
        ]
        # the dwell was left at 3 min: its timer finds nothing, and arms for the cart
        d = engine.on_timer(p, "product_dwell_upsell", None, T + 6 * M + S)
        assert not d.fires and [(t.trigger_id, t.due) for t in d.arm] == [
            ("cart_abandonment", T + 17 * M + S)
        ]
        d = engine.on_timer(p, "cart_abandonment", None, T + 17 * M + S)
        assert [f.trigger_id for f in d.fires] == ["cart_abandonment"]
        assert not d.arm  # the inactivity timer, armed first, is still due at 48 h
        d = engine.on_timer(p, "inactivity_winback", None, T + 48 * H + S)
        assert not d.fires and [(t.trigger_id, t.due) for t in d.arm] == [
            ("inactivity_winback", T + 48 * H + 3 * M + S)
        ]
        d = engine.on_timer(p, "inactivity_winback", None, T + 48 * H + 3 * M + S)
        assert [f.trigger_id for f in d.fires] == ["inactivity_winback"] and not d.arm
        public = p.view(T + 50 * H)["triggers"]
        assert {k: v["fired"] for k, v in public.items()} == {
            "cart_abandonment": 1,
            "inactivity_winback": 1,
            "product_dwell_upsell": 0,
            "repeat_product_view": 0,
        }
        assert all(v["armed_until"] is None for v in public.values())

    def test_a_lost_timer_is_caught_up_by_the_next_event(self, engine: Engine) -> None:
        p = Profile("u1")
        feed(engine, p, ev("u1", "Product Added", T, product_id="p1"), now=T)
        # the schedule never fired; a page view two hours later arms the wake-up that
        # decides it: counted, and no email (the 1 h lateness has passed)
        d = feed(engine, p, ev("u1", "Home", T + 2 * H, type="page"), now=T + 2 * H)
        assert d.fires == [] and [t.trigger_id for t in d.arm] == ["cart_abandonment"]
        d = engine.on_timer(p, "cart_abandonment", None, d.arm[0].due + M)
        assert d.fires == []
        assert p.triggers["cart_abandonment"]["fired"] == 1
        assert p.triggers["cart_abandonment"]["last_fired_at"] == to_ms(T + 15 * M)
