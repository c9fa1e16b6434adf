"""The ingest function under mock_aws, invoked with API Gateway HTTP API (payload 2.0)
events: every Segment endpoint, auth, limits, gzip, partial batches, the rate limit, and
a fuzz test that no input gives a 5xx (docs/api.md, issue 2 part 2)."""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nudge import constants as C
from nudge.adapters.queues import message_group_id
from nudge.domain.events import Event
from nudge.domain.messages import parse_message
from nudge.local.emulation import Resources

from tests.integration.conftest import (
    ADMIN_KEY,
    WRITE_KEY,
    Fn,
    basic,
    body_of,
    http,
    queue_messages,
)
from tests.integration.fuzz import (
    EDGE_BODIES,
    api_gateway_requests,
    assert_no_5xx,
    segment_requests,
)

# SQS: a MessageGroupId is 1-128 ASCII letters, digits and punctuation
SQS_GROUP_ID = re.compile(r"[\x21-\x7e]{1,128}")


def post(
    fn: Fn,
    path: str,
    payload: Any = None,
    *,
    auth: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> dict[str, Any]:
    hdrs = {"content-type": "application/json", **(headers or {})}
    if auth is not None:
        hdrs["authorization"] = auth
    return fn(http("POST", path, payload, headers=hdrs, raw=raw))


def queued(res: Resources) -> list[tuple[str, Event]]:
    """(MessageGroupId, event) of every event on the events queue (a message holds the
    events of one user and request)."""
    return [
        (m["Attributes"]["MessageGroupId"], ev)
        for m in queue_messages(res, C.EVENTS_QUEUE)
        for ev in parse_message(m["Body"]).events
    ]


def test_a_batch_is_one_message_per_user_with_their_events_in_order(
    aws: Resources, ingest_fn: Fn
) -> None:
    items = [
        {"type": "track", "userId": u, "event": f"E{i}", "messageId": f"m{i}"}
        for i, u in enumerate(["u1", "u2", "u1", "u1", "u2"])
    ]
    resp = post(ingest_fn, "/v1/batch", {"batch": items}, auth=basic())
    assert resp["statusCode"] == 200
    messages = queue_messages(aws, C.EVENTS_QUEUE)
    assert len(messages) == 2
    by_group = {m["Attributes"]["MessageGroupId"]: parse_message(m["Body"]) for m in messages}
    assert [ev.message_id for ev in by_group["u1"].events] == ["m0", "m2", "m3"]
    assert [ev.message_id for ev in by_group["u2"].events] == ["m1", "m4"]
    assert all(json.loads(m["Body"])["v"] == 1 for m in messages)


def assert_error(resp: dict[str, Any], status: int, code: str | None = None) -> dict[str, Any]:
    assert resp["statusCode"] == status, resp
    body = body_of(resp)
    assert set(body) == {"error", "message", "details"}
    assert body["message"]
    if code:
        assert body["error"] == code
    return body


SINGLE = {
    "track": {"userId": "u1", "event": "Product Viewed", "properties": {"product_id": "p1"}},
    "identify": {"userId": "u1", "traits": {"email": "a@example.com"}},
    "page": {"userId": "u1", "name": "Home"},
    "screen": {"anonymousId": "anon-1", "name": "Settings"},
    "group": {"userId": "u1", "groupId": "acme"},
    "alias": {"userId": "u1", "previousId": "anon-1"},
}


# ---- every endpoint ---------------------------------------------------------------------------


def test_every_single_event_endpoint_queues_its_event_grouped_by_user(
    aws: Resources, ingest_fn: Fn
) -> None:
    for kind, payload in SINGLE.items():
        # when
        resp = post(ingest_fn, f"/v1/{kind}", {**payload, "messageId": f"m-{kind}"}, auth=basic())
        # then
        assert resp["statusCode"] == 200, kind
        assert body_of(resp) == {"success": True}
        [(group, ev)] = queued(aws)
        assert (ev.type, ev.message_id, ev.historical) == (kind, f"m-{kind}", False)
        assert group == ev.profile_id == (payload.get("userId") or payload.get("anonymousId"))


def test_page_and_screen_are_queued_as_page_viewed_and_screen_viewed(
    aws: Resources, ingest_fn: Fn
) -> None:
    post(ingest_fn, "/v1/page", SINGLE["page"], auth=basic())
    post(ingest_fn, "/v1/screen", SINGLE["screen"], auth=basic())
    assert sorted(ev.event or "" for _, ev in queued(aws)) == ["Page Viewed", "Screen Viewed"]


def test_batch_queues_every_item_grouped_by_its_user(aws: Resources, ingest_fn: Fn) -> None:
    items = [{"type": k, **v} for k, v in SINGLE.items()]
    resp = post(
        ingest_fn,
        "/v1/batch",
        {"batch": items, "context": {"library": {"name": "test"}}},
        auth=basic(),
    )
    assert resp["statusCode"] == 200
    assert body_of(resp) == {"success": True}
    got = queued(aws)
    assert sorted(ev.type for _, ev in got) == sorted(SINGLE)
    assert all(group == ev.profile_id for group, ev in got)
    assert all(ev.context["library"] == {"name": "test"} for _, ev in got)


def test_import_queues_events_marked_historical(aws: Resources, ingest_fn: Fn) -> None:
    items = [
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "timestamp": "2025-01-05T10:00:00Z",
            "properties": {"revenue": 40},
        }
    ]
    assert post(ingest_fn, "/v1/import", {"batch": items}, auth=basic())["statusCode"] == 200
    [(_, ev)] = queued(aws)
    assert ev.historical is True
    assert ev.timestamp.year == 2025


