"""The dashboard's page and assets ship in the core layer, where the api function on AWS
reads them as package data (docs/dashboard.md), and its routes need no authorizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from nudge import dashboard

from infra.bundling import build_core_layer

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


def test_the_core_layer_holds_the_page_and_every_asset() -> None:
    package = build_core_layer(ROOT) / "python" / "nudge" / "dashboard"
    assert (package / "page.html").is_file()
    for name in dashboard.ASSET_NAMES:
        shipped = package / "assets" / name
        assert shipped.read_text(encoding="utf-8") == dashboard.asset(name).body  # type: ignore[union-attr]


def test_the_dashboard_routes_reach_the_function_without_an_authorizer(synth):
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synth.resources("AWS::ApiGatewayV2::Route").values()
    }
    for key in ("GET /dashboard", "GET /dashboard/assets/{name}"):
        assert routes[key].get("AuthorizationType", "NONE") == "NONE", key
