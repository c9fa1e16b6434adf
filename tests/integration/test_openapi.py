"""docs/openapi.json: current with the handlers' routes, valid OpenAPI 3.1 (checked by
openapi-spec-validator), served at GET /openapi.json without a key, and true: what the
handlers answer under moto, status and body, is what the document says."""

from __future__ import annotations

import copy
import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nudge import constants as C
from nudge.cli_openapi import REGENERATE, generated
from nudge.domain.cohorts import CohortQuery, FunnelQuery
from nudge.domain.errors import ValidationFailedError
from nudge.domain.events import normalize_event
from nudge.local.emulation import Resources
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.integration.conftest import ADMIN_KEY, WRITE_KEY, Fn, basic, bearer, drain, http
from tests.integration.delivery_support import Delivery, dx_fixture, headers_of  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "openapi.json"
DOC: dict[str, Any] = json.loads(DOC_PATH.read_text(encoding="utf-8"))
PUBLIC = {
    "GET /health",
    "GET /openapi.json",
    "GET /v1/unsubscribe",
    "POST /v1/unsubscribe",
    "GET /v1/projects/{writeKey}/settings",
    "GET /dashboard",  # the page and its assets hold no data (docs/decisions.md D34)
    "GET /dashboard/assets/{name}",
}


def operations() -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, item in DOC["paths"].items()
        for method, op in item.items()
    }


def assert_conforms(route: str, resp: dict[str, Any]) -> Any:
    """The response's status is documented for the route, and its body fits the schema of
    that status and content type. Returns the decoded body."""
    responses = operations()[route]["responses"]
    status = str(resp["statusCode"])
    assert status in responses, f"{route} answered {status}: not in the document ({resp})"
    headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
    media = headers.get("content-type", "").split(";")[0].strip()
    content = responses[status]["content"]
    assert media in content, f"{route} {status} answered {media}, documented {list(content)}"
    body = json.loads(resp["body"]) if media == "application/json" else resp["body"]
    schema = {**content[media]["schema"], "components": DOC["components"]}
    OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER).validate(body)
    for name in responses[status].get("headers", {}):
        assert name.lower() in headers, f"{route} {status} lacks its documented {name} header"
    return body


# ---- the document ----------------------------------------------------------------------