# ---- analytics.js (browsers) -----------------------------------------------------------------
# What @segment/analytics-next 1.84 sends (tests/e2e/browser): each event to `/v1/<first letter
# of its type>`, or batches to `/v1/b`, as `Content-Type: text/plain` (JSON all the same), with
# the write key both as HTTP Basic user and as `writeKey` in the body, `sentAt` and `_metadata`.

ANALYTICS_JS = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
TEXT_PLAIN = {"content-type": "text/plain"}


def test_analytics_js_short_paths_queue_the_same_events_as_the_long_ones(
    aws: Resources, ingest_fn: Fn
) -> None:
    for letter, kind in ANALYTICS_JS.items():
        payload = {
            **SINGLE[kind],
            "type": kind,
            "messageId": f"ajs-{letter}",
            "writeKey": WRITE_KEY,
            "sentAt": "2026-03-02T12:00:00.000Z",
            "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        }
        # when
        resp = post(ingest_fn, f"/v1/{letter}", payload, auth=basic(), headers=TEXT_PLAIN)
        # then
        assert resp["statusCode"] == 200, (letter, resp)
        [(_, ev)] = queued(aws)
        assert (ev.type, ev.message_id) == (kind, f"ajs-{letter}")


def test_analytics_js_batch_path_takes_the_write_key_from_the_body(
    aws: Resources, ingest_fn: Fn
) -> None:
    body = {
        "writeKey": WRITE_KEY,
        "sentAt": "2026-03-02T12:00:00.000Z",
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}},
            {"type": "track", "userId": "u1", "event": "Product Viewed"},
        ],
    }
    resp = post(ingest_fn, "/v1/b", body, headers=TEXT_PLAIN)  # no Authorization header
    assert resp["statusCode"] == 200, resp
    assert [ev.type for _, ev in queued(aws)] == ["identify", "track"]


def test_analytics_js_short_path_without_a_key_is_401(aws: Resources, ingest_fn: Fn) -> None:
    assert_error(post(ingest_fn, "/v1/t", SINGLE["track"], headers=TEXT_PLAIN), 401)


def settings_request(key: str, headers: dict[str, str]) -> dict[str, Any]:
    return http("GET", f"/v1/projects/{key}/settings", headers=headers)


def test_browser_settings_point_analytics_js_at_the_host_it_fetched_them_from(
    aws: Resources, ingest_fn: Fn
) -> None:
    # given API Gateway's headers (it always sets X-Forwarded-Proto)
    headers = {"host": "abc.execute-api.eu-west-1.amazonaws.com", "x-forwarded-proto": "https"}
    # when
    resp = ingest_fn(settings_request(WRITE_KEY, headers))
    # then
    assert resp["statusCode"] == 200, resp
    settings = body_of(resp)
    assert settings["integrations"] == {
        "Segment.io": {
            "apiKey": WRITE_KEY,
            "apiHost": "abc.execute-api.eu-west-1.amazonaws.com/v1",
            "protocol": "https",
        }
    }
    assert settings["metrics"] == {"sampleRate": 0}  # no telemetry to Segment
    assert resp["headers"]["Cache-Control"] == (
        f"private, max-age={C.BROWSER_SETTINGS_MAX_AGE_SECONDS}"
    )


