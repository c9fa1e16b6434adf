"""Every route the stack creates is answered by the function it invokes, and every route
the handlers serve is routed: the HTTP API's routes, the handlers' route tables and
docs/openapi.json describe the same set. A route added to the stack before its handler
(or a handler route the stack forgets) fails here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from nudge import constants as C
from nudge.http import ROUTE_NOT_FOUND

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
PARAM = re.compile(r"\{([^}+]+)\+?\}")


def _routes(synth: Any) -> dict[str, str]:
    """route key -> name of the function its integration invokes."""
    by_logical_id = {synth.logical_id(fn): name for name, fn in synth.stack.functions.items()}
    resources = synth.template_json["Resources"]
    out = {}
    for route in synth.resources("AWS::ApiGatewayV2::Route").values():
        target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        uri = resources[target]["Properties"]["IntegrationUri"]
        out[route["Properties"]["RouteKey"]] = by_logical_id[uri["Fn::GetAtt"][0]]
    return out


@pytest.fixture(scope="module")
def functions() -> Iterator[dict[str, Any]]:
    """The stack's functions loaded as local mode loads them, against moto's mock."""
    from nudge.adapters.aws import reset_clients
    from nudge.local.emulation import provision
    from nudge.local.lambdas import Function

    with mock_aws(), pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        reset_clients()
        env = provision(None).env()
        env.pop("AWS_ENDPOINT_URL")
        env[C.ENV_OPENAPI_PATH] = str(ROOT / "docs" / "openapi.json")
        for k, v in env.items():
            mp.setenv(k, v)
        loaded = {}
        for name in (C.FN_INGEST, C.FN_API):
            loaded[name] = Function(name)  # a cold start: settings from this environment
        yield loaded
        reset_clients()


def test_every_route_of_the_stack_is_answered_by_its_function(synth, functions):
    from nudge.local.lambdas import http_event

    unserved = []
    for key, name in sorted(_routes(synth).items()):
        method, path = key.split(" ", 1)
        assert name in functions, f"{key} goes to {name}, which serves no HTTP route"
        concrete = PARAM.sub(lambda m: f"sample-{m.group(1)}", path)
        event = http_event(
            method="GET" if method == "ANY" else method,
            path=concrete,
            query="",
            headers={},
            body=b"",
            source_ip="127.0.0.1",
            now_ms=0,
        )
        response = functions[name].invoke(event)
        if response["statusCode"] == 404:
            message = json.loads(response["body"]).get("message", "")
            if message.startswith(ROUTE_NOT_FOUND):
                unserved.append(f"{key} (function {name})")
    assert not unserved, (
        "the stack routes these to a function that has no route for them; add the handler "
        "with the route, or take the route out of infra/constructs/: " + ", ".join(unserved)
    )


def test_the_stack_routes_exactly_what_the_openapi_document_describes(synth):
    doc = json.loads((ROOT / "docs" / "openapi.json").read_text())
    described = {
        f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item
    }
    routed = set(_routes(synth))
    assert routed - described == set(), "routed by the stack, served by no handler"
    assert described - routed == set(), "served by a handler, not routed on AWS"
