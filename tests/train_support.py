"""A small shop's history for the train tests of every tier: buyers who come back,
shoppers who add to cart and leave, one-visit visitors; as events, profiles folded from
them, and archive lines (duplicates included, as the archive is at least once)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nudge.domain.archive import ArchiveRecord
from nudge.domain.events import Event
from nudge.domain.profile import Profile

KINDS = ("buyer", "adder", "visitor")


def _event(user: str, name: str, at: datetime, props: dict[str, Any]) -> Event:
    return Event.model_validate(
        {
            "type": "track",
            "message_id": str(uuid.uuid4()),
            "user_id": user,
            "event": name,
            "properties": props,
            "timestamp": at,
            "received_at": at + timedelta(seconds=1),
        }
    )


def product(i: int) -> dict[str, Any]:
    return {
        "product_id": f"p{i}",
        "name": f"Product {i}",
        "price": 10.0 + i,
        "category": "shoes" if i % 2 else "hats",
        "url": f"https://shop.example/p{i}",
        "image_url": f"https://shop.example/p{i}.jpg",
    }


def user_events(user: str, kind: str, now: datetime, rng: random.Random) -> list[Event]:
    out: list[Event] = []
    if kind == "buyer":
        for visit in range(rng.randint(4, 7)):
            at = now - timedelta(days=visit * 3 + 1, hours=rng.randint(0, 5))
            items = [product(rng.randint(0, 9)) for _ in range(2)]
            for j, item in enumerate(items):
                out.append(_event(user, "Product Viewed", at + timedelta(minutes=j), item))
            out.append(_event(user, "Product Added", at + timedelta(minutes=3), items[0]))
            order = {"order_id": str(uuid.uuid4()), "revenue": 50.0 + rng.randint(0, 200),
                     "products": [{**items[0], "quantity": 1}]}  # fmt: skip
            out.append(_event(user, "Order Completed", at + timedelta(minutes=5), order))
    elif kind == "adder":
        for visit in range(rng.randint(2, 4)):
            at = now - timedelta(days=visit * 2 + 1, hours=rng.randint(0, 5))
            item = product(rng.randint(0, 9))
            out.append(_event(user, "Product Viewed", at, item))
            out.append(_event(user, "Product Added", at + timedelta(minutes=2), item))
    else:
        at = now - timedelta(days=1, hours=rng.randint(0, 5))
        out.append(_event(user, "Product Viewed", at, product(rng.randint(0, 9))))
    return out


@dataclass
class Shop:
    now: datetime
    events: dict[str, list[Event]] = field(default_factory=dict)  # user -> events

    @classmethod
    def make(cls, now: datetime, *, per_kind: int = 20, seed: int = 0, prefix: str = "") -> Shop:
        rng = random.Random(seed)
        shop = cls(now)
        for i in range(per_kind):
            for kind in KINDS:
                user = f"{prefix}{kind}-{i}"
                shop.events[user] = user_events(user, kind, now, rng)
        return shop

    def kind_of(self, user: str) -> str:
        return next(k for k in KINDS if f"{k}-" in user)

    def profiles(self) -> Iterator[Profile]:
        for user, events in self.events.items():
            p = Profile(user)
            p.apply(events)
            yield p

    def lines(self, *, duplicates: bool = True) -> list[bytes]:
        out = []
        for user, events in self.events.items():
            for i, ev in enumerate(events):
                line = ArchiveRecord.of(ev, user).line()
                out.append(line)
                if duplicates and i % 5 == 0:
                    out.append(line)  # archived twice: a retried batch
        return out
