"""One rule for the product an event names (nudge.domain.events.product_id_of): the
profile's cart and the trigger engine's keys read it alike, and so does the cart
behavior's own copy (nudge.domain.triggers.behaviors.cart), checked here until it
takes the rule from events too."""

from __future__ import annotations

from typing import Any

import pytest
from nudge.domain.events import normalize_event, product_id_of
from nudge.domain.profile import Profile
from nudge.domain.triggers.behaviors.cart import _cart_product
from nudge.domain.triggers.values import key_values, product_of

from tests.fakes import NOW

CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"product_id": "p1"}, "p1"),
    ({"sku": "s1"}, "s1"),
    ({"product_id": "p1", "sku": "s1"}, "p1"),
    ({"product_id": 42}, "42"),
    ({"product_id": None, "sku": "s1"}, None),  # a product_id that names none
    ({"product_id": {"id": "p1"}, "sku": "s1"}, None),
    ({"product_id": ""}, None),
    ({"name": "no id"}, None),
]


@pytest.mark.parametrize(("props", "expected"), CASES)
def test_every_reader_takes_the_product_id_falling_back_to_sku(
    props: dict[str, Any], expected: str | None
) -> None:
    raw = {"type": "track", "userId": "u1", "event": "Product Added", "properties": props}
    profile = Profile("u1")
    profile.apply([normalize_event(raw, kind=None, received_at=NOW)])

    assert product_id_of(props) == expected
    assert list(profile.cart) == ([expected] if expected else [])
    assert key_values(props, "product_id") == ([expected] if expected else [])
    assert product_of(props) == expected
    assert _cart_product(props) == expected


def test_an_order_s_products_are_read_by_the_same_rule() -> None:
    props = {"products": [{"product_id": "p1"}, {"sku": "s2"}, {"product_id": None, "sku": "x"}]}

    assert key_values(props, "product_id") == ["p1", "s2"]
    assert product_of(props) is None  # several products: none is *the* product