def test_browser_settings_use_http_when_no_proxy_says_https(aws: Resources, ingest_fn: Fn) -> None:
    resp = ingest_fn(settings_request(WRITE_KEY, {"host": "127.0.0.1:8080"}))
    segment = body_of(resp)["integrations"]["Segment.io"]
    assert (segment["apiHost"], segment["protocol"]) == ("127.0.0.1:8080/v1", "http")


@pytest.mark.parametrize("key", ["wk_unknown", ADMIN_KEY])
def test_browser_settings_of_anything_but_a_write_key_are_404(
    aws: Resources, ingest_fn: Fn, key: str
) -> None:
    resp = ingest_fn(settings_request(key, {"host": "127.0.0.1:8080"}))
    assert_error(resp, 404, "not_found")


@pytest.mark.parametrize("host", ["evil.com/path", "a b", "x.com:80:80", "<script>"])
def test_browser_settings_refuse_a_host_header_that_is_not_a_host(
    aws: Resources, ingest_fn: Fn, host: str
) -> None:
    assert_error(ingest_fn(settings_request(WRITE_KEY, {"host": host})), 400)


def test_queue_message_deduplication_id_is_per_user_and_message_id(
    aws: Resources, ingest_fn: Fn
) -> None:
    # the same messageId for two users is two events; a retried one is dropped by SQS
    post(ingest_fn, "/v1/track", {"userId": "u1", "event": "A", "messageId": "same"}, auth=basic())
    post(ingest_fn, "/v1/track", {"userId": "u2", "event": "A", "messageId": "same"}, auth=basic())
    post(ingest_fn, "/v1/track", {"userId": "u1", "event": "A", "messageId": "same"}, auth=basic())
    assert sorted(group for group, _ in queued(aws)) == ["u1", "u2"]


def test_any_user_id_gets_a_message_group_id_sqs_accepts(aws: Resources, ingest_fn: Fn) -> None:
    # moto accepts any group id; SQS itself refuses spaces, non-ASCII and over 128 characters
    for user_id in ["jane doe", "josé", "用户-1", "x" * 200, "tab\there"]:
        resp = post(ingest_fn, "/v1/track", {"userId": user_id, "event": "A"}, auth=basic())
        assert resp["statusCode"] == 200
        [(group, ev)] = queued(aws)
        assert SQS_GROUP_ID.fullmatch(group), group
        assert group == message_group_id(ev.profile_id)  # stable: one group per user
        assert ev.user_id == user_id


def test_message_group_id_is_the_user_id_when_sqs_accepts_it() -> None:
    assert message_group_id("user_42@example.com") == "user_42@example.com"
    assert message_group_id("jane doe") != message_group_id("jane  doe")


def test_queued_bodies_use_only_characters_sqs_accepts(aws: Resources, ingest_fn: Fn) -> None:
    props = {"s": "\ufffe\uffff\x01\x7f\u3042\U0001f600"}
    post(ingest_fn, "/v1/track", {"userId": "u1", "event": "A", "properties": props}, auth=basic())
    [m] = queue_messages(aws, C.EVENTS_QUEUE)
    allowed = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
    assert allowed.fullmatch(m["Body"])
    assert parse_message(m["Body"]).events[0].properties == props


# ---- gzip ------------------------------------------------------------------------------------------


def test_gzip_body_base64_encoded_by_api_gateway_is_accepted(aws: Resources, ingest_fn: Fn) -> None:
    raw = gzip.compress(
        json.dumps({"batch": [{"type": "track", "userId": "u1", "event": "Zipped"}]}).encode()
    )
    event = http(
        "POST", "/v1/batch", raw=raw, headers={"content-encoding": "gzip", "authorization": basic()}
    )
    assert event["isBase64Encoded"] is True
    resp = ingest_fn(event)
    assert resp["statusCode"] == 200
    assert [ev.event for _, ev in queued(aws)] == ["Zipped"]


def test_invalid_gzip_body_is_400(aws: Resources, ingest_fn: Fn) -> None:
    resp = post(
        ingest_fn, "/v1/track", raw=b"not gzip", headers={"content-encoding": "gzip"}, auth=basic()
    )
    assert_error(resp, 400, "invalid_json")


def test_invalid_base64_body_is_400(aws: Resources, ingest_fn: Fn) -> None:
    event = http(
        "POST",
        "/v1/track",
        raw=b"x",
        headers={"content-encoding": "gzip", "authorization": basic()},
    )
    event["body"] = "%%% not base64 %%%"
    assert_error(ingest_fn(event), 400)


