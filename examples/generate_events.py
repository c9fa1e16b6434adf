"""Writes examples/events.jsonl: one week of a small outdoor-gear shop, as Segment would
have sent it (`track`, `page` and `identify` calls; Segment's e-commerce events).

    .venv/bin/python examples/generate_events.py            # rewrites examples/events.jsonl
    .venv/bin/python examples/generate_events.py --start 2027-03-01 -o my-week.jsonl

The output is the same on every run: a seeded random generator and timestamps laid out
from a fixed Monday (2026-11-16, 00:00 UTC; `--start` picks another), never from today.
Thirty-six shoppers, each with a persona, so that replaying the file exercises every
default trigger of triggers/default.yaml:

- buyers browse, add to the cart and order within minutes (no trigger, or a dwell);
- abandoners add to the cart and leave (`cart_abandonment`); some come back days later
  and order; slow buyers add, leave for half an hour and come back to order (the cart
  was abandoned in between: one email, then the order);
- window shoppers view the same product in three sessions on different days and never
  buy it (`repeat_product_view`);
- lingerers stay over five minutes on a product page (`product_dwell_upsell`);
- every identified shopper has an email, so 48 hours without an event is
  `inactivity_winback`; a few visitors stay anonymous (`anonymousId` only) and some sign
  up at checkout (an `identify` carrying both ids merges their anonymous browsing).

Two ways to use the file, and what each does with its timestamps:

- `nudge triggers backtest --events examples/events.jsonl` judges every event at its own
  `timestamp` (the file is the past, replayed on a simulated clock): the report shows
  what the triggers would have done that week, message by message.
- `nudge replay examples/events.jsonl` sends the events as they are to a running nudge,
  which receives them now, a week or more after their timestamps. Conditions are judged
  in event time, so the profiles, counts and trigger episodes are those of that week;
  but an episode decided more than the trigger's `lateness` (1 h by default) after its
  moment counts without a message (docs/triggers.md, "Time, lateness and order"): a
  replay of last week fills profiles and trigger counts and sends nothing.

No event carries `sentAt`: nudge corrects `timestamp` for client clock skew with it
(`timestamp + receivedAt - sentAt`), which would move a replayed week to today.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SEED = 13
WEEK_START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
SHOP = "https://shop.example.com"
LIBRARY = {"name": "analytics.js", "version": "next-1.70.0"}
CURRENCY = "USD"

PRODUCT_FIELDS = ("product_id", "sku", "name", "category", "brand", "price")
CATALOG: list[dict[str, Any]] = [
    dict(zip(PRODUCT_FIELDS, row, strict=True))
    for row in [
        ("p-1001", "TS-01", "Trail Shoe", "Shoes", "Ridgeline", 89.0),
        ("p-1002", "HB-02", "Hiking Boot", "Shoes", "Ridgeline", 149.0),
        ("p-1003", "RJ-03", "Rain Jacket", "Jackets", "Northfold", 129.0),
        ("p-1004", "FL-04", "Fleece Layer", "Jackets", "Northfold", 59.0),
        ("p-1005", "DP-05", "Day Pack 24L", "Packs", "Cairn", 74.0),
        ("p-1006", "TP-06", "Trek Pack 45L", "Packs", "Cairn", 189.0),
        ("p-1007", "WB-07", "Water Bottle", "Accessories", "Cairn", 19.0),
        ("p-1008", "HL-08", "Headlamp", "Accessories", "Lumen", 34.0),
        ("p-1009", "TP-09", "Trekking Poles", "Accessories", "Ridgeline", 65.0),
        ("p-1010", "MS-10", "Merino Socks", "Apparel", "Northfold", 22.0),
        ("p-1011", "TT-11", "Two-Person Tent", "Camping", "Cairn", 299.0),
        ("p-1012", "SB-12", "Sleeping Bag", "Camping", "Cairn", 169.0),
    ]
]

TIMEZONES = [
    "America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London",
    "Europe/Berlin", "Europe/Paris", "Australia/Sydney",
]  # fmt: skip
FIRST = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe", "Arjun", "Bea", "Caleb", "Dana",
]  # fmt: skip
LAST = [
    "Lovelace", "Okafor", "Martin", "Patel", "Rossi", "Haddad", "Kim", "Laurent", "Silva",
    "Berg", "Adeyemi", "Walsh", "Cohen", "Rahman", "Nasser", "Iyer", "Novak", "Garcia",
    "Tanaka", "Murphy",
]  # fmt: skip

# One persona per shopper, in order (36): what each does during the week.
PERSONAS = (
    ["buyer"] * 8
    + ["abandoner"] * 6
    + ["slow_buyer"] * 3
    + ["window_shopper"] * 5
    + ["lingerer"] * 5
    + ["one_visit"] * 3
    + ["signup_buyer"] * 2
    + ["anonymous"] * 4
)


@dataclass
class Shopper:
    rng: random.Random
    user_id: str | None
    anonymous_id: str
    timezone: str
    traits: dict[str, Any]
    cart: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    identified: bool = False

    def _ids(self) -> dict[str, str]:
        if self.identified and self.user_id:
            return {"userId": self.user_id}
        return {"anonymousId": self.anonymous_id}

    def _emit(self, at: datetime, body: dict[str, Any]) -> None:
        event = {
            "messageId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            **body,
            **(body.get("_ids") or self._ids()),
            "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "context": {"library": LIBRARY, "timezone": self.timezone},
        }
        event.pop("_ids", None)
        self.events.append(event)

    def identify(self, at: datetime) -> None:
        assert self.user_id is not None
        ids = {"userId": self.user_id}
        if not self.identified:
            ids["anonymousId"] = self.anonymous_id  # the browsing before sign-up merges
        self.identified = True
        self._emit(at, {"type": "identify", "traits": self.traits, "_ids": ids})

    def page(self, at: datetime, name: str, path: str, category: str | None = None) -> None:
        body: dict[str, Any] = {
            "type": "page",
            "name": name,
            "properties": {"title": f"{name} | Ridge & Cairn", "url": SHOP + path, "path": path},
        }
        if category:
            body["category"] = category
        self._emit(at, body)

    def track(self, at: datetime, event: str, properties: dict[str, Any]) -> None:
        self._emit(at, {"type": "track", "event": event, "properties": properties})

    # ---- e-commerce, as Segment's spec names the events and their properties ----------
    def view(self, at: datetime, product: dict[str, Any]) -> None:
        path = f"/products/{product['sku'].lower()}"
        self.page(at, "Product", path, category=product["category"])
        self.track(
            at + timedelta(milliseconds=self.rng.randint(150, 900)),
            "Product Viewed",
            {**product, "currency": CURRENCY, "url": SHOP + path},
        )

    def add(self, at: datetime, product: dict[str, Any], quantity: int = 1) -> None:
        line = {**product, "quantity": quantity}
        self.cart.append(line)
        self.track(at, "Product Added", {"cart_id": self.cart_id, **line, "currency": CURRENCY})

    def remove(self, at: datetime, product: dict[str, Any]) -> None:
        line = next(p for p in self.cart if p["product_id"] == product["product_id"])
        self.cart.remove(line)
        self.track(at, "Product Removed", {"cart_id": self.cart_id, **line})

    def view_cart(self, at: datetime) -> None:
        self.page(at, "Cart", "/cart")
        self.track(
            at + timedelta(milliseconds=400),
            "Cart Viewed",
            {"cart_id": self.cart_id, "products": [dict(p) for p in self.cart]},
        )

    def checkout(self, at: datetime, order_id: str) -> timedelta:
        """Checkout Started, then Order Completed a few minutes later; returns the time
        the checkout took."""
        subtotal = round(sum(p["price"] * p["quantity"] for p in self.cart), 2)
        coupon = "WELCOME10" if self.rng.random() < 0.25 else None
        discount = round(subtotal * 0.1, 2) if coupon else 0.0
        revenue = round(subtotal - discount, 2)
        shipping = 0.0 if revenue >= 100 else 7.5
        tax = round(revenue * 0.08, 2)
        order = {
            "order_id": order_id,
            "checkout_id": f"chk-{order_id[4:]}",
            "affiliation": "Ridge & Cairn web shop",
            "subtotal": subtotal,
            "discount": discount,
            "revenue": revenue,
            "shipping": shipping,
            "tax": tax,
            "total": round(revenue + shipping + tax, 2),
            "currency": CURRENCY,
            "products": [dict(p) for p in self.cart],
        }
        if coupon:
            order["coupon"] = coupon
        self.page(at, "Checkout", "/checkout")
        started = {k: order[k] for k in ("order_id", "revenue", "shipping", "tax", "discount")}
        self.track(
            at + timedelta(milliseconds=300),
            "Checkout Started",
            {**started, "value": subtotal, "currency": CURRENCY, "products": order["products"]},
        )
        took = timedelta(seconds=self.rng.randint(90, 360))
        self.track(at + took, "Order Completed", order)
        self.cart = []
        return took

    @property
    def cart_id(self) -> str:
        return f"cart-{(self.user_id or self.anonymous_id)[-6:]}"


class Week:
    """Lays out each shopper's sessions in their own time zone's waking hours."""

    def __init__(self, start: datetime, seed: int) -> None:
        self.start = start
        self.rng = random.Random(seed)
        self.orders = 1000

    def order_id(self) -> str:
        self.orders += 1
        return f"ord-{self.orders}"

    def session_start(self, shopper: Shopper, day: int) -> datetime:
        """A time of day the shopper is awake, on the week's `day` in their time zone
        (moved a day when that falls outside the week)."""
        tz = ZoneInfo(shopper.timezone)
        date = (self.start + timedelta(days=day)).date()
        hour = self.rng.choice([8, 9, 12, 13, 18, 19, 20, 21])
        local = datetime(
            date.year, date.month, date.day, hour, self.rng.randint(0, 59),
            self.rng.randint(0, 59), tzinfo=tz,
        )  # fmt: skip
        at = local.astimezone(UTC)
        if at < self.start:
            at += timedelta(days=1)
        if at > self.start + timedelta(days=7, hours=-3):
            at -= timedelta(days=1)
        return at

    def gap(self, low: int = 20, high: int = 150) -> timedelta:
        return timedelta(seconds=self.rng.randint(low, high))

    def browse(
        self, s: Shopper, at: datetime, products: list[dict[str, Any]], *, leave: float = 0.0
    ) -> datetime:
        """A landing page, a category page, then product pages; with probability `leave`
        back to the category page before the session ends (else the session ends on a
        product page: the engine cannot tell a closed tab from a reader). Returns the
        last event's time."""
        s.page(at, "Home", "/")
        at += self.gap()
        category = products[0]["category"]
        s.page(at, "Category", f"/c/{category.lower()}", category=category)
        for product in products:
            at += self.gap()
            s.view(at, product)
        if self.rng.random() < leave:
            at += self.gap()
            s.page(at, "Category", f"/c/{category.lower()}", category=category)
        return at

    def pick(self, n: int) -> list[dict[str, Any]]:
        return self.rng.sample(CATALOG, n)

    # ---- personas ---------------------------------------------------------------------
    def buyer(self, s: Shopper) -> None:
        days = sorted(self.rng.sample(range(7), self.rng.choice([1, 2])))
        for i, day in enumerate(days):
            at = self.session_start(s, day)
            if i == 0:
                s.identify(at)
                at += self.gap(5, 20)
            wanted = self.pick(self.rng.randint(1, 3))
            at = self.browse(s, at, wanted)
            for product in wanted[: self.rng.randint(1, len(wanted))]:
                at += self.gap()
                s.add(at, product, quantity=self.rng.choice([1, 1, 1, 2]))
            at += self.gap()
            s.view_cart(at)
            s.checkout(at + self.gap(20, 90), self.order_id())

    def abandoner(self, s: Shopper) -> None:
        day = self.rng.randint(0, 3)
        at = self.session_start(s, day)
        s.identify(at)
        wanted = self.pick(3)
        at = self.browse(s, at + self.gap(5, 20), wanted)
        for product in wanted[:2]:
            at += self.gap()
            s.add(at, product)
        if self.rng.random() < 0.5:  # changes their mind about one
            at += self.gap()
            s.remove(at, wanted[1])
        s.view_cart(at + self.gap())
        if self.rng.random() < 0.5:  # back a few days later, buys
            at = self.session_start(s, day + self.rng.randint(2, 3))
            s.page(at, "Home", "/")
            if not s.cart:
                s.add(at + self.gap(), wanted[0])
            s.view_cart(at + self.gap(60, 120))
            s.checkout(at + self.gap(150, 240), self.order_id())

    def slow_buyer(self, s: Shopper) -> None:
        at = self.session_start(s, self.rng.randint(0, 4))
        s.identify(at)
        product = self.pick(1)[0]
        at = self.browse(s, at + self.gap(5, 20), [product])
        s.add(at + self.gap(), product)
        at += timedelta(minutes=self.rng.randint(25, 50))  # the cart waits: abandoned
        s.view_cart(at)
        s.checkout(at + self.gap(30, 90), self.order_id())

    def window_shopper(self, s: Shopper) -> None:
        favourite, *others = self.pick(3)
        for n, day in enumerate(sorted(self.rng.sample(range(6), 3))):
            at = self.session_start(s, day)
            if n == 0:
                s.identify(at)
                at += self.gap(5, 20)
            self.browse(s, at, [favourite, others[n % 2]] if n else [favourite], leave=0.8)

    def lingerer(self, s: Shopper) -> None:
        at = self.session_start(s, self.rng.randint(0, 5))
        s.identify(at)
        browsed = self.pick(2)
        at = self.browse(s, at + self.gap(5, 20), browsed)
        at += timedelta(minutes=self.rng.randint(6, 14))  # reading reviews, comparing
        if self.rng.random() < 0.5:
            s.add(at, browsed[-1])
            s.view_cart(at + self.gap())
            s.checkout(at + self.gap(150, 240), self.order_id())
        else:
            s.page(at, "Home", "/")

    def one_visit(self, s: Shopper) -> None:
        at = self.session_start(s, self.rng.randint(0, 2))
        s.identify(at)
        self.browse(s, at + self.gap(5, 20), self.pick(self.rng.randint(1, 2)), leave=0.7)

    def signup_buyer(self, s: Shopper) -> None:
        day = self.rng.randint(0, 4)
        wanted = self.pick(2)
        self.browse(s, self.session_start(s, day), wanted[:1], leave=1)  # anonymous visit
        at = self.session_start(s, day + 1)
        at = self.browse(s, at, wanted)
        s.add(at + self.gap(), wanted[1])
        at += self.gap(200, 300)
        s.identify(at)  # signs up at checkout
        s.view_cart(at + self.gap())
        s.checkout(at + self.gap(150, 240), self.order_id())

    def anonymous(self, s: Shopper) -> None:
        for day in sorted(self.rng.sample(range(7), self.rng.randint(1, 2))):
            self.browse(s, self.session_start(s, day), self.pick(self.rng.randint(1, 3)), leave=0.7)


