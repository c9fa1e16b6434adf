"""What the train function reads, in one pass: the archived product interactions and
product descriptions, and each user's features from their profile. Pure: the adapters
hand it raw archive lines and profiles (docs/personalization.md, "Training").

Interactions are `(user_id, item_id, event, t_ms)` for `Product Viewed`, `Product Added`
and each product of `Order Completed` (its `products`), event time, in the order
(user, time, item, event): the recommender's input. The archive is at least once; as the
view `events` does, one copy of each `message_id` is kept (the earliest received, ties
by user). A cart abandonment is a run of `Product Added` events with no `Order Completed`
within ABANDON_AFTER_MS of its last add (an open run counts once that time has passed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nudge.domain.catalog import ProductSighting, sightings
from nudge.domain.clock import to_ms
from nudge.domain.profile import (
    ORDER_COMPLETED,
    PRODUCT_ADDED,
    PRODUCT_REMOVED,
    PRODUCT_VIEWED,
    Profile,
    product_key,
)

ABANDON_AFTER_MS = 3_600_000  # an hour without an order after the last add
INTERACTION_EVENTS = (PRODUCT_VIEWED, PRODUCT_ADDED, ORDER_COMPLETED)
_READ_EVENTS = frozenset({*INTERACTION_EVENTS, PRODUCT_REMOVED})
# Lines are compact JSON (nudge.domain.archive.archive_line): a cheap test on the bytes
# skips the lines no reader here needs before any JSON is parsed.
_MARKERS = tuple(f'"event":{json.dumps(e)}'.encode() for e in sorted(_READ_EVENTS))

Interaction = tuple[str, str, str, int]  # user_id, item_id, event, t_ms


def _time_ms(value: Any) -> int | None:
    try:
        return to_ms(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except (TypeError, ValueError):
        return None


@dataclass
class _Kept:
    received: str
    user_id: str
    event: str
    t_ms: int
    properties: dict[str, Any]


@dataclass
class ArchiveExtract:
    """Feed it archive lines (`add_line`, duplicates and all), then read `interactions`,
    `sightings` and `abandonments` (`finish` first)."""

    lines: int = 0
    kept: dict[str, _Kept] = field(default_factory=dict)  # message_id -> the copy kept
    interactions: list[Interaction] = field(default_factory=list)
    sightings: list[ProductSighting] = field(default_factory=list)
    abandonments: dict[str, int] = field(default_factory=dict)

    def add_line(self, line: bytes) -> None:
        self.lines += 1
        if not any(m in line for m in _MARKERS):
            return
        try:
            row = json.loads(line)
        except ValueError:
            return
        self.add_row(row)

    def add_row(self, row: dict[str, Any]) -> None:
        event, user, mid = row.get("event"), row.get("user_id"), row.get("message_id")
        if row.get("type") != "track" or event not in _READ_EVENTS or not user or not mid:
            return
        t = _time_ms(row.get("timestamp"))
        if t is None:
            return
        received = str(row.get("received_at") or "")
        old = self.kept.get(mid)
        if old is not None and (old.received, old.user_id) <= (received, str(user)):
            return
        props = row.get("properties")
        if isinstance(props, str):
            try:
                props = json.loads(props)
            except ValueError:
                props = None
        self.kept[mid] = _Kept(
            received, str(user), str(event), t, props if isinstance(props, dict) else {}
        )

    def finish(self, *, now_ms: int) -> ArchiveExtract:
        interactions: list[Interaction] = []
        found: list[ProductSighting] = []
        carts: dict[str, list[tuple[int, bool]]] = {}  # user -> (t, is_order)
        for mid, k in self.kept.items():
            found.extend(sightings(k.event, k.properties, k.t_ms, mid))
            if k.event in (PRODUCT_VIEWED, PRODUCT_ADDED):
                pid = product_key(k.properties)
                if pid is not None:
                    interactions.append((k.user_id, pid, k.event, k.t_ms))
            elif k.event == ORDER_COMPLETED:
                for p in k.properties.get("products") or []:
                    pid = product_key(p) if isinstance(p, dict) else None
                    if pid is not None:
                        interactions.append((k.user_id, pid, k.event, k.t_ms))
            if k.event in (PRODUCT_ADDED, ORDER_COMPLETED):
                carts.setdefault(k.user_id, []).append((k.t_ms, k.event == ORDER_COMPLETED))
        interactions.sort(key=lambda i: (i[0], i[3], i[1], i[2]))
        found.sort(key=lambda s: (s.product_id, s.t_ms, s.message_id))
        self.interactions = interactions
        self.sightings = found
        self.abandonments = {
            u: n for u, steps in carts.items() if (n := count_abandonments(steps, now_ms=now_ms))
        }
        self.kept = {}
        return self


def count_abandonments(steps: Iterable[tuple[int, bool]], *, now_ms: int) -> int:
    """Runs of adds (t, False) not followed by an order (t, True) within ABANDON_AFTER_MS
    of the run's last add."""
    count = 0
    last_add: int | None = None
    for t, is_order in sorted(steps):
        if last_add is not None and t - last_add > ABANDON_AFTER_MS:
            count += 1  # the run ended without an order in time
            last_add = None
        last_add = None if is_order else t
    if last_add is not None and now_ms - last_add > ABANDON_AFTER_MS:
        count += 1
    return count


@dataclass(frozen=True)
class ProfileFacts:
    """What training takes from a profile, and the scores it holds now."""

    user_id: str
    last_seen_ms: int | None
    last_order_ms: int | None
    orders: int
    revenue: float
    sessions: int
    session_seconds: float
    page_views: int  # pages and screens, and product views
    cart_adds: int
    segment: str | None
    rfm_score: str | None

    @classmethod
    def of(cls, p: Profile) -> ProfileFacts:
        return cls(
            user_id=p.user_id,
            last_seen_ms=p.last_seen,
            last_order_ms=p.last_order_at,
            orders=p.orders,
            revenue=p.revenue,
            sessions=p.sessions,
            session_seconds=p.session_seconds,
            page_views=p.page_views + p.event_counts.get(PRODUCT_VIEWED, 0),
            cart_adds=p.cart_adds,
            segment=p.segment,
            rfm_score=p.rfm_score,
        )


def trained_profiles(profiles: Iterable[Profile]) -> list[ProfileFacts]:
    """The profiles training scores: every one but the pointers merges leave behind."""
    return [ProfileFacts.of(p) for p in profiles if not p.merged_into]