# ---- auth ------------------------------------------------------------------------------------------


def test_wrong_write_key_is_401_and_queues_nothing(aws: Resources, ingest_fn: Fn) -> None:
    resp = post(ingest_fn, "/v1/track", SINGLE["track"], auth=basic("wk_wrong"))
    assert_error(resp, 401, "unauthorized")
    assert queued(aws) == []


def test_missing_write_key_is_401(aws: Resources, ingest_fn: Fn) -> None:
    assert_error(post(ingest_fn, "/v1/track", SINGLE["track"]), 401, "unauthorized")


def test_admin_key_cannot_ingest(aws: Resources, ingest_fn: Fn) -> None:
    assert_error(post(ingest_fn, "/v1/track", SINGLE["track"], auth=basic(ADMIN_KEY)), 401)


def test_write_key_in_the_body_is_accepted(aws: Resources, ingest_fn: Fn) -> None:
    resp = post(
        ingest_fn,
        "/v1/batch",
        {"writeKey": WRITE_KEY, "batch": [{"type": "track", **SINGLE["track"]}]},
    )
    assert resp["statusCode"] == 200
    assert len(queued(aws)) == 1


def test_wrong_write_key_in_the_body_is_401(aws: Resources, ingest_fn: Fn) -> None:
    assert_error(post(ingest_fn, "/v1/track", {**SINGLE["track"], "writeKey": "nope"}), 401)


def test_the_write_key_never_appears_in_the_response_or_the_queue(
    aws: Resources, ingest_fn: Fn
) -> None:
    resp = post(ingest_fn, "/v1/track", {**SINGLE["track"], "writeKey": WRITE_KEY})
    assert WRITE_KEY not in json.dumps(resp)
    assert all(WRITE_KEY not in m["Body"] for m in queue_messages(aws, C.EVENTS_QUEUE))


# ---- limits and validation ---------------------------------------------------------------------------


def test_event_over_32_kb_is_413(aws: Resources, ingest_fn: Fn) -> None:
    payload = {**SINGLE["track"], "properties": {"pad": "x" * C.MAX_EVENT_BYTES}}
    assert_error(post(ingest_fn, "/v1/track", payload, auth=basic()), 413, "payload_too_large")
    assert queued(aws) == []


def test_batch_over_500_kb_is_413(aws: Resources, ingest_fn: Fn) -> None:
    items = [
        {"type": "track", "userId": "u1", "event": "A", "properties": {"pad": "x" * 30_000}}
    ] * 18
    assert len(json.dumps({"batch": items})) > C.MAX_BATCH_BYTES
    assert_error(post(ingest_fn, "/v1/batch", {"batch": items}, auth=basic()), 413)
    assert queued(aws) == []


def test_a_batch_near_500_kb_is_accepted_whole(aws: Resources, ingest_fn: Fn) -> None:
    # 16 events of ~30 KB: over one SQS request (256 KB), so the queue adapter splits it
    items = [
        {
            "type": "track",
            "userId": f"u{i % 3}",
            "event": "A",
            "messageId": f"big-{i}",
            "properties": {"pad": "x" * 30_000},
        }
        for i in range(16)
    ]
    assert post(ingest_fn, "/v1/batch", {"batch": items}, auth=basic())["statusCode"] == 200
    assert sorted(ev.message_id for _, ev in queued(aws)) == sorted(f"big-{i}" for i in range(16))


def test_malformed_json_is_400_with_a_json_error_body(aws: Resources, ingest_fn: Fn) -> None:
    for raw in (b"{not json", b"", b"[" * 5000, b'{"userId": "u1", "event": ', b"\xff\xfe"):
        body = assert_error(
            post(ingest_fn, "/v1/track", raw=raw, auth=basic()), 400, "invalid_json"
        )
        assert isinstance(body["details"], list)
    assert queued(aws) == []


def test_invalid_single_event_is_400_with_details(aws: Resources, ingest_fn: Fn) -> None:
    body = assert_error(
        post(ingest_fn, "/v1/track", {"userId": "u1"}, auth=basic()), 400, "validation_failed"
    )
    assert body["details"] == [{"index": 0, "message": body["message"]}]