def test_the_committed_document_is_what_the_handlers_generate() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == generated(), (
        f"docs/openapi.json is out of date with the handlers' routes: run {REGENERATE}"
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1.")
    validate(DOC, cls=OpenAPIV31SpecValidator)


def test_the_validator_does_reject_a_broken_document() -> None:
    broken = copy.deepcopy(DOC)
    del broken["paths"]["/v1/users/{userId}"]["get"]["parameters"]
    with pytest.raises(OpenAPIValidationError, match="userId"):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_every_operation_says_which_key_it_needs() -> None:
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["writeKey"] == {**schemes["writeKey"], "type": "http", "scheme": "basic"}
    assert schemes["adminKey"] == {**schemes["adminKey"], "type": "http", "scheme": "bearer"}
    for route, op in operations().items():
        path = route.split(" ", 1)[1]
        if route in PUBLIC:
            assert "security" not in op, route
        elif path.startswith(("/v1/users/", "/v1/experiments", "/v1/reports/", "/v1/keys")):
            assert op["security"] == [{"adminKey": []}], route
        else:
            assert op["security"] == [{"writeKey": []}], route


def test_errors_have_one_shape_with_the_statuses_spec_names() -> None:
    error = DOC["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message", "details"}
    for route, op in operations().items():
        statuses = {int(s) for s in op["responses"]}
        for status in statuses - {200, 201, 202}:
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (route, status)
        if op.get("security") == [{"writeKey": []}]:
            assert {400, 401, 413, 429} <= statuses, route
            assert "Retry-After" in op["responses"]["429"]["headers"]
        if op.get("security") == [{"adminKey": []}]:
            assert {401, 403} <= statuses, route
            if "{" in route:  # a route naming a resource says when there is none
                assert 404 in statuses, route
    assert {400, 403} <= {int(s) for s in operations()["POST /v1/unsubscribe"]["responses"]}


def test_every_segment_endpoint_and_analytics_js_name_is_described() -> None:
    paths = set(DOC["paths"])
    for name in ("track", "identify", "page", "screen", "group", "alias", "batch", "import"):
        assert f"/v1/{name}" in paths
    for short in ("t", "i", "p", "s", "g", "a", "b"):
        assert f"/v1/{short}" in paths
    body = DOC["paths"]["/v1/track"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/TrackCall"}
    assert DOC["components"]["schemas"]["TrackCall"]["required"] == ["event"]


# ---- served ----------------------------------------------------------------------------


def test_get_openapi_json_serves_the_document_without_a_key(api_fn: Fn) -> None:
    resp = api_fn(http("GET", "/openapi.json"))
    assert assert_conforms("GET /openapi.json", resp) == DOC


# ---- true: real answers against the document -------------------------------------------


def test_ingest_answers_conform_to_the_document(
    aws: Resources, clock: Any, ingest_fn: Fn, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = {"authorization": basic()}
    track = {"userId": "u1", "event": "Product Viewed", "properties": {"product_id": "p1"}}
    batch = {"batch": [{"type": "track", **track}, {"type": "track", "userId": "u1"}]}
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("POST /v1/track", http("POST", "/v1/track", track, headers=auth), 200),
        ("POST /v1/t", http("POST", "/v1/t", track, headers=auth), 200),
        ("POST /v1/batch", http("POST", "/v1/batch", batch, headers=auth), 200),
        ("POST /v1/import", http("POST", "/v1/import", batch, headers=auth), 200),
        ("POST /v1/batch", http("POST", "/v1/batch", {"batch": [{}]}, headers=auth), 400),
        ("POST /v1/identify", http("POST", "/v1/identify", {"userId": "u1"}), 401),
        (
            "POST /v1/page",
            http(
                "POST",
                "/v1/page",
                headers={**auth, "content-encoding": "gzip"},
                raw=gzip.compress(json.dumps({"anonymousId": "a", "x": "y" * 40_000}).encode()),
            ),
            413,
        ),
        (
            "GET /v1/projects/{writeKey}/settings",
            http("GET", f"/v1/projects/{WRITE_KEY}/settings", headers={"host": "nudge.test"}),
            200,
        ),
        (
            "GET /v1/projects/{writeKey}/settings",
            http("GET", "/v1/projects/nope/settings", headers={"host": "nudge.test"}),
            404,
        ),
    ]
    for route, event, status in cases:
        resp = ingest_fn(event)
        assert resp["statusCode"] == status, (route, resp)
        assert_conforms(route, resp)
    partial = json.loads(ingest_fn(http("POST", "/v1/batch", batch, headers=auth))["body"])
    assert partial["details"][0]["index"] == 1

    monkeypatch.setenv(C.ENV_RATE_LIMIT, "0.001")  # one request, then a long wait
    limited = Fn(C.FN_INGEST)
    limited(http("POST", "/v1/track", track, headers=auth))
    resp = limited(http("POST", "/v1/track", track, headers=auth))
    assert resp["statusCode"] == 429
    assert_conforms("POST /v1/track", resp)


def test_read_and_manage_answers_conform_to_the_document(
    dx: Delivery, ingest_fn: Fn, process_fn: Fn, aws: Resources
) -> None:
    # given a shopper whose profile the process function built, and a user with an email
    # and an in-app message delivered
    product = {"product_id": "p1", "price": 5}
    items = [
        {"type": "identify", "userId": "shopper", "traits": {"email": "s@example.com"}},
        {"type": "page", "userId": "shopper", "name": "Home"},
        {"type": "track", "userId": "shopper", "event": "Product Added", "properties": product},
        {"type": "track", "userId": "shopper", "event": "Order Completed", "properties": {}},
    ]
    sent = ingest_fn(
        http("POST", "/v1/batch", {"batch": items}, headers={"authorization": basic()})
    )
    assert sent["statusCode"] == 200
    drain(aws, process_fn)
    dx.seed("u1")
    dx.run([dx.action("u1", "cart_abandonment"), dx.action("u1", "product_dwell_upsell")])
    [message] = dx.inbox("u1")
    link = headers_of(dx.ses_requests[-1])["List-Unsubscribe"][1:-1]
    token = quote(parse_qs(urlsplit(link).query)["token"][0])

    def admin(method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        return http(method, path, body, headers={"authorization": bearer(key or ADMIN_KEY)})

    user, read = "GET /v1/users/{userId}", "POST /v1/users/{userId}/messages/{messageId}/read"
    devices = "POST /v1/users/{userId}/devices"
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("GET /health", http("GET", "/health"), 200),
        (user, admin("GET", "/v1/users/shopper"), 200),
        (user, admin("GET", "/v1/users/u1"), 200),
        (user, admin("GET", "/v1/users/nobody"), 404),
        (user, http("GET", "/v1/users/u1"), 401),
        (user, admin("GET", "/v1/users/u1", key=WRITE_KEY), 403),
        ("GET /v1/users/{userId}/messages", admin("GET", "/v1/users/u1/messages"), 200),
        (read, admin("POST", f"/v1/users/u1/messages/{quote(message.id)}/read"), 200),
        (read, admin("POST", "/v1/users/u1/messages/nope/read"), 404),
        ("GET /v1/users/{userId}/deliveries", admin("GET", "/v1/users/u1/deliveries"), 200),
        ("GET /v1/users/{userId}/export", admin("GET", "/v1/users/u1/export"), 200),
        ("GET /v1/users/{userId}/export", admin("GET", "/v1/users/shopper/export"), 200),
        ("GET /v1/users/{userId}/export", admin("GET", "/v1/users/nobody/export"), 404),
        (devices, admin("POST", "/v1/users/u1/devices", {"platform": "fcm", "token": "t"}), 201),
        (devices, admin("POST", "/v1/users/u1/devices", {"platform": "x"}), 400),
        ("GET /v1/unsubscribe", http("GET", "/v1/unsubscribe", query=f"token={token}"), 200),
        ("POST /v1/unsubscribe", http("POST", "/v1/unsubscribe", query=f"token={token}"), 200),
        ("POST /v1/unsubscribe", http("POST", "/v1/unsubscribe", query="token=forged.x"), 403),
        ("GET /v1/unsubscribe", http("GET", "/v1/unsubscribe"), 400),
    ]
    bodies = {}
    for route, event, status in cases:
        resp = dx.api(event)
        assert resp["statusCode"] == status, (route, resp)
        bodies[(route, status)] = assert_conforms(route, resp)

    profile = json.loads(dx.api(admin("GET", "/v1/users/shopper"))["body"])
    assert profile["rfm"]["frequency"] == 1 and profile["event_counts"]["Page Viewed"] == 1
    assert bodies[("GET /v1/users/{userId}/messages", 200)]["messages"]
    assert bodies[("GET /v1/users/{userId}/deliveries", 200)]["deliveries"]
    assert bodies[("GET /v1/users/{userId}/export", 200)]["events"]


# ---- what a client generated from the document sends is what the handlers take --------
# (schemathesis against local mode: bodies with "userId": null, blank or boolean ids passed
# the document's `required` and were refused, a boolean id was even taken as "0")
def _body_schema(kind: str) -> dict[str, Any]:
    return {
        "$ref": f"#/components/schemas/{kind.capitalize()}Call",
        "components": DOC["components"],
    }


def _fits(schema: dict[str, Any], body: Any) -> bool:
    return OAS31Validator(schema).is_valid(body)


def _taken(kind: str | None, body: dict[str, Any]) -> bool:
    try:
        normalize_event(body, kind=kind, received_at=datetime(2026, 3, 2, tzinfo=UTC))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("track", {"userId": "u1", "event": "Signed Up"}),
        ("track", {"anonymousId": 7, "event": "Signed Up"}),
        ("track", {"userId": None, "anonymousId": None, "event": "Signed Up"}),
        ("track", {"userId": "   ", "event": "Signed Up"}),
        ("track", {"userId": False, "event": "Signed Up"}),
        ("track", {"userId": "u1", "event": "  "}),
        ("track", {"userId": "u1", "event": None}),
        ("track", {"userId": "u1", "event": "x" * 201}),
        ("track", {"userId": "x" * 257, "event": "Signed Up"}),
        ("track", {"userId": 2**63 - 1, "event": "Signed Up"}),
        ("track", {"userId": 2**63, "event": "Signed Up"}),
        ("identify", {"anonymousId": False, "traits": {"plan": "pro"}}),
        ("identify", {"userId": "u1", "traits": {"plan": "pro"}}),
        ("page", {"userId": None, "anonymousId": "a1"}),
        ("alias", {"userId": "u1", "previousId": "a1"}),
        ("alias", {"userId": "u1", "previousId": None}),
        ("alias", {"userId": "u1", "previousId": " "}),
        ("alias", {"anonymousId": "a1", "previousId": "a0"}),
        ("group", {"userId": "u1", "groupId": "g1"}),
        ("group", {"userId": "u1", "groupId": None}),
        ("group", {"userId": "u1", "groupId": True}),
    ],
)
def test_a_call_fits_its_documented_body_exactly_when_ingest_takes_it(
    kind: str, body: dict[str, Any]
) -> None:
    assert _fits(_body_schema(kind), body) == _taken(kind, body), (kind, body)


