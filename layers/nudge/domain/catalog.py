"""The product catalog, built from the product properties seen in events (Segment's
e-commerce spec: `product_id`, `name`, `price`, `category`, `url`, `image_url`).

Every `Product Viewed`, `Product Added`, `Product Removed` event and every item of an
`Order Completed` event's `products` describes its product. Each attribute is kept from
the latest event (event time, the message id breaking ties) that carried it, so an event
without an image does not erase the image an earlier one gave, and the result does not
depend on the order events are read in. Values are capped as the profile's cart caps
them (nudge.domain.profile.product_attributes).

The train function merges what it read into the previous catalog (`Catalog.merge`):
products not seen in the window it reads keep their last description. Readers (templates,
the recommendations API) use `Catalog.item(product_id)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nudge.domain.profile import (
    CART_ATTRS,
    ORDER_COMPLETED,
    PRODUCT_ADDED,
    PRODUCT_REMOVED,
    PRODUCT_VIEWED,
    product_attributes,
    product_key,
)

CATALOG_VERSION = 1
ARTIFACT = "catalog"  # its name in the ModelStore (the train function saves it)
DESCRIBING_EVENTS = frozenset({PRODUCT_VIEWED, PRODUCT_ADDED, PRODUCT_REMOVED})


@dataclass(frozen=True)
class ProductSighting:
    """One description of a product by one event."""

    product_id: str
    attributes: dict[str, Any]
    t_ms: int
    message_id: str


_MAX_MEMO = 200_000  # product descriptions remembered (they repeat: the same product, again)
_memo: dict[tuple[tuple[str, type, Any], ...], dict[str, Any]] = {}


def _attributes(source: dict[str, Any]) -> dict[str, Any]:
    """product_attributes, remembered per distinct description (the caps cost a JSON
    encoding per value; a catalog of 10,000 products sees each description many times)."""
    try:
        # the type too: True, 1 and 1.0 are equal keys but not the same value
        key = tuple((k, type(source[k]), source[k]) for k in CART_ATTRS if k in source)
        hash(key)
    except TypeError:  # a list or an object among them: not kept anyway
        return product_attributes(source)
    found = _memo.get(key)
    if found is None:
        if len(_memo) >= _MAX_MEMO:
            _memo.clear()
        found = _memo[key] = product_attributes(source)
    return found


def sightings(
    event: str | None, properties: Mapping[str, Any], t_ms: int, message_id: str
) -> list[ProductSighting]:
    """The products one event describes (none for other events)."""
    props = dict(properties)
    if event in DESCRIBING_EVENTS:
        sources = [props]
    elif event == ORDER_COMPLETED:
        sources = [p for p in props.get("products") or [] if isinstance(p, dict)]
    else:
        return []
    out = []
    for source in sources:
        pid = product_key(source)
        if pid is None:
            continue
        out.append(ProductSighting(pid, _attributes(source), t_ms, message_id))
    return out


@dataclass
class Catalog:
    """`items`: product id → attributes; `stamps`: product id → attribute → [t_ms,
    message_id] of the event it was taken from (what a later merge compares)."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    stamps: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def item(self, product_id: str) -> dict[str, Any] | None:
        found = self.items.get(product_id)
        return {"product_id": product_id, **found} if found is not None else None

    def __len__(self) -> int:
        return len(self.items)

    def add(self, sighting: ProductSighting) -> None:
        pid = sighting.product_id
        attrs = self.items.setdefault(pid, {})
        stamps = self.stamps.setdefault(pid, {})
        stamp = [sighting.t_ms, sighting.message_id]
        for key, value in sighting.attributes.items():
            old = stamps.get(key)
            if old is None or (int(old[0]), str(old[1])) < (stamp[0], stamp[1]):
                attrs[key] = value
                stamps[key] = stamp

    def merge(self, sightings: Iterable[ProductSighting]) -> Catalog:
        for s in sightings:
            self.add(s)
        return self

    def absorb(self, other: Catalog) -> Catalog:
        """Merges another catalog in, attribute by attribute, the later stamp winning (the
        same result as merging the sightings each was built from)."""
        for pid, attrs in other.items.items():
            stamps = other.stamps.get(pid, {})
            for key, value in attrs.items():
                stamp = stamps.get(key) or [0, ""]
                self.add(ProductSighting(pid, {key: value}, int(stamp[0]), str(stamp[1])))
        return self

    def to_dict(self) -> dict[str, Any]:
        """What readers load (the artifact `catalog`): the items only."""
        return {"version": CATALOG_VERSION, "items": {k: self.items[k] for k in sorted(self.items)}}

    def stamps_dict(self) -> dict[str, Any]:
        """What the next merge needs besides (the artifact `catalog_stamps`, read by the
        train function only: about as large as the items again)."""
        return {
            "version": CATALOG_VERSION,
            "stamps": {k: self.stamps[k] for k in sorted(self.stamps)},
        }

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any] | None, stamps: Mapping[str, Any] | None = None
    ) -> Catalog:
        items = {str(k): dict(v) for k, v in ((doc or {}).get("items") or {}).items()}
        kept = {str(k): dict(v) for k, v in ((stamps or {}).get("stamps") or {}).items()}
        return cls(items=items, stamps=kept)


def describe(
    items: Iterable[Mapping[str, Any]],
    catalog: Mapping[str, Mapping[str, Any]] | None,
    *,
    key: str = "item_id",
) -> list[dict[str, Any]]:
    """Items (recommendations `{"item_id", "score"}`, cart entries `{"product_id", ...}`)
    with the catalog's attributes of each (`Catalog.items`: product id → attributes) added
    where the item has none of its own: what templates show (name, price, url,
    image_url). Without a catalog, the items as given."""
    out = []
    for item in items:
        row = dict(item)
        known = catalog.get(str(row.get(key))) if catalog is not None else None
        if known:
            for attr, value in known.items():
                row.setdefault(attr, value)
        out.append(row)
    return out
