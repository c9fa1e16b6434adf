"""The profile item's stated bound (docs/api.md, "Limits"): whatever sequence of events
ingest accepts, the profile's own fields stay under MAX_FIELDS_BYTES and, with the
default triggers, the whole document under PROFILE_BOUND_BYTES — well under DynamoDB's
400 KB item limit, past which every later write of the user fails and their events are
lost (the audit lost 47 of 60 to 30 KB cart names and large non-ASCII traits).

Events go through ingest's admission (parse_request) and the live processing path with
the default triggers (the backtest's Simulation), adversarial where it costs most: ids
and product ids at their limits in characters that escape (`"`, control characters),
non-ASCII text, every list and map filled past its cap."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nudge.domain.errors import ValidationFailedError
from nudge.domain.events import MAX_ID_BYTES, MAX_PRODUCT_ID_BYTES, Event
from nudge.domain.ingest import parse_request
from nudge.domain.processing import MAX_FOLD_EVENTS
from nudge.domain.profile import (
    MAX_FIELDS_BYTES,
    MAX_SEEN,
    MAX_SPILL_IDS,
    PROFILE_BOUND_BYTES,
    Profile,
)
from nudge.domain.sizes import encode_document
from nudge.domain.triggers import load_triggers
from nudge.domain.triggers.backtest import Simulation

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CTL = "\x01"  # 1 byte of UTF-8, 6 in the stored JSON (\u0001)
# characters costly to store: escaped, or several bytes of UTF-8
COSTLY = ["\U0001f600", "中", "é", '"', "\\", "\n", CTL, "a"]


def own_and_whole(p: Profile) -> tuple[int, int]:
    doc = p.to_dict()
    own = {k: v for k, v in doc.items() if k != "triggers"}
    return len(encode_document(own)), len(encode_document(doc))


def admitted(raw: list[dict[str, Any]], received_at: datetime) -> list[Event]:
    """What ingest accepts of a batch (the refused items, by index, are dropped)."""
    try:
        return parse_request("batch", {"batch": raw}, received_at=received_at).accepted
    except ValidationFailedError:
        return []


def fill(n: int, prefix: str, char: str = CTL) -> str:
    """`prefix` then `char` up to n bytes of UTF-8."""
    return prefix + char * ((n - len(prefix.encode())) // len(char.encode()))


# ---- every cap reached -------------------------------------------------------------------------


def saturating(user: str) -> Iterator[dict[str, Any]]:
    def anon(i: int) -> str:
        return fill(MAX_ID_BYTES, f"a{i}-")

    def pid(i: int) -> str:
        return fill(MAX_PRODUCT_ID_BYTES, f"{i}-", '"')

    for i in range(12):  # more anonymous visitors merged than the profile lists
        yield {"type": "track", "anonymousId": anon(i), "event": "Product Viewed"}
        yield {"type": "identify", "userId": user, "anonymousId": anon(i)}
    for i in range(12):  # identified users others try to alias in: refused, remembered
        yield {"type": "identify", "userId": fill(MAX_ID_BYTES, f"v{i}-")}
    for _ in range(50):  # (a batch of their own: the identifies are folded first)
        yield {"type": "page", "userId": user}
    for i in range(12):
        yield {"type": "alias", "userId": user, "previousId": fill(MAX_ID_BYTES, f"v{i}-")}
    for i in range(110):  # traits: long names, values filling the traits' cap
        yield {"type": "identify", "userId": user, "traits": {fill(100, f"{i}-"): CTL * 30}}
    yield {"type": "identify", "userId": user, "traits": {"bio": "中" * 5000, "x": "y" * 9999}}
    for i in range(220):  # more event names than counted
        yield {"type": "track", "userId": user, "event": fill(200, f"{i}-", "\\")[:200]}
    big = {"name": "ü" * 9000, "category": CTL * 900, "url": "h" * 1024, "image_url": "i" * 1024}
    for i in range(60):  # a cart past its cap, each add with every attribute at its cap
        props = {"product_id": pid(i), "price": 1.2345678901234567e-300, "quantity": 7, **big}
        yield {"type": "track", "userId": user, "event": "Product Added", "properties": props}
    for i in range(7):  # more products bought than kept
        products = [{"product_id": pid(100 + 20 * i + j), "price": 1e308} for j in range(20)]
        props = {"revenue": 1e308, "products": products}
        yield {"type": "track", "userId": user, "event": "Order Completed", "properties": props}
    for i in range(30):
        yield {
            "type": "track",
            "userId": user,
            "event": "Product Viewed",
            "properties": {"product_id": pid(300 + i)},
        }


def test_every_cap_reached_keeps_the_profile_under_its_bound() -> None:
    # given a user at the id limit, sending what fills every list and map of the profile,
    # and then the most dedup fingerprints a profile keeps: a fold of MAX_FOLD_EVENTS
    # (the older ones move out to the dedup store, D42)
    user = fill(MAX_ID_BYTES, "u-")
    raw = list(saturating(user))
    raw += [{"type": "page", "userId": user, "name": "x"} for _ in range(2100 - len(raw))]
    sim = Simulation(load_triggers(ROOT / "triggers"))
    for lo in range(0, len(raw), 50):
        at = T + timedelta(seconds=lo)
        part = [{"messageId": f"m{lo + i}", **r} for i, r in enumerate(raw[lo : lo + 50])]
        events = admitted(part, at)
        assert len(events) == len(part), "every saturating event is within the limits"
        sim.deliver(events, at)
    at = T + timedelta(seconds=len(raw))
    page = {"type": "page", "userId": user, "name": "x"}
    fold = [{"messageId": f"f{i}", **page} for i in range(MAX_FOLD_EVENTS)]
    sim.deliver(admitted(fold, at), at)
    p = sim.profiles[user]
    # as many ids of merged profiles that spilled as are kept, each at the id limit
    p.spilled = {fill(MAX_ID_BYTES, f"s{i}-"): 1 << 40 for i in range(MAX_SPILL_IDS)}
    p.extra["devices"] = [  # as the devices route keeps them, at its caps
        {"platform": "fcm", "token": "t" * 1024, "endpoint_arn": "arn:aws:sns:" + "e" * 120}
    ] * 5
    p.extra["opt_out"] = ["email", "inapp", "push", "sms"]
    # then every capped list and map is full ...
    assert (len(p.anonymous_ids), len(p.unmerged_ids), len(p.traits)) == (10, 5, 100)
    assert (len(p.event_counts), len(p.bought), len(p.seen)) == (201, 100, MAX_FOLD_EVENTS)
    assert MAX_FOLD_EVENTS >= MAX_SEEN
    # ... and the profile's own fields and the whole document stay under their bounds
    own, whole = own_and_whole(p)
    assert own <= MAX_FIELDS_BYTES, own
    assert whole <= PROFILE_BOUND_BYTES, whole


# ---- any accepted sequence (property) -------------------------------------------------------


def text(max_bytes: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(COSTLY), max_size=max_bytes // 2).map(
        lambda cs: "".join(cs).encode()[:max_bytes].decode(errors="ignore")
    )


ids = st.one_of(st.sampled_from(["p1", "p2", "p3"]), text(MAX_PRODUCT_ID_BYTES + 8))
fields = st.dictionaries(text(260), text(1500), max_size=8)
calls = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("identify"), "traits": st.dictionaries(text(120), text(1500), max_size=6)}
    ),
    st.fixed_dictionaries({"type": st.just("track"), "event": text(300), "properties": fields}),
    st.fixed_dictionaries(
        {
            "type": st.just("track"),
            "event": st.sampled_from(["Product Added", "Product Viewed", "Product Removed"]),
            "properties": st.fixed_dictionaries(
                {"product_id": ids, "name": text(4000), "url": text(1400)}, optional={"x": fields}
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("track"),
            "event": st.just("Order Completed"),
            "properties": st.fixed_dictionaries(
                {
                    "revenue": st.floats(allow_nan=False, allow_infinity=False),
                    "products": st.lists(st.fixed_dictionaries({"product_id": ids}), max_size=25),
                }
            ),
        }
    ),
    st.fixed_dictionaries({"type": st.just("page"), "name": text(500), "properties": fields}),
    st.fixed_dictionaries({"type": st.just("alias"), "previousId": text(300)}),
)
# each call: how late it is (event time before receipt) and seconds to the next
timed = st.tuples(calls, st.sampled_from([0, 0, 5, 90, 3600, 86_400]), st.integers(1, 5000))


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(timed, min_size=50, max_size=200), st.sampled_from([1, 10, 50]))
def test_no_accepted_sequence_pushes_the_profile_past_its_bound(
    sequence: list[tuple[dict[str, Any], int, int]], batch: int
) -> None:
    user = fill(MAX_ID_BYTES, "u-", '"')
    sim = Simulation(load_triggers(ROOT / "triggers"))
    at = T
    raw: list[tuple[dict[str, Any], datetime]] = []
    for i, (call, late, gap) in enumerate(sequence):
        at += timedelta(seconds=gap)
        stamp = (at - timedelta(seconds=late)).isoformat()
        raw.append(({**call, "userId": user, "messageId": f"m{i}", "timestamp": stamp}, at))
    worst = (0, 0)
    for lo in range(0, len(raw), batch):
        part = raw[lo : lo + batch]
        received = part[-1][1]
        events = admitted([r for r, _ in part], received)
        if events:
            sim.deliver(events, received)
        if user in sim.profiles:
            own, whole = own_and_whole(sim.profiles[user])
            worst = (max(worst[0], own), max(worst[1], whole))
    assert worst[0] <= MAX_FIELDS_BYTES
    assert worst[1] <= PROFILE_BOUND_BYTES


def test_the_stated_bound_is_well_under_dynamodbs_item_limit() -> None:
    # the key (user_id, up to 2 KB) and the item's other attributes (version, times) fit in
    # what is left; zlib only shrinks the document (by at most 0.1 % plus 11 bytes it grows
    # one that does not compress)
    assert PROFILE_BOUND_BYTES + PROFILE_BOUND_BYTES // 1000 + 4096 < 400 * 1024 * 0.7


@pytest.mark.parametrize("size", [MAX_ID_BYTES])
def test_an_id_at_its_limit_is_within_the_partition_keys_limit(size: int) -> None:
    assert len(fill(size, "u-", "\U0001f600").encode()) <= 2048
