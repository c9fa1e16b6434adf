"""Out-of-order and duplicated delivery give the same episodes as in-order delivery.

The events of a burst (event times within 4 minutes, before any deadline) are delivered
either one by one in event-time order, or shuffled, duplicated and split into batches
received at the end of the burst; then the clock runs on. Both must fire the same
episodes: durable triggers (cart, dwell, inactivity) are decided at their deadline from
the folded state, and the count of repeat views completes in event time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nudge.domain.events import Event, normalize_event
from nudge.domain.triggers import TriggerSet, load_triggers
from nudge.domain.triggers.backtest import Simulation

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TRIGGERS: TriggerSet = load_triggers(ROOT / "triggers")

KINDS = ["view", "add", "remove", "order", "page", "identify", "track"]
WEIGHTED = KINDS + ["view"] * 5  # enough views of one product to reach 3


def _raw(i: int, kind: str, product: int, second: int) -> dict[str, Any]:
    at = (T + timedelta(seconds=second)).isoformat()
    pid = f"p{product}"
    base: dict[str, Any] = {"userId": "u1", "messageId": f"m{i}", "timestamp": at}
    if kind == "view":
        return {
            **base,
            "type": "track",
            "event": "Product Viewed",
            "properties": {"product_id": pid},
        }
    if kind == "add":
        return {
            **base,
            "type": "track",
            "event": "Product Added",
            "properties": {"product_id": pid},
        }
    if kind == "remove":
        return {
            **base,
            "type": "track",
            "event": "Product Removed",
            "properties": {"product_id": pid},
        }
    if kind == "order":  # products never viewed: `bought` stays out of the repeat-view check
        return {
            **base,
            "type": "track",
            "event": "Order Completed",
            "properties": {"products": [{"product_id": "q1"}]},
        }
    if kind == "page":
        return {**base, "type": "page", "name": "Home"}
    if kind == "identify":
        return {**base, "type": "identify", "traits": {"email": "ada@example.com"}}
    return {**base, "type": "track", "event": "Image Zoomed"}


def _event(raw: dict[str, Any], received: datetime) -> Event:
    return normalize_event(raw, kind=None, received_at=received)


bursts = st.lists(
    st.tuples(st.sampled_from(WEIGHTED), st.integers(0, 2), st.integers(0, 240)),
    min_size=1,
    max_size=14,
).map(lambda items: [_raw(i, k, p, s) for i, (k, p, s) in enumerate(items)])


def _episodes(sim: Simulation) -> set[tuple[str, str | None, int, str]]:
    return {(r.fire.trigger_id, r.fire.key, r.fire.episode, r.fire.action_id) for r in sim.fires}


def _durable_times(sim: Simulation) -> set[tuple[str, datetime]]:
    return {
        (r.fire.trigger_id, r.fire.at)
        for r in sim.fires
        if r.fire.trigger_id != "repeat_product_view"
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(burst=bursts, data=st.data())
def test_shuffled_duplicated_batched_delivery_fires_the_same_episodes(
    burst: list[dict[str, Any]], data: st.DataObject
) -> None:
    end = T + timedelta(seconds=240)
    # in order, one at a time, each received at its own time
    in_order = Simulation(TRIGGERS)
    for raw in sorted(burst, key=lambda r: (r["timestamp"], r["messageId"])):
        at = datetime.fromisoformat(raw["timestamp"])
        in_order.deliver([_event(raw, at)], at)
    in_order.advance(T + timedelta(days=5))

    # shuffled, some twice, in batches, all received at the end of the burst
    shuffled = data.draw(st.permutations(burst))
    repeats = data.draw(st.lists(st.sampled_from(burst), max_size=4))
    stream = [_event(r, end) for r in [*shuffled, *repeats]]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    out_of_order = Simulation(TRIGGERS)
    start = 0
    for cut in [*cuts, len(stream)]:
        if cut > start:
            out_of_order.deliver(stream[start:cut], end)
            start = cut
    out_of_order.advance(T + timedelta(days=5))

    assert _episodes(out_of_order) == _episodes(in_order)
    assert _durable_times(out_of_order) == _durable_times(in_order)
    public = {
        k: {f: v.get(f) for f in ("fired", "armed_until")}
        for k, v in in_order.profiles["u1"].triggers.items()
    }
    public2 = {
        k: {f: v.get(f) for f in ("fired", "armed_until")}
        for k, v in out_of_order.profiles["u1"].triggers.items()
    }
    assert {k: v for k, v in public.items() if v["fired"]} == {
        k: v for k, v in public2.items() if v["fired"]
    }
