"""Admission through the handlers under moto (docs/api.md, "Limits"): what the audit saw
answered 200 and then lost, or answered 500, is a 400 at the door; and what is accepted at
the limits is processed, its keys within DynamoDB's limits."""

from __future__ import annotations

import json
from typing import Any

import boto3
from nudge import constants as C
from nudge.adapters.scheduler import ref_of
from nudge.domain.events import MAX_ID_BYTES, MAX_PRODUCT_ID_BYTES
from nudge.local.emulation import Resources

from tests.integration.conftest import Fn, basic, bearer, body_of, drain, http, stored_state

EMOJI = "\U0001f600"


def post_raw(fn: Fn, path: str, raw: bytes, auth: str) -> dict[str, Any]:
    headers = {"content-type": "application/json", "authorization": auth}
    return fn(http("POST", path, headers=headers, raw=raw))


def assert_400(resp: dict[str, Any]) -> dict[str, Any]:
    assert resp["statusCode"] == 400, resp
    body = body_of(resp)
    assert set(body) == {"error", "message", "details"}
    return dict(body)


def test_the_audits_90_emoji_user_id_is_a_400_not_a_200_then_lost(
    aws: Resources, ingest_fn: Fn
) -> None:
    body = json.dumps({"userId": EMOJI * 90, "event": "Product Added"}).encode()
    err = assert_400(post_raw(ingest_fn, "/v1/track", body, basic()))
    assert err["details"][0]["index"] == 0
    assert err["details"][0]["message"].startswith("userId:")


def test_a_lone_surrogate_in_a_batchs_context_is_a_400_not_a_500(
    aws: Resources, ingest_fn: Fn
) -> None:
    raw = (
        b'{"context": {"page": {"title": "\\ud800"}}, "batch": ['
        + (b'{"type": "track", "userId": "u1", "event": "A"},' * 2)[:-1]
        + b"]}"
    )
    err = assert_400(post_raw(ingest_fn, "/v1/batch", raw, basic()))
    assert [d["index"] for d in err["details"]] == [0, 1]
    assert "batch context.page.title: invalid Unicode" in err["details"][0]["message"]


def test_nan_infinity_and_overflowing_numbers_are_a_400(aws: Resources, ingest_fn: Fn) -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        raw = b'{"userId": "u1", "event": "Order Completed", "properties": {"revenue": ' + literal
        err = assert_400(post_raw(ingest_fn, "/v1/track", raw + b"}}", basic()))
        assert err["details"][0]["message"].startswith("properties.revenue: not a finite number")


def test_an_id_and_a_product_id_at_their_limits_are_processed_with_keys_dynamodb_accepts(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn
) -> None:
    # given the longest ids admitted, in characters JSON's ASCII escapes make 3x longer
    user = EMOJI * (MAX_ID_BYTES // 4)
    product = EMOJI * (MAX_PRODUCT_ID_BYTES // 4)
    events = [
        {"type": "identify", "userId": user, "traits": {"email": "x@example.com"}},
        {
            "type": "track",
            "userId": user,
            "event": "Product Viewed",
            "properties": {"product_id": product},
        },
        {
            "type": "track",
            "userId": user,
            "event": "Product Added",
            "properties": {"product_id": product},
        },
    ]
    body = json.dumps({"batch": events}).encode()
    resp = post_raw(ingest_fn, "/v1/batch", body, basic())
    assert (resp["statusCode"], body_of(resp)) == (200, {"success": True})
    # when processed, arming the default triggers' timers (wake-ups keyed by user and key)
    responses = drain(aws, process_fn)
    # then nothing failed, the profile is stored, and every wake-up was written
    assert all(r["batchItemFailures"] == [] for r in responses)
    state = stored_state(aws, user)
    assert state is not None and list(state["cart"]) == [product]
    rows = boto3.client("dynamodb").scan(TableName=aws.tables[C.TIMERS])["Items"]
    assert rows and all(len(r["ref"]["S"].encode()) <= 1024 for r in rows)


def test_a_wake_ups_sort_key_fits_whatever_its_user_and_key() -> None:
    # readable while it fits DynamoDB's 1,024 bytes, a digest beyond
    assert ref_of("u1", "cart_abandonment", None) == '["u1","cart_abandonment",null]'
    long = ref_of(EMOJI * 64, "t" * 64, EMOJI * 200)
    assert long.startswith("#") and len(long) <= 1024
    assert long == ref_of(EMOJI * 64, "t" * 64, EMOJI * 200)  # stable: re-arming overwrites
    assert long != ref_of(EMOJI * 64, "t" * 64, EMOJI * 199)


def shopper(aws: Resources, ingest_fn: Fn, process_fn: Fn) -> None:
    body = json.dumps({"userId": "u1", "event": "Signed Up"}).encode()
    assert post_raw(ingest_fn, "/v1/track", body, basic())["statusCode"] == 200
    drain(aws, process_fn)


def test_the_devices_route_answers_400_to_bodies_that_are_not_json(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, api_fn: Fn
) -> None:
    shopper(aws, ingest_fn, process_fn)
    for raw in (
        b"{",
        b'{"platform": "fcm", "token": "\xff\xfe"}',  # not UTF-8
        b'{"platform": "fcm", "token": "t", "n": ' + b"9" * 5000 + b"}",
        b'{"platform": "fcm", "token": "\\ud800"}',
        json.dumps({"platform": "fcm", "token": "t" * 1025}).encode(),
    ):
        err = assert_400(post_raw(api_fn, "/v1/users/u1/devices", raw, bearer()))
        assert err["error"] in ("invalid_json", "validation_failed"), raw[:40]
    state = stored_state(aws, "u1")
    assert state is not None and "devices" not in state.get("extra", {})
