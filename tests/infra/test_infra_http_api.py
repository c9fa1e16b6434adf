"""One HTTP API: the Segment tracking routes go to ingest, the read-and-manage routes to
api; the stage is throttled and access-logged."""

from __future__ import annotations

import pytest
from nudge import constants as C

pytestmark = pytest.mark.infra

INGEST_ROUTES = [
    *(
        f"POST /v1/{p}"
        for p in ("track", "identify", "page", "screen", "group", "alias", "batch", "import")
    ),
    # analytics.js: one letter per event type, b for a batch, and its settings
    *(f"POST /v1/{p}" for p in ("t", "i", "p", "s", "g", "a", "b")),
    "GET /v1/projects/{writeKey}/settings",
]
API_ROUTES = [
    "GET /health",
    "GET /openapi.json",
    "GET /v1/users/{userId}",
    "DELETE /v1/users/{userId}",
    "GET /v1/users/{userId}/export",
    "GET /v1/users/{userId}/messages",
    "POST /v1/users/{userId}/messages/{messageId}/read",
    "GET /v1/users/{userId}/deliveries",
    "POST /v1/users/{userId}/devices",
    "GET /v1/experiments",
    "GET /v1/experiments/{experimentId}",
    "GET /v1/reports/tracking",
    "GET /v1/reports/segments",
    "GET /v1/reports/dead-letters",
    "GET /v1/reports/cohorts",
    "GET /v1/reports/funnel",
    "GET /v1/reports/triggers",
    "GET /v1/users/{userId}/recommendations",
    "POST /v1/keys",
    "GET /v1/keys",
    "DELETE /v1/keys/{keyId}",
    "GET /dashboard",
    "GET /dashboard/assets/{name}",
    "GET /v1/unsubscribe",
    "POST /v1/unsubscribe",
]


def _routes_to(synth):  # type: ignore[no-untyped-def]
    """route key -> logical id of the function its integration invokes."""
    resources = synth.template_json["Resources"]
    out = {}
    for route in synth.resources("AWS::ApiGatewayV2::Route").values():
        target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        uri = resources[target]["Properties"]["IntegrationUri"]
        out[route["Properties"]["RouteKey"]] = uri["Fn::GetAtt"][0]
    return out


def test_there_is_one_http_api(synth):
    synth.template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    synth.template.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})


@pytest.mark.parametrize("route_key", INGEST_ROUTES)
def test_ingest_route_invokes_the_ingest_function(synth, route_key):
    assert _routes_to(synth)[route_key] == synth.logical_id(synth.stack.functions[C.FN_INGEST])


@pytest.mark.parametrize("route_key", API_ROUTES)
def test_api_route_invokes_the_api_function(synth, route_key):
    assert _routes_to(synth)[route_key] == synth.logical_id(synth.stack.functions[C.FN_API])


def test_no_other_routes(synth):
    assert set(_routes_to(synth)) == set(INGEST_ROUTES) | set(API_ROUTES)


def test_cors_lets_analytics_js_post_from_any_page(synth):
    """API Gateway answers the preflights: any origin (no credentials are sent), the
    Authorization and Content-Type headers analytics.js sets on every post, X-Retry-Count
    on its retries, and Retry-After readable by the page on a 429."""
    (api,) = synth.resources("AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["*"]
    assert "AllowCredentials" not in cors or cors["AllowCredentials"] is False
    assert {"POST", "GET"} <= set(cors["AllowMethods"])
    allowed = {h.lower() for h in cors["AllowHeaders"]}
    assert {"authorization", "content-type", "x-retry-count"} <= allowed
    assert "retry-after" in {h.lower() for h in cors["ExposeHeaders"]}
    assert cors["MaxAge"] == C.CORS_MAX_AGE_SECONDS
    # no OPTIONS route would take the preflights from API Gateway
    assert not [k for k in _routes_to(synth) if k.startswith(("OPTIONS ", "ANY /v1/{"))]


def test_stage_is_throttled_at_the_default_rate_with_twice_the_burst(synth):
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingRateLimit": C.DEFAULT_RATE_LIMIT_PER_SECOND,
                "ThrottlingBurstLimit": 2 * C.DEFAULT_RATE_LIMIT_PER_SECOND,
            },
        },
    )


def test_stage_access_logs_go_to_a_log_group_with_retention(synth):
    (stage,) = synth.resources("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    group = synth.template_json["Resources"][settings["DestinationArn"]["Fn::GetAtt"][0]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 30
    assert "$context.requestId" in settings["Format"]


def test_api_url_is_an_output(synth):
    assert "ApiUrl" in synth.template_json["Outputs"]
