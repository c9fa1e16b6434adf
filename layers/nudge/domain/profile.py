"""A user's behavioral state and the fold of events into it.

The fold is order-independent: every field is a commutative merge (sums, min/max,
last-writer-wins by event time with the message fingerprint as tie-break, interval
union for sessions), so events that arrive out of order give the same state, and a
message seen before (by fingerprint, kept for the dedup window) changes nothing.
The state stays bounded: every list and map is capped or compacted.

Dedup (docs/decisions.md D42): the profile keeps the fingerprints of the dedup window
itself, up to MAX_SEEN of them. Past that the user "spills": the fingerprints of the
earlier folds move out to the dedup store (one TTL'd item each, written before the
profile write that drops them, so that every fingerprint of the window is in one place
or the other) and the profile keeps those of its latest fold; until the window has
passed, the processor looks a fold's new fingerprints up there first (`spill_ids`).
"""

from __future__ import annotations

import base64
import json
import math
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from nudge.constants import DEDUP_WINDOW_SECONDS, SESSION_TIMEOUT_SECONDS
from nudge.domain.clock import from_ms, iso, to_ms
from nudge.domain.events import (
    MAX_PRODUCT_ID_BYTES,
    PAGE_VIEWED,
    SCREEN_VIEWED,
    Event,
    product_id_of,
)
from nudge.domain.sizes import clip, stored_len

# Segment e-commerce spec event names.
PRODUCT_VIEWED = "Product Viewed"
PRODUCT_ADDED = "Product Added"
PRODUCT_REMOVED = "Product Removed"
ORDER_COMPLETED = "Order Completed"
ACTIVITY_TYPES = frozenset({"track", "page", "screen", "identify", "group"})
COUNTED_TYPES = frozenset({"track", "page", "screen"})
PAGE_EVENTS = frozenset({PRODUCT_VIEWED, PAGE_VIEWED, SCREEN_VIEWED})

# Bounds that keep the hot item small (DynamoDB bills a write by the item's size) and
# under a stated size whatever the events hold (docs/api.md, "Limits"). Byte sizes are
# of the value as stored: UTF-8 JSON (nudge.domain.sizes).
# The profile's own fields (all but the trigger engine's `triggers`) stay under this
# whatever the events, every cap below reached (tests/unit/test_profile_bound.py)
MAX_FIELDS_BYTES = 192 * 1024
# and, with the default triggers, the whole document (DynamoDB's item limit: 400 KB)
PROFILE_BOUND_BYTES = 256 * 1024
MAX_EVENT_NAMES = 200
MAX_EVENT_NAME_BYTES = 128  # a longer name is counted under its first 128 bytes
MAX_TRAITS = 100
MAX_TRAIT_KEY_BYTES = 100
MAX_TRAIT_BYTES = 1024  # a text trait is cut to this; another value over it is not kept
MAX_TRAITS_BYTES = 32 * 1024  # all traits: past it a value is cut to fit, or not kept
_TRAIT_WORST = MAX_TRAIT_KEY_BYTES + MAX_TRAIT_BYTES + 6  # one trait, quotes and commas
# fingerprints a profile keeps itself: past it the user spills to the dedup store (D42)
MAX_SEEN = 256
# ids whose fingerprints in the dedup store a fold looks up: the profile's own and those
# of merged profiles that had spilled too, the newest (docs/identity.md, "Limits per profile")
MAX_SPILL_IDS = 4
MAX_OPEN_SESSIONS = 8
MAX_CART_ENTRIES = 50
MAX_CART_ADDS = 4  # adds kept per cart item, to sum its quantity in event time
# when each item was in the cart, whatever the arrival order (Profile.in_cart_at): the
# times of its newest adds and removals (`as`, `rs`) and of the user's newest orders
# (`cart_orders`), each list kept when it has more than one (else `add`, `rm`,
# `cart_cleared_at` hold the one)
MAX_CART_TIMES = 4
MAX_CART_ORDERS = 8
# a product that left the cart this long before the newest cart change is forgotten
CART_MEMORY_MS = 7 * 86_400_000
MAX_RECENT_ITEMS = 20
MAX_BOUGHT = 100
MAX_ANON_IDS = 10
# Identity (docs/identity.md): how many anonymous ids a profile may absorb, ever (merged
# profiles and ids linked before they were seen); past it a merge is refused and logged
MAX_MERGED_IDS = 100
MAX_UNMERGED_IDS = 5  # refused ids remembered, so a conflict is read and logged once
IDENTIFIED = "identified"  # an event arrived with userId == the profile's id
ANONYMOUS = "anonymous"  # created by events that named it only as an anonymousId
OTHER_EVENTS = "(other)"

