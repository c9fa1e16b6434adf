"""Admission at ingest (docs/api.md, "Limits"): what would fail later — a key over a store's
limit, a value that cannot be stored — is refused at the door with a 400 naming the index
and the rule, never answered 200 and then lost. And the profile keeps every field within
a cap, so that accepted events cannot push its item past DynamoDB's 400 KB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nudge.domain.errors import InvalidJsonError, ValidationFailedError
from nudge.domain.events import (
    MAX_ID_BYTES,
    MAX_PRODUCT_ID_BYTES,
    Event,
    normalize_event,
)
from nudge.domain.ingest import decode_body, parse_request
from nudge.domain.profile import (
    CART_TEXT_BYTES,
    CART_URL_BYTES,
    MAX_CART_BYTES,
    MAX_TRAIT_BYTES,
    MAX_TRAITS_BYTES,
    Profile,
)
from nudge.domain.sizes import clip, encode_document, stored_len

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EMOJI = "\U0001f600"  # 4 bytes of UTF-8, 12 of JSON's ASCII escapes


def norm(raw: dict[str, Any]) -> Event:
    return normalize_event({"type": "track", "event": "E", **raw}, kind=None, received_at=NOW)


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as err:
        norm(raw)
    return str(err.value)


def batch(*items: dict[str, Any], **top: Any) -> Any:
    return parse_request("batch", {"batch": list(items), **top}, received_at=NOW)


def item(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "E", "userId": "u1", **fields}


# ---- ids whose keys would not fit ---------------------------------------------------------------


def test_the_audits_90_emoji_user_id_is_refused_naming_the_field_and_the_limit() -> None:
    message = refused({"userId": EMOJI * 90})
    assert message.startswith("userId") and f"{MAX_ID_BYTES}-byte limit" in message


@pytest.mark.parametrize("field", ["userId", "anonymousId", "previousId", "groupId"])
def test_every_id_is_limited_in_utf8_bytes(field: str) -> None:
    base = {"userId": "u1", "type": "alias", "previousId": "p"}
    if field == "groupId":
        base["type"] = "group"
    at_limit = "é" * (MAX_ID_BYTES // 2)  # 2 bytes each
    assert normalize_event({**base, field: at_limit}, kind=None, received_at=NOW)
    with pytest.raises(ValueError, match=field):
        normalize_event({**base, field: at_limit + "x"}, kind=None, received_at=NOW)


@pytest.mark.parametrize(
    "props",
    [
        {"product_id": "p" * (MAX_PRODUCT_ID_BYTES + 1)},
        {"sku": EMOJI * 33},
        {"products": [{"product_id": "ok"}, {"product_id": "中" * 43}]},
    ],
)
def test_a_product_id_over_its_limit_is_refused_with_its_place(props: dict[str, Any]) -> None:
    message = refused({"userId": "u1", "properties": props})
    assert message.startswith("properties.") and "byte limit" in message
    if "products" in props:
        assert message.startswith("properties.products[1].product_id")


def test_a_product_id_at_its_limit_is_accepted() -> None:
    ev = norm({"userId": "u1", "properties": {"product_id": "中" * (MAX_PRODUCT_ID_BYTES // 3)}})
    assert ev.properties["product_id"]


# ---- values that cannot be stored ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["properties", "traits", "context"])
def test_a_number_that_is_not_finite_is_refused_anywhere(bad: float, where: str) -> None:
    message = refused({"userId": "u1", where: {"a": {"b": [1, bad]}}})
    assert message.startswith(f"{where}.a.b[1]: not a finite number")


def test_a_literal_that_overflows_to_infinity_is_refused_from_the_body() -> None:
    payload = decode_body(
        b'{"userId": "u1", "event": "Order Completed", "properties": {"revenue": 1e999}}',
        content_encoding=None,
        limit=32 * 1024,
    )
    with pytest.raises(ValidationFailedError) as err:
        parse_request("track", payload, received_at=NOW)
    assert err.value.details == [
        {
            "index": 0,
            "message": "properties.revenue: not a finite number (NaN and Infinity "
            "cannot be stored)",
        }
    ]


def test_an_integer_beyond_64_bits_is_refused_and_one_within_is_kept() -> None:
    assert "64 bits" in refused({"userId": "u1", "properties": {"n": 2**63}})
    assert norm({"userId": "u1", "properties": {"n": 2**63 - 1}}).properties["n"] == 2**63 - 1


def test_a_5000_digit_number_is_a_400_not_a_500() -> None:
    with pytest.raises(InvalidJsonError):
        decode_body(b'{"n": ' + b"9" * 5000 + b"}", content_encoding=None, limit=32 * 1024)


@pytest.mark.parametrize(
    "raw",
    [
        {"properties": {"name": "a\ud800b"}},
        {"properties": {"\udc00key": 1}},
        {"traits": {"x": ["ok", "\udfff"]}},
        {"context": {"page": {"title": "\ud83d"}}},
        {"messageId": "m-\ud800"},
    ],
)
def test_a_lone_surrogate_anywhere_in_an_event_is_refused(raw: dict[str, Any]) -> None:
    assert "unpaired surrogate" in refused({"userId": "u1", **raw})


@pytest.mark.parametrize("field", ["context", "integrations"])
def test_a_lone_surrogate_in_the_batch_context_is_a_400_naming_every_index(field: str) -> None:
    # given a batch whose top-level context (merged into every item) cannot be stored
    with pytest.raises(ValidationFailedError) as err:
        batch(item(), item(), **{field: {"library": {"name": "x\ud800"}}})
    # then every item is refused, by index, with the rule
    assert [d["index"] for d in err.value.details] == [0, 1]
    assert all(
        f"batch {field}.library.name: invalid Unicode" in d["message"] for d in err.value.details
    )


def test_a_field_name_over_its_limit_is_refused() -> None:
    assert "field name over 256 bytes" in refused({"userId": "u1", "properties": {"k" * 257: 1}})


def test_a_batch_keeps_its_valid_items_and_names_each_refused_one_and_its_rule() -> None:
    result = batch(
        item(userId=EMOJI * 90),
        item(properties={"revenue": float("inf")}),
        item(),
        item(properties={"title": "\ud800"}),
    )
    assert len(result.accepted) == 1
    details = result.response()["details"]
    assert [d["index"] for d in details] == [0, 1, 3]
    assert details[0]["message"].startswith("userId")
    assert details[1]["message"].startswith("properties.revenue: not a finite number")
    assert "unpaired surrogate" in details[2]["message"]


# ---- what reaches the profile: capped -----------------------------------------------------------


def event(name: str, minute: int, **fields: Any) -> Event:
    return Event(
        type=fields.pop("type", "track"),
        message_id=f"m-{name}-{minute}-{len(str(fields))}",
        user_id="u1",
        event=name if name else None,
        timestamp=NOW - timedelta(hours=1) + timedelta(minutes=minute),
        received_at=NOW,
        **fields,
    )


def test_revenue_that_would_overflow_keeps_the_profile_finite() -> None:
    # given two orders of the largest finite revenue JSON allows
    p = Profile("u1")
    p.apply([event("Order Completed", i, properties={"revenue": 1e308}) for i in range(2)])
    # then the profile's JSON holds no Infinity (it is refused by strict JSON readers)
    text = encode_document(p.to_dict()).decode()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the profile"))
    assert p.view(NOW)["rfm"]["monetary"] == 2e12  # each order counts up to MAX_AMOUNT


def test_a_30_kb_cart_item_name_is_cut_and_a_long_url_dropped() -> None:
    p = Profile("u1")
    props = {"product_id": "p1", "name": "ü" * 15_000, "url": "https://x/" + "a" * CART_URL_BYTES}
    p.apply([event("Product Added", 0, properties=props)])
    [entry] = p.cart_items()
    assert stored_len(entry["name"]) - 2 <= CART_TEXT_BYTES["name"]
    assert entry["name"] == "ü" * (CART_TEXT_BYTES["name"] // 2)
    assert "url" not in entry


def test_a_non_ascii_trait_is_cut_to_its_cap_in_stored_bytes() -> None:
    p = Profile("u1")
    p.apply([event("", 0, type="identify", traits={"bio": "中" * 5000, "n": 10**1100})])
    assert stored_len(p.traits["bio"]) - 2 <= MAX_TRAIT_BYTES
    assert p.traits["bio"] == "中" * (MAX_TRAIT_BYTES // 3)
    assert "n" not in p.traits  # a 1,101-digit number is no trait to keep


def test_all_traits_together_stay_within_their_cap() -> None:
    p = Profile("u1")
    traits = {f"t{i}": "x" * MAX_TRAIT_BYTES for i in range(100)}
    p.apply([event("", 0, type="identify", traits=traits)])
    assert stored_len(p.traits) <= MAX_TRAITS_BYTES
    # a later value of a trait still wins, cut to what fits
    p.apply([event("", 5, type="identify", traits={"t0": "new " + "y" * 2000})])
    assert p.traits["t0"].startswith("new ") and stored_len(p.traits) <= MAX_TRAITS_BYTES


def test_the_cart_stays_within_its_cap_and_keeps_the_latest_adds() -> None:
    p = Profile("u1")
    long = {"name": "n" * 300, "category": "c" * 200, "url": "u" * 1000, "image_url": "i" * 1000}
    p.apply(
        [
            event("Product Added", i, properties={"product_id": f"p{i:02d}", **long})
            for i in range(40)
        ]
    )
    assert stored_len(p.cart) <= MAX_CART_BYTES
    kept = [i["product_id"] for i in p.cart_items()]
    assert kept and kept[-1] == "p39" and "p00" not in kept


def test_clip_cuts_at_a_character_boundary_in_stored_bytes() -> None:
    assert clip("abc", 3) == "abc"
    assert clip(EMOJI * 10, 9) == EMOJI * 2  # 4 bytes each
    assert clip('"' * 10, 5) == '"' * 2  # each escaped as \"
    assert clip("\x01" * 10, 13) == "\x01" * 2  # each escaped as \u0001
