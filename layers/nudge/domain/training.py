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

import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nudge.domain.archive import ArchiveRecord
from nudge.domain.catalog import Catalog, sightings
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
# Lines are compact JSON (nudge.domain.archive.ArchiveRecord.line): a cheap test on the
# bytes skips the lines no reader here needs before any JSON is parsed.
_EVENT_NAMES = {e: e for e in INTERACTION_EVENTS}  # one string object per name
_MARKER = re.compile(
    b"|".join(re.escape(f'"event":{json.dumps(e)}'.encode()) for e in sorted(_READ_EVENTS))
)

Interaction = tuple[str, str, str, int]  # user_id, item_id, event, t_ms


def _time_ms(value: Any) -> int | None:
    try:
        return to_ms(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except (TypeError, ValueError):
        return None


# One kept copy of an archived message: (received_at, user_id, event, t_ms, product ids)
_Kept = tuple[str, str, str, int, tuple[str, ...]]


@dataclass
class ArchiveExtract:
    """Feed it archive lines (`add_line`, duplicates and all), then read `interactions`,
    `catalog` and `abandonments` (`finish` first). Products are described into `catalog`
    as lines come (two copies of a message describe its products the same way, and the
    catalog's merge is order-free); only what the interactions need is kept per message,
    so memory grows with the window's product events, not with their properties."""

    lines: int = 0
    unreadable: int = 0  # lines read but not a record of this version (ArchiveRecord.from_line)
    kept: dict[str, _Kept] = field(default_factory=dict)  # message_id -> the copy kept
    interactions: list[Interaction] = field(default_factory=list)
    catalog: Catalog = field(default_factory=Catalog)
    abandonments: dict[str, int] = field(default_factory=dict)
    erased: frozenset[str] = frozenset()  # SHA-256 of erased ids: their events are skipped

    def add_line(self, line: bytes) -> None:
        self.lines += 1
        if _MARKER.search(line) is None:
            return
        try:
            record = ArchiveRecord.from_line(line)
        except ValueError:
            self.unreadable += 1
            return
        self.add_record(record)

    def add_record(self, record: ArchiveRecord) -> None:
        event, user, mid = record.event, record.user_id, record.message_id
        if record.type != "track" or event not in _READ_EVENTS or not user or not mid:
            return
        if self.erased and hashlib.sha256(user.encode()).hexdigest() in self.erased:
            return
        t = _time_ms(record.timestamp)
        if t is None:
            return
        props = record.properties
        self.catalog.merge(sightings(event, props, t, mid))
        if event == PRODUCT_REMOVED:
            return  # describes its product; no interaction
        received, user = record.received_at, sys.intern(user)
        old = self.kept.get(mid)
        if old is not None and (old[0], old[1]) <= (received, user):
            return
        if event == ORDER_COMPLETED:
            items = tuple(
                pid
                for p in props.get("products") or []
                if isinstance(p, dict) and (pid := product_key(p)) is not None
            )
        else:
            pid = product_key(props)
            items = (pid,) if pid is not None else ()
        self.kept[mid] = (received, user, _EVENT_NAMES[event], t, items)

    def finish(self, *, now_ms: int) -> ArchiveExtract:
        interactions: list[Interaction] = []
        carts: dict[str, list[tuple[int, bool]]] = {}  # user -> (t, is_order)
        for _received, user, event, t, items in self.kept.values():
            interactions.extend((user, pid, event, t) for pid in items)
            if event != PRODUCT_VIEWED:  # an add or an order
                carts.setdefault(user, []).append((t, event == ORDER_COMPLETED))
        interactions.sort(key=lambda i: (i[0], i[3], i[1], i[2]))
        self.interactions = interactions
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
    """The profiles training scores: every one but the pointers merges leave behind and
    the tombstones of erased users."""
    return [ProfileFacts.of(p) for p in profiles if not p.merged_into and not p.erased]