ITEM_CODES = {PRODUCT_VIEWED: "v", PRODUCT_ADDED: "a", ORDER_COMPLETED: "p"}
CART_ATTRS = ("name", "price", "category", "image_url", "url")
# the most a cart attribute keeps: text is cut, a longer URL is dropped (a cut one would be
# a broken link), a number or flag over CART_VALUE_BYTES (a 300-digit integer) is dropped
CART_TEXT_BYTES = {"name": 256, "category": 128}
CART_URL_BYTES = 1024
CART_VALUE_BYTES = 32
MAX_CART_BYTES = 32 * 1024  # the whole cart: past it the entries changed longest ago go
# an entry at its caps: product id, attributes, MAX_CART_ADDS adds, MAX_CART_TIMES add and
# removal times, times, keys
_CART_ENTRY_WORST = 2 * MAX_PRODUCT_ID_BYTES + sum(CART_TEXT_BYTES.values()) + 3 * 1024 + 440
# amounts as the profile sums them: an order's revenue and a price are counted up to
# MAX_AMOUNT either way, a quantity up to MAX_QUANTITY (so no sum ever overflows to inf)
MAX_AMOUNT = 1e12
MAX_QUANTITY = 1_000_000


def _cart_adds(entry: dict[str, Any]) -> list[list[int]]:
    """The kept adds of a cart entry; an entry stored before `qa` existed has its quantity
    as one add at its last add time."""
    qa = entry.get("qa")
    if isinstance(qa, list):
        return [[int(t), int(q)] for t, q in qa]
    qty = int(entry.get("qty") or 0)
    return [[int(entry.get("add", 0)), qty]] if qty > 0 else []


def _times(entry: dict[str, Any], many: str, one: str) -> list[int]:
    """A cart entry's kept times of one kind, oldest first: the list `many` (`as` adds,
    `rs` removals) when there are several, else the newest, `one` (`add`, `rm`)."""
    kept = entry.get(many)
    if isinstance(kept, list) and kept:
        return [int(t) for t in kept]
    newest = int(entry.get(one) or 0)
    return [newest] if newest else []


def _newest_and_first_after(times: Iterable[int], cap: int, since: Iterable[int]) -> list[int]:
    """The newest `cap` of a set of times and the first at or after each of `since`,
    oldest first: what tells when a product left the cart after each add kept (a fifth
    removal does not hide the first one after the last add)."""
    every = sorted(set(times))
    kept = set(every[-cap:])
    for t in since:
        i = bisect_left(every, t)
        if i < len(every):
            kept.add(every[i])
    return sorted(kept)


def _note_times(
    entry: dict[str, Any], many: str, one: str, times: Iterable[int], after: int | None = None
) -> None:
    """Merges times into a cart entry's kept ones: `one` the newest, `many` the newest
    MAX_CART_TIMES and the first at or after `after` (for removals: the entry's last add),
    when there are several. Called with no times for removals when the last add moved."""
    new = [int(t) for t in times if t]
    since = [] if after is None else [after]
    kept = _newest_and_first_after([*_times(entry, many, one), *new], MAX_CART_TIMES, since)
    entry[one] = max([int(entry.get(one) or 0), *new])
    if len(kept) > 1:
        entry[many] = kept
    else:
        entry.pop(many, None)


def _in_cart_at(entry: dict[str, Any], at: int, ordered: int) -> bool:
    """Whether a cart entry's product was in the cart at `at`: its latest add by then came
    after the newest order by then (`ordered`) and no removal of it followed by then."""
    since = max((t for t in _times(entry, "as", "add") if t <= at), default=0)
    removed = any(since <= r <= at for r in _times(entry, "rs", "rm"))
    return since > ordered and not removed


def _cart_attrs(source: dict[str, Any]) -> dict[str, Any]:
    """The attributes an add keeps to describe its cart item, each within its cap."""
    out: dict[str, Any] = {}
    for k in CART_ATTRS:
        if k not in source:
            continue
        v = source[k]
        if isinstance(v, (dict, list)):
            continue
        if isinstance(v, str):
            if k in CART_TEXT_BYTES:
                v = clip(v, CART_TEXT_BYTES[k])
            elif stored_len(v) - 2 > (CART_URL_BYTES if k != "price" else CART_VALUE_BYTES):
                continue
        elif stored_len(v) > CART_VALUE_BYTES:
            continue
        out[k] = v
    return out


def product_attributes(source: dict[str, Any]) -> dict[str, Any]:
    """The product attributes (CART_ATTRS) of an event's properties or of an item of its
    `products`, each within its cap: what the cart and the catalog keep of a product."""
    return _cart_attrs(source)


def product_key(props: dict[str, Any]) -> str | None:
    """The product id as the profile, the trigger engine and the catalog key it."""
    return _product_id(props)


def _attrs_rank(attrs: dict[str, Any]) -> str:
    """A deterministic tie-break between two adds of one product at the same instant."""
    return json.dumps(_cart_attrs(attrs), sort_keys=True, default=str)


def _product_id(props: dict[str, Any]) -> str | None:
    pid = product_id_of(props)
    if pid is None:
        return None
    # as the trigger engine reads keys (200 characters); ingest refuses product ids over
    # MAX_PRODUCT_ID_BYTES, and the cut keeps any other event's within it too
    return clip(pid[:200], MAX_PRODUCT_ID_BYTES) or None


