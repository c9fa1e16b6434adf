"""Local mode serves the OpenAPI document at GET /openapi.json with no key, as the api
function does on AWS: the committed docs/openapi.json, whose every path answers here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from nudge.http import ROUTE_NOT_FOUND

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e

DOC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())


def test_openapi_json_is_served_without_a_key(client: Client) -> None:
    r = requests.get(f"{client.url}/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == DOC


def test_no_documented_path_is_missing_in_local_mode(client: Client) -> None:
    for path, item in DOC["paths"].items():
        concrete = path.replace("{", "sample-").replace("}", "")
        for method in item:
            r = requests.request(method.upper(), f"{client.url}{concrete}", timeout=10)
            missing = r.status_code == 404 and r.json()["message"].startswith(ROUTE_NOT_FOUND)
            assert not missing, f"{method.upper()} {path}: {r.text}"


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "PATCH"])
def test_a_method_no_route_takes_is_a_json_404_as_api_gateway_answers_it(
    client: Client, method: str
) -> None:
    # schemathesis found TRACE answered by http.server itself: a 501 HTML page
    for path in ("/v1/track", "/v1/keys", "/health"):
        r = requests.request(method, f"{client.url}{path}", timeout=10)
        assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text[:200]}"
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["message"] == f"{ROUTE_NOT_FOUND} {method} {path}"