def generate(start: datetime = WEEK_START, seed: int = SEED) -> list[dict[str, Any]]:
    week = Week(start, seed)
    rng = week.rng
    events: list[dict[str, Any]] = []
    for n, persona in enumerate(PERSONAS, start=1):
        first, last = FIRST[(n - 1) % len(FIRST)], LAST[(n * 7) % len(LAST)]
        tz = rng.choice(TIMEZONES)
        user_id = None if persona == "anonymous" else f"user_{n:03d}"
        shopper = Shopper(
            rng=rng,
            user_id=user_id,
            anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            timezone=tz,
            traits={
                "email": f"{first}.{last}@example.com".lower(),
                "firstName": first,
                "lastName": last,
                "timezone": tz,
                "createdAt": (start - timedelta(days=rng.randint(3, 400))).date().isoformat(),
            },
        )
        getattr(week, persona)(shopper)
        events.extend(shopper.events)
    events.sort(key=lambda e: (e["timestamp"], e["messageId"]))
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--start",
        default=WEEK_START.date().isoformat(),
        help="the week's first day, 00:00 UTC (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "-o", "--output", default=str(Path(__file__).with_name("events.jsonl")), metavar="FILE"
    )
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    events = generate(start, args.seed)
    with open(args.output, "w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
    users = {e.get("userId") or e["anonymousId"] for e in events}
    print(f"{args.output}: {len(events)} events, {len(users)} user and anonymous ids")


if __name__ == "__main__":
    main()