def test_batch_with_one_invalid_of_ten_queues_nine_and_reports_its_index(
    aws: Resources, ingest_fn: Fn
) -> None:
    # given
    items = [
        {"type": "track", "userId": f"u{i}", "event": "Viewed", "messageId": f"m{i}"}
        for i in range(10)
    ]
    items[6] = {"type": "track", "userId": "u6", "messageId": "m6"}  # track without event
    # when
    resp = post(ingest_fn, "/v1/batch", {"batch": items}, auth=basic())
    # then
    assert resp["statusCode"] == 200
    body = body_of(resp)
    assert body["success"] is True
    assert [d["index"] for d in body["details"]] == [6]
    assert sorted(ev.message_id for _, ev in queued(aws)) == sorted(
        f"m{i}" for i in range(10) if i != 6
    )


def test_batch_with_no_valid_event_is_400_with_every_index(aws: Resources, ingest_fn: Fn) -> None:
    items = [{"type": "track", "event": "No id"}, {"type": "bogus", "userId": "u1"}]
    body = assert_error(
        post(ingest_fn, "/v1/batch", {"batch": items}, auth=basic()), 400, "validation_failed"
    )
    assert [d["index"] for d in body["details"]] == [0, 1]
    assert queued(aws) == []


def test_unknown_ingest_path_is_a_4xx_json_error(aws: Resources, ingest_fn: Fn) -> None:
    # one route per endpoint (as the stack routes them): another name is no route at all
    assert_error(post(ingest_fn, "/v1/purchase", SINGLE["track"], auth=basic()), 404, "not_found")
    assert_error(post(ingest_fn, "/v2/track", SINGLE["track"], auth=basic()), 404, "not_found")


# ---- rate limit --------------------------------------------------------------------------------------


def test_over_the_rate_limit_is_429_with_retry_after(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a limit of one request per 20 s, set before the function's cold start
    monkeypatch.setenv(C.ENV_RATE_LIMIT, "0.05")
    fn = Fn(C.FN_INGEST)
    # when
    first = post(fn, "/v1/track", SINGLE["track"], auth=basic())
    second = post(fn, "/v1/track", SINGLE["track"], auth=basic())
    # then
    assert first["statusCode"] == 200
    assert_error(second, 429, "rate_limited")
    retry_after = {k.lower(): v for k, v in second["headers"].items()}["retry-after"]
    assert int(retry_after) >= 1
    assert len(queued(aws)) == 1


def test_the_rate_limit_does_not_apply_to_rejected_keys(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(C.ENV_RATE_LIMIT, "0.05")
    fn = Fn(C.FN_INGEST)
    for _ in range(3):
        assert post(fn, "/v1/track", SINGLE["track"], auth=basic("wk_wrong"))["statusCode"] == 401
    assert post(fn, "/v1/track", SINGLE["track"], auth=basic())["statusCode"] == 200


# ---- fuzz ----------------------------------------------------------------------------------------------

valid_ingest_paths = st.sampled_from([f"/v1/{k}" for k in (*SINGLE, "batch", "import")])
ingest_paths = st.one_of(
    valid_ingest_paths,
    valid_ingest_paths,
    valid_ingest_paths,
    st.builds(lambda s: "/v1/" + s, st.text(max_size=12)),
    st.builds(lambda s: "/" + s, st.text(max_size=20)),
)
ingest_auths = st.one_of(
    st.just(basic()),
    st.just(basic()),
    st.just(basic()),
    st.just(basic()),
    st.none(),
    st.just(basic("wk_wrong")),
    st.text(max_size=30),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=20)),
)


FUZZ: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=70, **FUZZ)
@given(event=api_gateway_requests(ingest_paths, ingest_auths))
def test_no_request_gives_the_ingest_function_a_5xx(
    aws: Resources, ingest_fn: Fn, event: dict[str, Any]
) -> None:
    assert_no_5xx(ingest_fn(event))


@settings(max_examples=130, **FUZZ)
@given(event=segment_requests(basic()))
def test_no_event_content_gives_the_ingest_function_a_5xx(
    aws: Resources, ingest_fn: Fn, event: dict[str, Any]
) -> None:
    assert_no_5xx(ingest_fn(event))


def test_bodies_at_the_edges_of_the_parsers_are_4xx(aws: Resources, ingest_fn: Fn) -> None:
    for raw in EDGE_BODIES:
        for path in ("/v1/track", "/v1/batch"):
            data = raw if path == "/v1/track" else b'{"batch": [' + raw + b"]}"
            resp = post(ingest_fn, path, raw=data, auth=basic())
            assert resp["statusCode"] in (200, 400, 413), (raw[:60], path, resp)
            assert_no_5xx(resp)
