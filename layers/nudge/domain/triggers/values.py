"""Reading values out of events and profiles: property paths, the comparison rules of
property filters, event matchers, key values and the small snapshots kept for a
message's context. Shared by the behaviors and the filter compiler.

Comparisons are lenient the way event data needs: a number and its text compare equal
(`"3" == 3`), booleans only equal booleans, and a value that cannot be compared never
satisfies an ordering operator. An absent value is MISSING (distinct from `None`, a
value sent as null).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nudge.domain.events import Event, product_id_of
from nudge.domain.sizes import clip
from nudge.domain.triggers.model import EventMatch, PropertyFilter

MISSING: Any = object()
SNAPSHOT_FIELDS = 8  # scalar properties kept in a snapshot
SNAPSHOT_TEXT = 200  # stored bytes kept of a text property in a snapshot
SNAPSHOT_NAME = 64  # stored bytes kept of a property's name in a snapshot
KEY_TEXT = 200  # stored bytes kept of a key value
KEY_PRODUCTS = 50  # items of a `products` list read for key values

ValuePred = Callable[[Any], bool]


def lookup(props: dict[str, Any], path: str) -> Any:
    """The value at a property path (`a.b.c` into nested mappings; a key holding dots
    is read as is first), MISSING when there is none."""
    if path in props:
        return props[path]
    if "." not in path:
        return MISSING
    value: Any = props
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_num(v: Any) -> float | None:
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a == b:
        return True
    if _is_num(a) != _is_num(b) and (_is_num(a) or _is_num(b)):
        x, y = _as_num(a), _as_num(b)
        return x is not None and x == y
    return False


def _cmp(a: Any, b: Any) -> int | None:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return None
    if _is_num(a) or _is_num(b):
        x, y = _as_num(a), _as_num(b)
        if x is None or y is None:
            return None
        return (x > y) - (x < y)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    return None


def _contains(value: Any, needle: Any) -> bool:
    if isinstance(value, str):
        return str(needle) in value
    if isinstance(value, (list, tuple)):
        return any(_eq(v, needle) for v in value)
    if isinstance(value, dict):
        return str(needle) in value
    return False


def _operator(op: str, x: Any) -> ValuePred:
    if op == "eq":
        return lambda v: v is not MISSING and _eq(v, x)
    if op == "ne":
        return lambda v: v is MISSING or not _eq(v, x)
    if op in ("in", "not_in"):
        options = tuple(x)

        def member(v: Any) -> bool:
            return v is not MISSING and any(_eq(v, o) for o in options)

        return member if op == "in" else (lambda v: not member(v))
    if op in ("gt", "gte", "lt", "lte"):
        accept = {"gt": (1,), "gte": (0, 1), "lt": (-1,), "lte": (-1, 0)}[op]
        return lambda v: v is not MISSING and _cmp(v, x) in accept
    if op == "exists":
        want = bool(x)
        return lambda v: (v is not MISSING and v is not None) == want
    if op == "contains":
        return lambda v: v is not MISSING and _contains(v, x)
    raise ValueError(f"unknown operator {op!r}")


def compile_filter(pf: PropertyFilter) -> ValuePred:
    """A predicate on a value (MISSING when absent) that holds when every operator does."""
    checks = [_operator(op, x) for op, x in pf.operators().items()]
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


class Matcher:
    """An event match: name(s) and property filters."""

    __slots__ = ("any_name", "names", "where")

    def __init__(self, m: EventMatch) -> None:
        self.any_name = "*" in m.event
        self.names = frozenset(m.event)
        self.where = [(path, compile_filter(pf)) for path, pf in m.where.items()]

    def __call__(self, ev: Event) -> bool:
        name = ev.event
        if name is None or (not self.any_name and name not in self.names):
            return False
        props = ev.properties
        return all(pred(lookup(props, path)) for path, pred in self.where)


def _key_text(v: Any) -> str | None:
    if v is None or v is MISSING or isinstance(v, (dict, list, bool)):
        return None
    text = clip(str(v), KEY_TEXT)
    return text or None


def _key_of(props: dict[str, Any], prop: str) -> Any:
    # `product_id` is read as the profile reads it (nudge.domain.events.product_id_of)
    return product_id_of(props) if prop == "product_id" else lookup(props, prop)


def key_values(props: dict[str, Any], prop: str) -> list[str]:
    """The values of a key property in an event: the property itself, else those of the
    `products` list (Segment's e-commerce spec), so an `Order Completed` correlates with
    the products it holds. `product_id` falls back to `sku` as the profile does."""
    text = _key_text(_key_of(props, prop))
    if text is not None:
        return [text]
    out: list[str] = []
    products = props.get("products")
    if isinstance(products, list):
        for item in products[:KEY_PRODUCTS]:
            if isinstance(item, dict):
                text = _key_text(_key_of(item, prop))
                if text is not None and text not in out:
                    out.append(text)
    return out


def product_of(props: dict[str, Any]) -> str | None:
    """The one product an event is about, None when it names none or several."""
    keys = key_values(props, "product_id")
    return keys[0] if len(keys) == 1 else None


def snapshot(props: dict[str, Any]) -> dict[str, Any]:
    """A small copy of an event's scalar properties, kept in state for a message's
    context: at most SNAPSHOT_FIELDS, names and texts cut to SNAPSHOT_NAME and
    SNAPSHOT_TEXT stored bytes (the profile item's bound counts every snapshot kept)."""
    out: dict[str, Any] = {}
    for k, v in props.items():
        if len(out) >= SNAPSHOT_FIELDS:
            break
        if not isinstance(v, (str, int, float, bool)):
            continue
        name = clip(k, SNAPSHOT_NAME)
        if name in out:
            continue  # two long names alike once cut
        out[name] = clip(v, SNAPSHOT_TEXT) if isinstance(v, str) else v
    return out


def event_context(name: str | None, props: dict[str, Any], product: str | None) -> dict[str, Any]:
    """A message's context from the event of its episode: its name and properties, and the
    episode's product with the event's scalar properties."""
    context: dict[str, Any] = {"event": name, "properties": dict(props)}
    if product is not None:
        context["product"] = {**snapshot(props), "product_id": product}
    return context
