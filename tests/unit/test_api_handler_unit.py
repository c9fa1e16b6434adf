"""The api function's handler on in-memory ports (its `deps` argument), without moto: HTTP
API requests in, responses and the ports' state out. The same handler runs against moto
in tests/integration/test_api_handler.py and test_api_delivery_routes.py."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nudge.domain.delivery import devices, opted_out
from nudge.domain.unsubscribe import make_token
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    MemoryDeliveryLog,
    MemoryDevices,
    MemoryInbox,
    MemoryKeyStore,
    MemoryProfileStore,
    StaticKey,
    a_profile,
    an_http_request,
    frozen_clock,
)

ROOT = Path(__file__).resolve().parents[2]
WRITE_KEY, ADMIN_KEY = "wk_unit", "ak_unit"


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("api")


class Run:
    def __init__(self, module: ModuleType) -> None:
        self.profiles = MemoryProfileStore([a_profile("u1")])
        self.devices = MemoryDevices()
        self.key = StaticKey()
        self.deps = module.Deps(
            keys=MemoryKeyStore({WRITE_KEY: "write", ADMIN_KEY: "admin"}),
            profiles=self.profiles,
            inbox=MemoryInbox(),
            log=MemoryDeliveryLog(),
            unsubscribe_key=self.key,
            devices=self.devices,
            openapi_path=str(ROOT / "docs" / "openapi.json"),
            clock=frozen_clock(),
        )
        self.handler = module.handler

    def __call__(self, event: dict[str, Any]) -> tuple[int, Any]:
        resp = self.handler(event, LambdaContext("nudge-api"), deps=self.deps)
        body = resp["body"]
        is_json = resp["headers"].get("Content-Type") == "application/json"
        return resp["statusCode"], json.loads(body) if is_json else body


def test_the_admin_key_reads_a_profile(module: ModuleType) -> None:
    status, view = Run(module)(an_http_request("GET", "/v1/users/u1", bearer=ADMIN_KEY))

    assert status == 200
    assert view["user_id"] == "u1" and view["traits"]["email"] == "ana@example.com"
    assert [item["product_id"] for item in view["cart"]] == ["p-trail"]


@pytest.mark.parametrize(
    ("auth", "status"),
    [({"bearer": WRITE_KEY}, 403), ({}, 401), ({"bearer": "ak_no"}, 401)],
    ids=["write key", "no key", "unknown key"],
)
def test_only_the_admin_key_reads_profiles(
    module: ModuleType, auth: dict[str, str], status: int
) -> None:
    got, body = Run(module)(an_http_request("GET", "/v1/users/u1", **auth))

    assert got == status and body["error"] in ("forbidden", "unauthorized")


def test_an_unknown_user_is_a_404(module: ModuleType) -> None:
    status, body = Run(module)(an_http_request("GET", "/v1/users/nobody", bearer=ADMIN_KEY))

    assert (status, body["error"]) == (404, "not_found")


def test_a_registered_device_is_an_endpoint_kept_in_the_profile(module: ModuleType) -> None:
    run = Run(module)
    body = {"platform": "fcm", "token": "tok-1"}

    status, device = run(an_http_request("POST", "/v1/users/u1/devices", body, bearer=ADMIN_KEY))

    assert status == 201 and device["endpoint_arn"] in run.devices.endpoints
    assert [d["endpoint_arn"] for d in devices(run.profiles.profile("u1"))] == [
        device["endpoint_arn"]
    ]


def test_a_signed_token_unsubscribes_by_post_and_not_by_get(module: ModuleType) -> None:
    run = Run(module)
    query = "token=" + make_token(run.key.get(), "u1", "email")

    page, _ = run(an_http_request("GET", "/v1/unsubscribe", query=query))
    assert page == 200 and opted_out(run.profiles.profile("u1")) == frozenset()

    status, body = run(an_http_request("POST", "/v1/unsubscribe", query=query))
    assert (status, body) == (200, {"unsubscribed": True, "channel": "email"})
    assert opted_out(run.profiles.profile("u1")) == {"email"}


def test_a_forged_token_is_a_403(module: ModuleType) -> None:
    query = "token=" + make_token(b"another key", "u1", "email")

    status, _ = Run(module)(an_http_request("POST", "/v1/unsubscribe", query=query))

    assert status == 403


def test_the_openapi_document_is_served_from_the_deps_path(module: ModuleType) -> None:
    status, doc = Run(module)(an_http_request("GET", "/openapi.json"))

    assert status == 200 and doc["openapi"].startswith("3.1")
