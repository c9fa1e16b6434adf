"""The condition kinds of trigger engine v2 at the engine level (the processing path in
memory, `Simulation`): trait changes, dates read from traits, exit events, send windows.
Each fires when its words say and not otherwise."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nudge.domain.events import Event, normalize_event
from nudge.domain.triggers import TriggerSet, parse_text
from nudge.domain.triggers.backtest import Simulation

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
_ids = itertools.count()


def track(name: str, at: datetime, **props: Any) -> Event:
    raw = {"type": "track", "userId": "u1", "event": name, "properties": props}
    return _event(raw, at)


def identify(at: datetime, **traits: Any) -> Event:
    return _event({"type": "identify", "userId": "u1", "traits": traits}, at)


def _event(raw: dict[str, Any], at: datetime) -> Event:
    raw = {**raw, "messageId": f"k{next(_ids)}", "timestamp": at.isoformat()}
    return normalize_event(raw, kind=None, received_at=at)


def triggers(when: str, extra: str = "") -> TriggerSet:
    return parse_text(
        f"""
triggers:
  - id: t
    when: {when}
    action: {{channel: inapp, template: product_dwell_upsell}}
    cooldown: 0s
{extra}
""",
        "test.yaml",
    )


def run(ts: TriggerSet, *steps: tuple[datetime, Event], until: datetime) -> Simulation:
    sim = Simulation(ts)
    for at, event in steps:
        sim.deliver([event], at)
    sim.advance(until)
    return sim


def fires(sim: Simulation) -> list[tuple[datetime, dict[str, Any]]]:
    return [(r.fire.at, r.fire.context) for r in sim.fires]


# ---- trait changes -------------------------------------------------------------------------
DOWNGRADE = "{trait_change: {trait: plan, from: pro, to: free}}"


def test_a_trait_change_fires_at_the_identify_that_makes_it() -> None:
    sim = run(
        triggers(DOWNGRADE),
        (T, identify(T, plan="pro")),
        (T + H, identify(T + H, plan="free")),
        until=T + D,
    )
    assert [(at, c["from"], c["to"]) for at, c in fires(sim)] == [(T + H, "pro", "free")]


@pytest.mark.parametrize(
    "plans", [["free"], ["trial", "free"], ["pro", "pro"], ["free", "pro"], ["pro"]]
)
def test_other_changes_or_no_change_fire_nothing(plans: list[str]) -> None:
    steps = [(T + i * H, identify(T + i * H, plan=p)) for i, p in enumerate(plans)]
    assert fires(run(triggers(DOWNGRADE), *steps, until=T + D)) == []


def test_a_late_older_identify_is_history_not_a_change() -> None:
    sim = run(
        triggers(DOWNGRADE),
        (T + H, identify(T + H, plan="free")),
        (T + 2 * H, identify(T, plan="pro")),  # arrives late: older than the value known
        until=T + D,
    )
    assert fires(sim) == []


# ---- dates ------------------------------------------------------------------------------------
def test_three_days_before_a_date_time_trait() -> None:
    ends = T + 10 * D
    ts = triggers("{date: {trait: trial_ends_at, before: 3d}}")
    sim = run(ts, (T, identify(T, trial_ends_at=ends.isoformat())), until=T + 20 * D)
    assert [at for at, _ in fires(sim)] == [ends - 3 * D]


def test_a_date_that_passed_before_the_trait_was_set_fires_nothing() -> None:
    ends = T + 2 * D  # three days before it is yesterday
    ts = triggers("{date: {trait: trial_ends_at, before: 3d}}")
    sim = run(ts, (T, identify(T, trial_ends_at=ends.isoformat())), until=T + 20 * D)
    assert fires(sim) == [] and sim.profiles["u1"].triggers.get("t", {}).get("fired", 0) == 0


def test_a_moved_date_fires_at_the_new_one_only() -> None:
    ts = triggers("{date: {trait: trial_ends_at}}")
    sim = run(
        ts,
        (T, identify(T, trial_ends_at=(T + 5 * D).isoformat())),
        (T + D, identify(T + D, trial_ends_at=(T + 8 * D).isoformat())),
        until=T + 20 * D,
    )
    assert [at for at, _ in fires(sim)] == [T + 8 * D]


def test_a_birthday_fires_every_year_at_nine_in_the_users_time_zone() -> None:
    ts = triggers("{date: {trait: birthday, annual: true}}")
    sim = run(
        ts,
        (T, identify(T, birthday="1990-03-05", timezone="America/New_York")),
        until=T + 400 * D,
    )
    assert [at for at, _ in fires(sim)] == [
        datetime(2026, 3, 5, 14, 0, tzinfo=UTC),  # 09:00 EST
        datetime(2027, 3, 5, 14, 0, tzinfo=UTC),
    ]


# ---- exit events ------------------------------------------------------------------------------
CART = "{absence: {after: {event: Product Added}, without: {event: Order Completed}, within: 15m, measured_from: cart_change}}"
EXIT = "    exit: [{event: Checkout Started}]"


@pytest.mark.parametrize(("checkout_after", "fired"), [(5 * M, 0), (20 * M, 1), (None, 1)])
def test_an_exit_event_cancels_the_episode_in_flight(
    checkout_after: timedelta | None, fired: int
) -> None:
    steps = [(T, track("Product Added", T, product_id="p1"))]
    if checkout_after is not None:
        at = T + checkout_after
        steps.append((at, track("Checkout Started", at)))
    sim = run(triggers(CART, EXIT), *steps, until=T + D)
    assert len(fires(sim)) == fired


def test_an_exit_event_before_the_episode_started_cancels_nothing() -> None:
    sim = run(
        triggers(CART, EXIT),
        (T, track("Checkout Started", T)),
        (T + M, track("Product Added", T + M, product_id="p1")),
        until=T + D,
    )
    assert [at for at, _ in fires(sim)] == [T + 16 * M]


def test_an_exit_event_arriving_late_in_the_same_flush_cancels() -> None:
    sim = Simulation(triggers(CART, EXIT))
    late = T + 30 * M
    sim.deliver(
        [
            normalize_event(
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "Product Added",
                    "messageId": "a",
                    "timestamp": T.isoformat(),
                    "properties": {"product_id": "p1"},
                },
                kind=None,
                received_at=late,
            )
        ],
        late,
    )
    sim.deliver(
        [
            normalize_event(
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "Checkout Started",
                    "messageId": "b",
                    "timestamp": (T + 5 * M).isoformat(),
                },
                kind=None,
                received_at=late,
            )
        ],
        late,
    )
    sim.advance(T + D)
    assert fires(sim) == []


# ---- send windows ----------------------------------------------------------------------------
def test_a_send_window_travels_with_the_action() -> None:
    ts = triggers(
        "{event: Signed Up}", '    send_window: {days: [mon, tue], start: "09:00", end: "17:00"}'
    )
    sim = run(ts, (T, track("Signed Up", T)), until=T + H)
    assert sim.fires[0].fire.action["send_window"] == {
        "days": ["mon", "tue"],
        "start": "09:00",
        "end": "17:00",
    }
