"""The api function under mock_aws: health, the profile read with admin auth, and a fuzz
test that no request gives a 5xx (docs/api.md, issue 2 part 4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nudge import constants as C
from nudge.local.emulation import Resources

from tests.integration.conftest import (
    ADMIN_KEY,
    WRITE_KEY,
    AwsCalls,
    Fn,
    basic,
    bearer,
    body_of,
    drain,
    http,
)
from tests.integration.fuzz import api_gateway_requests, assert_no_5xx

PROFILE_KEYS = {
    "user_id",
    "traits",
    "first_seen",
    "last_seen",
    "event_counts",
    "segment",
    "rfm",
    "triggers",
}


def get(fn: Fn, path: str, auth: str | None = bearer()) -> dict[str, Any]:
    return fn(http("GET", path, headers={"authorization": auth} if auth else {}))


def send(ingest_fn: Fn, items: list[dict[str, Any]]) -> None:
    resp = ingest_fn(
        http("POST", "/v1/batch", {"batch": items}, headers={"authorization": basic()})
    )
    assert resp["statusCode"] == 200, resp


def assert_error(resp: dict[str, Any], status: int, code: str) -> None:
    assert resp["statusCode"] == status, resp
    body = body_of(resp)
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code


@pytest.fixture
def shopper(aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn) -> str:
    """A user with traits, page views and two orders, processed into state."""
    send(
        ingest_fn,
        [
            {
                "type": "identify",
                "userId": "shopper",
                "messageId": "i1",
                "timestamp": "2026-02-01T09:00:00Z",
                "traits": {"email": "s@example.com", "timezone": "Europe/Paris"},
            },
            {
                "type": "page",
                "userId": "shopper",
                "messageId": "p1",
                "timestamp": "2026-02-01T09:01:00Z",
                "name": "Home",
            },
            {
                "type": "track",
                "userId": "shopper",
                "messageId": "o1",
                "event": "Order Completed",
                "timestamp": "2026-02-01T09:05:00Z",
                "properties": {"revenue": 20.5, "products": [{"product_id": "p1"}]},
            },
            {
                "type": "track",
                "userId": "shopper",
                "messageId": "o2",
                "event": "Order Completed",
                "timestamp": "2026-02-20T09:00:00Z",
                "properties": {"total": 9.5},
            },
        ],
    )
    assert all(r["batchItemFailures"] == [] for r in drain(aws, process_fn))
    return "shopper"


def test_health_needs_no_auth(aws: Resources, api_fn: Fn) -> None:
    resp = get(api_fn, "/health", auth=None)
    assert resp["statusCode"] == 200
    assert body_of(resp) == {"status": "ok"}


def test_admin_reads_a_profile_with_the_spec_keys(api_fn: Fn, shopper: str) -> None:
    # when
    resp = get(api_fn, f"/v1/users/{shopper}")
    # then
    assert resp["statusCode"] == 200
    assert {k.lower(): v for k, v in resp["headers"].items()}["content-type"] == "application/json"
    body = body_of(resp)
    assert set(body) >= PROFILE_KEYS
    assert body["user_id"] == "shopper"
    assert body["traits"] == {"email": "s@example.com", "timezone": "Europe/Paris"}
    assert body["first_seen"] == "2026-02-01T09:00:00.000Z"
    assert body["last_seen"] == "2026-02-20T09:00:00.000Z"
    assert body["event_counts"] == {"Page Viewed": 1, "Order Completed": 2}
    assert body["segment"] is None
    # the clock fixture is at 2026-03-02T12:00Z: 10 whole days (and 3 hours) after the last order
    assert body["rfm"] == {"recency_days": 10, "frequency": 2, "monetary": 30.0, "score": None}
    assert isinstance(body["triggers"], dict)
    for state in body["triggers"].values():
        assert set(state) == {"fired", "last_fired_at", "armed_until"}


def test_a_write_key_cannot_read_profiles(api_fn: Fn, shopper: str) -> None:
    assert_error(get(api_fn, f"/v1/users/{shopper}", auth=bearer(WRITE_KEY)), 403, "forbidden")
    assert_error(get(api_fn, f"/v1/users/{shopper}", auth=basic(WRITE_KEY)), 403, "forbidden")


@pytest.mark.parametrize(
    "auth", [None, "Bearer ", "Bearer ak_wrong", "Token " + ADMIN_KEY, basic("ak_wrong")]
)
def test_no_or_unknown_key_is_401(aws: Resources, api_fn: Fn, auth: str | None) -> None:
    assert_error(get(api_fn, "/v1/users/anyone", auth=auth), 401, "unauthorized")


def test_unknown_user_is_404(aws: Resources, api_fn: Fn) -> None:
    assert_error(get(api_fn, "/v1/users/nobody"), 404, "not_found")


def test_unknown_route_is_a_json_404(aws: Resources, api_fn: Fn) -> None:
    assert_error(get(api_fn, "/v1/nothing-here"), 404, "not_found")


def test_url_encoded_user_ids_are_decoded(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, api_fn: Fn
) -> None:
    # given users whose ids need encoding in a path
    ids = ["jane doe@example.com", "a/b", "josé+1", "50%off"]
    send(
        ingest_fn,
        [
            {"type": "track", "userId": uid, "event": "A", "messageId": f"m{i}"}
            for i, uid in enumerate(ids)
        ],
    )
    drain(aws, process_fn)
    # when / then
    for uid in ids:
        resp = get(api_fn, "/v1/users/" + quote(uid, safe=""))
        assert resp["statusCode"] == 200, (uid, resp)
        assert body_of(resp)["user_id"] == uid


def test_an_anonymous_id_merged_into_a_user_reads_as_that_user(
    aws: Resources, clock: Any, ingest_fn: Fn, process_fn: Fn, api_fn: Fn
) -> None:
    send(ingest_fn, [{"type": "page", "anonymousId": "anon-5", "messageId": "p1"}])
    drain(aws, process_fn)
    send(
        ingest_fn,
        [{"type": "identify", "userId": "u5", "anonymousId": "anon-5", "messageId": "i1"}],
    )
    drain(aws, process_fn)
    body = body_of(get(api_fn, "/v1/users/anon-5"))
    assert body["user_id"] == "u5"
    assert body["event_counts"] == {"Page Viewed": 1}


def test_an_id_too_long_to_exist_is_404_without_a_lookup(
    aws: Resources, api_fn: Fn, aws_calls: AwsCalls
) -> None:
    # DynamoDB rejects partition keys over 2,048 bytes (a 5xx on AWS; moto lets it pass),
    # and ingest never stores ids over 256 characters
    assert_error(get(api_fn, "/v1/users/" + "x" * 3000), 404, "not_found")
    profiles = aws.tables[C.PROFILES]
    assert aws_calls.count("GetItem", "dynamodb", TableName=profiles) == 0


api_paths = st.one_of(
    st.just("/health"),
    st.builds(lambda s: "/v1/users/" + quote(s, safe=""), st.text(min_size=1, max_size=40)),
    st.builds(lambda s: "/v1/users/" + s, st.text(min_size=1, max_size=20)),
    st.sampled_from(["/v1/users/shopper", "/v1/users/", "/v1/users", "/", "/v1/users/shopper/x"]),
    st.builds(lambda s: "/" + s, st.text(max_size=30)),
)
api_auths = st.one_of(
    st.just(bearer()),
    st.just(bearer()),
    st.just(bearer(WRITE_KEY)),
    st.none(),
    st.just(basic(ADMIN_KEY)),
    st.builds(lambda s: "Bearer " + s, st.text(max_size=30)),
    st.text(max_size=30),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=api_gateway_requests(api_paths, api_auths))
def test_no_request_gives_the_api_function_a_5xx(
    api_fn: Fn, shopper: str, event: dict[str, Any]
) -> None:
    assert_no_5xx(api_fn(event))