@pytest.mark.parametrize(
    "item",
    [
        {"type": "track", "userId": "u1", "event": "A"},
        {"type": "track", "userId": "u1", "event": ""},
        {"type": "track", "userId": None, "event": "A"},
        {"type": "alias", "userId": "u1", "previousId": "a1"},
        {"type": "alias", "userId": "u1"},
        {"type": "group", "anonymousId": "a1", "groupId": "g"},
        {"type": "group", "anonymousId": "a1"},
        {"type": "identify", "anonymousId": True},
        {"type": "screen", "anonymousId": "a1"},
        {"userId": "u1", "event": "A"},
    ],
)
def test_a_batch_item_fits_the_document_exactly_when_ingest_takes_it(item: dict[str, Any]) -> None:
    schema = {"$ref": "#/components/schemas/BatchItem", "components": DOC["components"]}
    assert _fits(schema, item) == _taken(None, item), item


def _query_schema(route: str, name: str) -> dict[str, Any]:
    params = operations()[route]["parameters"]
    return next(p["schema"] for p in params if p["name"] == name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_report_parameters_that_fit_the_document_are_taken(data: st.DataObject) -> None:
    def drawn(route: str, name: str) -> str:
        pattern = _query_schema(route, name)["pattern"]
        return data.draw(st.from_regex(pattern, fullmatch=True), label=name)

    CohortQuery.from_params({"event": drawn("GET /v1/reports/cohorts", "event")})
    route = "GET /v1/reports/funnel"
    FunnelQuery.from_params(
        {
            "steps": drawn(route, "steps"),
            "within": drawn(route, "within"),
            "by": "variant",
            "experiment": drawn(route, "experiment"),
        }
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("steps", ""),
        ("steps", "A"),
        ("steps", "A,"),
        ("steps", "A, ,B"),
        ("steps", ",".join("A" * 11)),
        ("steps", "A," + "x" * 257),
        ("within", "0s"),
        ("within", "15"),
        ("within", "m"),
        ("experiment", " "),
    ],
)
def test_funnel_parameters_it_refuses_do_not_fit_the_document(name: str, value: str) -> None:
    pattern = _query_schema("GET /v1/reports/funnel", name)["pattern"]
    assert re.fullmatch(pattern, value) is None
    params = {"steps": "A,B", "by": "variant", name: value}
    with pytest.raises(ValidationFailedError):
        FunnelQuery.from_params(params)