def _num(value: Any, default: float = 0.0, bound: float = MAX_AMOUNT) -> float:
    """A finite number from an event property within +-bound, else the default (never inf
    or NaN: 1e308 is a valid JSON number, and two of them sum to inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return default
    if not math.isfinite(number):
        return default
    return max(-bound, min(bound, number))


def order_revenue(props: dict[str, Any]) -> float:
    """Segment's `revenue`, else `total`, else the sum of the products' price x quantity."""
    for key in ("revenue", "total", "value"):
        if key in props:
            return _num(props[key])
    total = 0.0
    for p in props.get("products") or []:
        if isinstance(p, dict):
            quantity = _num(p.get("quantity"), 1.0, MAX_QUANTITY) or 1.0
            total += _num(p.get("price")) * quantity
    return max(-MAX_AMOUNT, min(MAX_AMOUNT, total))


def pack_seen(seen: dict[str, int]) -> str:
    """The dedup fingerprints as stored: `newest_minute:base64(8-byte fingerprints):
    base64(2-byte ages in minutes)`, in the order they were remembered (oldest first),
    10 bytes an entry instead of ~30 as a JSON object, so that the hot item (billed by
    its size on every write) stays small. Two blocks, so that each is packed by one C
    call (2,000 entries in well under a millisecond)."""
    if not seen:
        return ""
    minutes = seen.values()
    newest = max(minutes)
    fps = bytes.fromhex("".join(seen))
    # ages fit 2 bytes: the window (25 h) is 1,500 minutes; clamped for merged leftovers
    ages = array("H", [newest - m if newest - m < 0xFFFF else 0xFFFF for m in minutes])
    if sys.byteorder == "little":
        ages.byteswap()  # stored big-endian
    return f"{newest}:{base64.b64encode(fps).decode()}:{base64.b64encode(ages.tobytes()).decode()}"


def unpack_seen(value: Any) -> dict[str, int]:
    """The fingerprints in the order remembered (oldest first). Also reads the readable
    form (a mapping, as tests and older items hold it) and the single-block form of
    before (fingerprint and age interleaved, in fingerprint order: sorted by age here)."""
    if isinstance(value, dict):
        return _by_minute({str(k): int(v) for k, v in value.items()})
    if not value:
        return {}
    newest_text, _, rest = str(value).partition(":")
    newest = int(newest_text)
    fps_text, sep, ages_text = rest.partition(":")
    if sep:
        fps, ages = base64.b64decode(fps_text), base64.b64decode(ages_text)
        n = len(ages) // 2
        return {
            fps[8 * i : 8 * i + 8].hex(): newest - age
            for i, age in enumerate(struct.unpack(f">{n}H", ages))
        }
    raw = base64.b64decode(rest)
    return _by_minute(
        {
            raw[i : i + 8].hex(): newest - struct.unpack(">H", raw[i + 8 : i + 10])[0]
            for i in range(0, len(raw), 10)
        }
    )


def _by_minute(seen: dict[str, int]) -> dict[str, int]:
    return dict(sorted(seen.items(), key=lambda kv: kv[1]))


def _stamp(ev: Event) -> tuple[int, str]:
    return (to_ms(ev.timestamp), ev.fingerprint)


@dataclass
class Profile:
    user_id: str
    traits: dict[str, Any] = field(default_factory=dict)
    trait_at: dict[str, list[Any]] = field(default_factory=dict)  # key -> [ms, fingerprint]
    first_seen: int | None = None
    last_seen: int | None = None
    last_received: int | None = None
    event_counts: dict[str, int] = field(default_factory=dict)
    # sessions: compacted totals plus the recent intervals [start_ms, end_ms]
    sessions_closed: int = 0
    session_closed_s: float = 0.0
    session_horizon: int = 0
    open_sessions: list[list[int]] = field(default_factory=list)
    page_views: int = 0
    cart: dict[str, dict[str, Any]] = field(default_factory=dict)
    cart_cleared_at: int = 0  # the newest order: it empties the cart
    # the newest MAX_CART_ORDERS order times, oldest first, when there are several (else
    # cart_cleared_at is the one): when each product left the cart (left_cart_at)
    cart_orders: list[int] = field(default_factory=list)
    cart_adds: int = 0
    orders: int = 0
    revenue: float = 0.0
    first_order_at: int | None = None
    last_order_at: int | None = None
    bought: dict[str, int] = field(default_factory=dict)  # product -> ms of its first order
    recent_items: list[list[Any]] = field(default_factory=list)  # [item_id, code, ms]
    last_page: dict[str, Any] | None = None  # {"at", "fp", "event", "product_id"}
    anonymous_ids: list[str] = field(default_factory=list)  # the ids merged into this one
    merged_into: str | None = None
    # IDENTIFIED, ANONYMOUS, or None: stored before nudge kept it, and then counted as
    # identified (the safe side: such a profile is never merged into another)
    identity: str | None = None
    merges: int = 0  # anonymous ids merged into or linked to this profile, ever
    unmerged_ids: list[str] = field(default_factory=list)  # refused merges, the newest
    seen: dict[str, int] = field(default_factory=dict)  # fingerprint -> received minute
    # id -> the received minute of the newest fingerprint moved out to the dedup store
    # under that id (this profile's own, and those of the profiles merged into it)
    spilled: dict[str, int] = field(default_factory=dict)
    segment: str | None = None
    rfm_score: str | None = None
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)  # engine state
    extra: dict[str, Any] = field(default_factory=dict)  # room for later capabilities
    # not stored: the fingerprints (-> received minute) this fold moved out of `seen`,
    # which the store writes to the dedup store before the profile (and then clears)
    evicted: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    # ---- serialization -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field that is set, `seen` packed. Nested values are the
        profile's own, not copies (`dataclasses.asdict` deep-copies: 6x the time of the
        engine itself per event): serialize the result, do not change it."""
        state = self.__dict__  # every field is a plain attribute (no slots, no properties)
        # set: not None, 0, empty or False (every field's type is one of those)
        data = {name: v for name in _FIELD_NAMES if (v := state[name]) or name == "user_id"}
        if "seen" in data:
            data["seen"] = pack_seen(self.seen)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        known = cls.__dataclass_fields__
        fields = {k: v for k, v in data.items() if k in known and k != "evicted"}
        fields["seen"] = unpack_seen(fields.get("seen"))
        bought = fields.get("bought")
        if isinstance(bought, list):  # stored before order times were kept: long ago
            fields["bought"] = dict.fromkeys(bought, 0)
        return cls(**fields)

    # ---- dedup ---------------------------------------------------------------------
    def has_seen(self, ev: Event) -> bool:
        return ev.fingerprint in self.seen

    def _remember(self, ev: Event) -> None:
        self.seen[ev.fingerprint] = to_ms(ev.received_at) // 60000

    def dedup_horizon(self, events: Iterable[Event] = ()) -> int:
        """The oldest received minute still inside the dedup window, once `events` are in."""
        newest = max([self.last_received or 0, *(to_ms(ev.received_at) for ev in events)])
        return newest // 60000 - DEDUP_WINDOW_SECONDS // 60

    def spill_ids(self, horizon: int) -> list[str]:
        """The ids whose fingerprints in the dedup store may still be inside the window:
        where a fold's new fingerprints are looked up (none: the profile knows them all)."""
        return [uid for uid, minute in self.spilled.items() if minute >= horizon]

    def _prune_seen(self, fresh: int = 0) -> None:
        """Keeps the fingerprints of the dedup window. They are in the order remembered
        (by received minute, oldest first; the last `fresh` are this fold's), so those
        past the window go from the front, without a sort or a pass over the rest. Past
        MAX_SEEN the older ones move to `evicted` (the dedup store) and the profile keeps
        this fold's: never one of this fold's (were this write lost, a retry would find
        it in the dedup store and drop its event as a duplicate)."""
        seen = self.seen
        horizon = (self.last_received or 0) // 60000 - DEDUP_WINDOW_SECONDS // 60
        if self.spilled:
            self.spilled = {uid: m for uid, m in self.spilled.items() if m >= horizon}
        while seen:
            first = next(iter(seen))
            if seen[first] >= horizon:
                break
            del seen[first]
        if len(seen) <= MAX_SEEN:
            return
        while len(seen) > fresh:
            first = next(iter(seen))
            minute = seen.pop(first)
            if minute >= horizon:
                self.evicted[first] = minute
                self.spilled[self.user_id] = max(self.spilled.get(self.user_id, 0), minute)

    # ---- derived views ---------------------------------------------------------------
    ERASED: ClassVar[str] = "erased_at"  # in `extra` of a tombstone (nudge.domain.erase)

    @property
    def erased(self) -> bool:
        """A tombstone: the user was erased; events still in flight change nothing."""
        return self.ERASED in self.extra

    @property
    def identified(self) -> bool:
        """Whether the profile belongs to a known user: an event named its id as userId.
        A profile stored before the marker existed counts as identified."""
        return self.identity != ANONYMOUS

    @property
    def sessions(self) -> int:
        return self.sessions_closed + len(self.open_sessions)

    @property
    def session_seconds(self) -> float:
        return self.session_closed_s + sum((e - s) / 1000 for s, e in self.open_sessions)

    def cart_items(self) -> list[dict[str, Any]]:
        items = []
        for pid, entry in self.cart.items():
            if entry.get("add", 0) > max(entry.get("rm", 0), self.cart_cleared_at):
                items.append(
                    {
                        "product_id": pid,
                        **{k: v for k, v in entry.items() if k not in _CART_MARKS},
                    }
                )
        items.sort(key=lambda i: str(i["product_id"]))
        return items

    def cart_changed_at(self) -> int | None:
        """Event time of the last change to the current cart (None when it is empty)."""
        if not self.cart_items():
            return None
        changes = [
            t
            for e in self.cart.values()
            for t in (e.get("add", 0), e.get("rm", 0))
            if t > self.cart_cleared_at
        ]
        return max(changes) if changes else None

    def cart_memory_from(self) -> int:
        """The event time the cart remembers from: a product that left the cart before
        it is forgotten (CART_MEMORY_MS before the newest cart change or order)."""
        changes = (max(e.get("add", 0), e.get("rm", 0)) for e in self.cart.values())
        return int(max(self.cart_cleared_at, *changes, 0)) - CART_MEMORY_MS

    def _order_times(self) -> list[int]:
        """The orders the cart remembers, oldest first."""
        if self.cart_orders:
            return [int(t) for t in self.cart_orders]
        return [self.cart_cleared_at] if self.cart_cleared_at else []

    def _left(self, entry: dict[str, Any], orders: list[int] | None = None) -> int | None:
        """The first removal or order at or after the entry's last add (one at the same
        instant as the add empties it too), None if none; `orders`: _order_times()."""
        added = int(entry.get("add") or 0)
        orders = self._order_times() if orders is None else orders
        i = bisect_left(orders, added)
        leaves = [r for r in _times(entry, "rs", "rm") if r >= added][:1] + orders[i : i + 1]
        return min(leaves, default=None)

    def left_cart_at(self, pid: str) -> int | None:
        """When the product left the cart after its last add: the first removal of it or
        order since (None while it is in the cart, or if it was never added)."""
        entry = self.cart.get(pid)
        if not entry or not entry.get("add"):
            return None
        return self._left(entry)

    def cart_at(self, at: int) -> set[str]:
        """The products in the cart at `at` (event ms): each one's latest add by then was
        not followed by a removal or an order by then. In event time whatever the
        arrival order, within the cart's memory and its bounds (docs/triggers.md, "Time,
        lateness and order", rule 6)."""
        ordered = self._ordered_by(at)
        return {pid for pid, e in self.cart.items() if _in_cart_at(e, at, ordered)}

    def in_cart_at(self, pid: str, at: int) -> bool:
        """Whether the product was in the cart at `at` (as cart_at)."""
        entry = self.cart.get(pid)
        return entry is not None and _in_cart_at(entry, at, self._ordered_by(at))

    def _ordered_by(self, at: int) -> int:
        """The newest order the cart remembers at or before `at`, 0 if none."""
        orders = self._order_times()
        i = bisect_right(orders, at)
        return orders[i - 1] if i else 0

    def rfm(self, now: datetime) -> dict[str, Any]:
        recency = None
        if self.last_order_at is not None:
            recency = max(0, (to_ms(now) - self.last_order_at) // 86_400_000)
        return {
            "recency_days": recency,
            "frequency": self.orders,
            "monetary": round(self.revenue, 2),
            "score": self.rfm_score,
        }

    # ---- the fold --------------------------------------------------------------------
    def apply(self, events: Iterable[Event], spilled: Collection[str] = ()) -> list[Event]:
        """Folds events in; returns those that were new (not duplicates). `spilled`: the
        fingerprints of the events that the dedup store holds inside the window."""
        fresh: list[Event] = []
        taken: set[str] = set()
        for ev in sorted(events, key=_stamp):
            fp = ev.fingerprint
            if fp in self.seen or fp in taken or fp in spilled:
                continue
            self._apply_one(ev)
            fresh.append(ev)
            taken.add(fp)
        if fresh:
            for ev in sorted(fresh, key=lambda e: e.received_at):  # oldest first (_prune_seen)
                self._remember(ev)
            self._prune_seen(len(fresh))
        return fresh

    def _apply_one(self, ev: Event) -> None:
        t = to_ms(ev.timestamp)
        fp = ev.fingerprint
        received = to_ms(ev.received_at)
        self.last_received = max(self.last_received or received, received)
        if ev.user_id is not None and ev.user_id == self.user_id:
            self.identity = IDENTIFIED  # for good: an identified profile stays one

        if ev.traits:
            self._merge_traits(ev.traits, t, fp)
        if ev.type not in ACTIVITY_TYPES:
            return
        self.first_seen = t if self.first_seen is None else min(self.first_seen, t)
        self.last_seen = t if self.last_seen is None else max(self.last_seen, t)
        if ev.type not in COUNTED_TYPES or not ev.event:
            return
        self._add_to_session(t)
        name = clip(ev.event, MAX_EVENT_NAME_BYTES)
        if name not in self.event_counts and len(self.event_counts) >= MAX_EVENT_NAMES:
            name = OTHER_EVENTS
        self.event_counts[name] = self.event_counts.get(name, 0) + 1

        props = ev.properties
        if ev.event in PAGE_EVENTS:
            if ev.event != PRODUCT_VIEWED:
                self.page_views += 1
            if self.last_page is None or (t, fp) > (self.last_page["at"], self.last_page["fp"]):
                self.last_page = {
                    "at": t,
                    "fp": fp,
                    "event": ev.event,
                    "product_id": _product_id(props) if ev.event == PRODUCT_VIEWED else None,
                }
        if ev.event == PRODUCT_ADDED:
            self._cart_add(props, t)
        elif ev.event == PRODUCT_REMOVED:
            self._cart_remove(props, t)
        elif ev.event == ORDER_COMPLETED:
            self._order(props, t)
        code = ITEM_CODES.get(ev.event)
        if code:
            pids = [_product_id(props)]
            if ev.event == ORDER_COMPLETED:
                pids = [_product_id(p) for p in props.get("products") or [] if isinstance(p, dict)]
            for pid in pids:
                if pid:
                    self._recent(pid, code, t)

    def _add_anonymous_id(self, anon: str) -> None:
        if anon not in self.anonymous_ids:
            self.anonymous_ids = ([*self.anonymous_ids, anon])[-MAX_ANON_IDS:]

    def link_anonymous_id(self, anon: str) -> None:
        """Records an anonymous id merged into (or linked to) this profile, counted
        against MAX_MERGED_IDS."""
        if anon not in self.anonymous_ids:
            self.merges += 1
        self._add_anonymous_id(anon)

    def refuse_id(self, other: str) -> None:
        """Remembers an id whose merge was refused (the newest MAX_UNMERGED_IDS)."""
        kept = [i for i in self.unmerged_ids if i != other]
        self.unmerged_ids = [*kept, other][-MAX_UNMERGED_IDS:]

    def _merge_traits(self, traits: dict[str, Any], t: int, fp: str) -> None:
        for key, value in traits.items():
            self._set_trait(clip(str(key)[:100], MAX_TRAIT_KEY_BYTES), value, [t, fp])

    def _set_trait(self, key: str, value: Any, at: list[Any]) -> None:
        """Last writer wins by (event time, fingerprint), within the caps: MAX_TRAITS
        traits, each value MAX_TRAIT_BYTES (text is cut, another value over it is not
        kept), all of them MAX_TRAITS_BYTES (a value that would pass it is cut to fit, or
        not kept)."""
        prior = self.trait_at.get(key)
        if prior is not None and list(at) <= list(prior):
            return
        if key not in self.traits and len(self.traits) >= MAX_TRAITS:
            return
        room = self._trait_room(key) - 2  # text: without its quotes
        if isinstance(value, str):
            if room < 0:
                return
            value = clip(value, room)
        elif stored_len(value) > room:
            return
        self.traits[key] = value
        self.trait_at[key] = list(at)

    def _trait_room(self, key: str) -> int:
        """The bytes a value of `key` may take: MAX_TRAIT_BYTES, less once the traits
        near MAX_TRAITS_BYTES (measured only then: most profiles hold a few)."""
        if (len(self.traits) + 1) * _TRAIT_WORST <= MAX_TRAITS_BYTES:
            return MAX_TRAIT_BYTES + 2
        others = stored_len({k: v for k, v in self.traits.items() if k != key})
        # the others, then `,"key":value`
        return min(MAX_TRAIT_BYTES + 2, MAX_TRAITS_BYTES - others - stored_len(key) - 2)

    def _add_to_session(self, t: int) -> None:
        self._add_session_interval(t, t)

    def _add_session_interval(self, start: int, end: int) -> None:
        """Adds activity spanning [start, end] (one event: start == end); sessions are
        the union of activity with gaps of at most the timeout."""
        if end < self.session_horizon:
            return  # inside compacted history: already counted there
        gap = SESSION_TIMEOUT_SECONDS * 1000
        keep = [list(iv) for iv in self.open_sessions]
        # merge every interval within the timeout, until stable (a widened one may
        # now touch a neighbour)
        merged = True
        while merged:
            merged = False
            rest = []
            for s, e in keep:
                if s - gap <= end and start <= e + gap:
                    start, end, merged = min(start, s), max(end, e), True
                else:
                    rest.append([s, e])
            keep = rest
        keep.append([start, end])
        keep.sort()
        while len(keep) > MAX_OPEN_SESSIONS:
            s, e = keep.pop(0)
            self.sessions_closed += 1
            self.session_closed_s += (e - s) / 1000
            self.session_horizon = max(self.session_horizon, e + gap)
        self.open_sessions = keep

    def _cart_add(self, props: dict[str, Any], t: int) -> None:
        pid = _product_id(props)
        if pid is None:
            return
        self.cart_adds += 1
        entry = self.cart.setdefault(pid, {"add": 0, "rm": 0, "qty": 0})
        quantity = max(1, int(_num(props.get("quantity"), 1, MAX_QUANTITY)))
        entry["qa"] = [*_cart_adds(entry), [t, quantity]]
        self._describe_cart_item(entry, _cart_attrs(props), t)
        _note_times(entry, "as", "add", [t])
        _note_times(entry, "rs", "rm", [], after=int(entry["add"]))
        self._requantify(entry)
        self._prune_cart()

    def _requantify(self, entry: dict[str, Any]) -> None:
        """The quantity is the sum of the adds after the product's last removal and the
        last order, whatever order they arrived in: the adds of the current cart are kept
        (`qa`: [[event ms, quantity], ...], the newest MAX_CART_ADDS, older ones folded
        into the oldest kept)."""
        floor = max(entry.get("rm", 0), self.cart_cleared_at)
        adds = sorted(a for a in _cart_adds(entry) if a[0] > floor)
        while len(adds) > MAX_CART_ADDS:
            (_, q0), (t1, q1) = adds[0], adds[1]
            adds[:2] = [[t1, q0 + q1]]
        if adds:
            entry["qa"] = adds
        else:
            entry.pop("qa", None)
        entry["qty"] = int(sum(q for _, q in adds))

    @staticmethod
    def _describe_cart_item(entry: dict[str, Any], attrs: dict[str, Any], t: int) -> None:
        """The latest add (by event time) describes the item, whatever the arrival order."""
        if (t, _attrs_rank(attrs)) > (entry.get("add", 0), _attrs_rank(entry)):
            for key in CART_ATTRS:
                entry.pop(key, None)
            entry.update(attrs)

    def _cart_remove(self, props: dict[str, Any], t: int) -> None:
        pid = _product_id(props)
        if pid is None:
            return
        entry = self.cart.setdefault(pid, {"add": 0, "rm": 0, "qty": 0})
        _note_times(entry, "rs", "rm", [t], after=int(entry.get("add") or 0))
        self._requantify(entry)
        self._prune_cart()

    def _order(self, props: dict[str, Any], t: int) -> None:
        self.orders += 1
        self.revenue = round(self.revenue + order_revenue(props), 6)
        self.first_order_at = t if self.first_order_at is None else min(self.first_order_at, t)
        self.last_order_at = t if self.last_order_at is None else max(self.last_order_at, t)
        self._note_orders([t])
        if t > self.cart_cleared_at:
            self.cart_cleared_at = t
            for entry in self.cart.values():
                self._requantify(entry)
        for p in props.get("products") or []:
            pid = _product_id(p) if isinstance(p, dict) else None
            if pid:
                self._bought(pid, t)
        self._prune_cart()

    def _note_orders(self, times: Iterable[int] = ()) -> None:
        """Merges order times into the kept ones (before cart_cleared_at moves: it is the
        one kept while there is one): the newest MAX_CART_ORDERS, and the first at or
        after each cart item's last add (when it left the cart)."""
        every = sorted({*self._order_times(), *(int(t) for t in times if t)})
        if len(every) > MAX_CART_ORDERS:  # else every one is kept
            adds = [int(e["add"]) for e in self.cart.values() if e.get("add")]
            every = _newest_and_first_after(every, MAX_CART_ORDERS, adds)
        kept = every
        self.cart_orders = kept if len(kept) > 1 else []

    def _bought(self, pid: str, t: int) -> None:
        """Records a product's order at `t`: the earliest is kept, whatever the arrival
        order, so that `bought` can be read at a moment in event time."""
        first = self.bought.get(pid)
        if first is None or t < first:
            self.bought[pid] = t
            if len(self.bought) > MAX_BOUGHT:  # the products bought longest ago go
                ranked = sorted(self.bought.items(), key=lambda kv: (kv[1], kv[0]))
                self.bought = dict(ranked[-MAX_BOUGHT:])

    def bought_by(self, pid: str, at: int | None) -> bool:
        """Whether the product had been ordered before `at` (ms; an order at the same
        instant is not before it), or at all so far when `at` is None."""
        first = self.bought.get(pid)
        return first is not None and (at is None or first < at)

    def _prune_cart(self) -> None:
        self._forget_cart_entries()
        self._note_orders()  # the orders kept for the items still in the cart's memory

    def _forget_cart_entries(self) -> None:
        # products that left the cart (removed, or bought) more than a week before its
        # latest change are kept no longer: only a very late event could still need them.
        # An entry's age is from its last change or from when it left the cart (an order
        # after its last add): the add that kept a page from counting as a dwell is
        # remembered a week after the product left (docs/triggers.md)
        orders = self._order_times()
        cleared = self.cart_cleared_at

        def last(e: dict[str, Any]) -> int:
            changed = int(max(e.get("add", 0), e.get("rm", 0)))
            left = self._left(e, orders) if e.get("add") else None
            return max(changed, left or 0)

        if self.cart:
            horizon = self.cart_memory_from()
            self.cart = {
                pid: e
                for pid, e in self.cart.items()
                if max(e.get("add", 0), e.get("rm", 0)) >= horizon  # no need to ask when it left
                or e.get("add", 0) > max(e.get("rm", 0), cleared)
                or last(e) >= horizon
            }
        if len(self.cart) <= MAX_CART_ENTRIES and (
            len(self.cart) * _CART_ENTRY_WORST <= MAX_CART_BYTES
            or stored_len(self.cart) + 1 <= MAX_CART_BYTES  # measured only when it may be over
        ):
            return
        # over the count or the bytes: the entries changed longest ago go
        ranked = sorted(self.cart.items(), key=lambda kv: (last(kv[1]), kv[0]))
        ranked = ranked[-MAX_CART_ENTRIES:]
        sizes = [stored_len(pid) + stored_len(e) + 2 for pid, e in ranked]
        total = sum(sizes) + 2
        drop = 0
        while total > MAX_CART_BYTES and drop < len(ranked):
            total -= sizes[drop]
            drop += 1
        self.cart = dict(ranked[drop:])

    def _recent(self, pid: str, code: str, t: int) -> None:
        items = [i for i in self.recent_items if not (i[0] == pid and i[1] == code and i[2] >= t)]
        if len(items) != len(self.recent_items):
            return  # a later one of the same kind is already there
        items = [i for i in items if not (i[0] == pid and i[1] == code)]
        items.append([pid, code, t])
        items.sort(key=lambda i: (i[2], i[0], i[1]), reverse=True)
        self.recent_items = items[:MAX_RECENT_ITEMS]

    # ---- identity --------------------------------------------------------------------
    def absorb(self, other: Profile) -> None:
        """Merges another profile of the same person (alias, identify of an anonymous id).
        Whether the merge is allowed is the identity rules' to decide (nudge.domain.
        processing, docs/identity.md); this is the fold of two histories into one."""
        if other.identity == IDENTIFIED:
            self.identity = IDENTIFIED
        for key, value in other.traits.items():
            self._set_trait(key, value, other.trait_at.get(key, [0, ""]))
        for attr in ("first_seen", "first_order_at"):
            a, b = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, b if a is None else a if b is None else min(a, b))
        for attr in ("last_seen", "last_order_at", "last_received"):
            a, b = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, b if a is None else a if b is None else max(a, b))
        for name, n in other.event_counts.items():
            self.event_counts[name] = self.event_counts.get(name, 0) + n
        self.sessions_closed += other.sessions_closed
        self.session_closed_s += other.session_closed_s
        for s, e in other.open_sessions:
            self._add_session_interval(s, e)
        self.page_views += other.page_views
        self.cart_adds += other.cart_adds
        self.orders += other.orders
        self.revenue = round(self.revenue + other.revenue, 6)
        self._note_orders(other._order_times())
        self.cart_cleared_at = max(self.cart_cleared_at, other.cart_cleared_at)
        for pid, entry in other.cart.items():
            mine = self.cart.setdefault(pid, {"add": 0, "rm": 0, "qty": 0})
            # every add of both: an event is folded into one profile only (the other's
            # events are its own), so two adds at the same ms are two adds, as the fold
            # of both histories counts them
            adds = _cart_adds(mine) + _cart_adds(entry)
            self._describe_cart_item(mine, _cart_attrs(entry), entry.get("add", 0))
            _note_times(mine, "as", "add", _times(entry, "as", "add"))
            _note_times(mine, "rs", "rm", _times(entry, "rs", "rm"), after=int(mine["add"]))
            mine["qa"] = adds
            self._requantify(mine)
        for entry in self.cart.values():
            self._requantify(entry)  # the other's order may have cleared some of mine
        self._prune_cart()
        for pid, t in other.bought.items():
            self._bought(pid, t)
        for pid, code, t in other.recent_items:
            self._recent(pid, code, t)
        if other.last_page and (
            self.last_page is None
            or (other.last_page["at"], other.last_page["fp"])
            > (self.last_page["at"], self.last_page["fp"])
        ):
            self.last_page = dict(other.last_page)
        for anon in [*other.anonymous_ids, other.user_id]:
            if anon != self.user_id:
                self._add_anonymous_id(anon)
        self.merges += other.merges
        for uid, minute in other.spilled.items():  # its fingerprints in the dedup store
            self.spilled[uid] = max(self.spilled.get(uid, 0), minute)
        if len(self.spilled) > MAX_SPILL_IDS:  # its own, and the newest of the others
            own = {k: v for k, v in self.spilled.items() if k == self.user_id}
            others = sorted(
                ((k, v) for k, v in self.spilled.items() if k != self.user_id),
                key=lambda kv: (kv[1], kv[0]),
            )
            self.spilled = {**dict(others[len(own) - MAX_SPILL_IDS :]), **own}
        self.seen = _by_minute({**other.seen, **self.seen})
        self._prune_seen()

    # ---- the public view (GET /v1/users/{id}) ------------------------------------------
    def view(self, now: datetime) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "traits": self.traits,
            "first_seen": iso(from_ms(self.first_seen)) if self.first_seen is not None else None,
            "last_seen": iso(from_ms(self.last_seen)) if self.last_seen is not None else None,
            "event_counts": self.event_counts,
            "segment": self.segment,
            "rfm": self.rfm(now),
            "triggers": {
                tid: {
                    "fired": st.get("fired", 0),
                    "last_fired_at": iso(from_ms(st["last_fired_at"]))
                    if st.get("last_fired_at")
                    else None,
                    "armed_until": iso(from_ms(st["armed_until"]))
                    if st.get("armed_until")
                    else None,
                }
                for tid, st in sorted(self.triggers.items())
            },
            "anonymous_ids": self.anonymous_ids,
            "sessions": {
                "count": self.sessions,
                "duration_seconds": round(self.session_seconds, 3),
            },
            "page_views": self.page_views,
            "cart": self.cart_items(),
            "orders": {"count": self.orders, "revenue": round(self.revenue, 2)},
            "recent_items": [
                {
                    "item_id": i,
                    "event": {v: k for k, v in ITEM_CODES.items()}[c],
                    "at": iso(from_ms(t)),
                }
                for i, c, t in self.recent_items
            ],
        }


_FIELD_NAMES = tuple(f.name for f in fields(Profile) if f.name != "evicted")
_CART_MARKS = frozenset({"add", "as", "rm", "rs", "qa"})  # a cart entry's times, not its item
