"""`GET /v1/users/{userId}/recommendations` through the api handler on in-memory ports,
with an item model fitted on generated interactions (or none yet)."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nudge.domain.events import Event
from nudge.domain.recommend import ItemModel
from nudge.learn.items import fit_item_model
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    NOW,
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
from tests.recs_support import categories, interactions

ROOT = Path(__file__).resolve().parents[2]
WRITE_KEY, ADMIN_KEY = "wk_unit", "ak_unit"
ROWS = interactions(users=200)
CATALOG = {
    item: {"category": cat, "name": f"The {item}", "price": 10.0}
    for item, cat in categories().items()
}


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("api")


@pytest.fixture(scope="module")
def model() -> ItemModel:
    return fit_item_model(ROWS, now_ms=max(t for *_, t in ROWS))


def viewed(pid: str, minutes_ago: float, event: str = "Product Viewed") -> Event:
    """The event of `pid` viewed (or added, or ordered) `minutes_ago` before NOW."""
    at = NOW - timedelta(minutes=minutes_ago)
    props: dict[str, Any] = {"product_id": pid}
    if event == "Order Completed":
        props = {"products": [props]}
    return Event(
        type="track",
        message_id=f"m-{pid}-{minutes_ago}-{event}",
        user_id="u1",
        event=event,
        properties=props,
        timestamp=at,
        received_at=at,
    )


class Api:
    def __init__(self, module: ModuleType, model: ItemModel | None, *events: Event) -> None:
        profile = a_profile("u1", cart=())
        profile.apply(events)
        self.profiles = MemoryProfileStore([profile, a_profile("u2", cart=())])
        self.deps = module.Deps(
            keys=MemoryKeyStore({WRITE_KEY: "write", ADMIN_KEY: "admin"}),
            profiles=self.profiles,
            inbox=MemoryInbox(),
            log=MemoryDeliveryLog(),
            unsubscribe_key=StaticKey(),
            devices=MemoryDevices(),
            openapi_path=str(ROOT / "docs" / "openapi.json"),
            clock=frozen_clock(),
            load_items=lambda: model,
            load_catalog=lambda: CATALOG if model is not None else None,
        )
        self.handler = module.handler

    def get(self, user: str = "u1", query: str = "", key: str = ADMIN_KEY) -> tuple[int, Any]:
        event = an_http_request("GET", f"/v1/users/{user}/recommendations", bearer=key, query=query)
        resp = self.handler(event, LambdaContext("nudge-api"), deps=self.deps)
        return resp["statusCode"], json.loads(resp["body"])


def test_a_user_gets_ten_items_by_default_with_scores_and_catalog_names(
    module: ModuleType, model: ItemModel
) -> None:
    status, body = Api(module, model, viewed("shoes-03", 5)).get()

    assert status == 200
    assert len(body["items"]) == 10
    for item in body["items"]:
        assert isinstance(item["item_id"], str) and isinstance(item["score"], float)
        assert item["name"] == f"The {item['item_id']}"
    assert "shoes-03" not in [i["item_id"] for i in body["items"]]


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_limit_sets_the_length(module: ModuleType, model: ItemModel, limit: int) -> None:
    status, body = Api(module, model).get(query=f"limit={limit}")

    assert status == 200 and len(body["items"]) == min(limit, len(model))


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "2.5", ""])
def test_a_limit_out_of_range_is_a_400(module: ModuleType, model: ItemModel, limit: str) -> None:
    status, body = Api(module, model).get(query=f"limit={limit}")

    assert status == 400 and body["error"] and "limit" in body["message"]


def test_unknown_users_and_the_write_key_are_refused(module: ModuleType, model: ItemModel) -> None:
    api = Api(module, model)
    assert api.get("nobody")[0] == 404
    assert api.get(key=WRITE_KEY)[0] == 403


def test_bought_items_are_never_recommended(module: ModuleType, model: ItemModel) -> None:
    _, before = Api(module, model, viewed("bags-04", 9)).get()
    first = before["items"][0]["item_id"]

    _, after = Api(module, model, viewed("bags-04", 9), viewed(first, 1, "Order Completed")).get()

    assert first not in [i["item_id"] for i in after["items"]]


def test_three_views_of_a_category_lift_it_at_once(module: ModuleType, model: ItemModel) -> None:
    # given the model as trained, when the user views three items of one category
    _, cold = Api(module, model).get()
    views = [viewed("socks-31", 3), viewed("socks-26", 2), viewed("socks-37", 1)]
    _, warm = Api(module, model, *views).get()

    socks = [sum(i["category"] == "socks" for i in b["items"]) for b in (cold, warm)]
    assert socks[1] > socks[0]
    assert socks[1] == math.ceil(10 / 2)


def test_without_a_model_the_users_own_viewed_items_come_back(module: ModuleType) -> None:
    api = Api(module, None, viewed("p1", 30), viewed("p2", 20), viewed("p2", 10, "Order Completed"))

    status, body = api.get()
    assert status == 200
    assert [i["item_id"] for i in body["items"]] == ["p1"]  # p2 was bought
    assert api.get("u2") == (200, {"items": []})


def test_the_route_is_in_the_openapi_document() -> None:
    doc = json.loads((ROOT / "docs" / "openapi.json").read_text())
    op = doc["paths"]["/v1/users/{userId}/recommendations"]["get"]
    assert op["operationId"] == "getRecommendations"
    assert {p["name"] for p in op["parameters"]} >= {"userId", "limit"}
    assert set(op["responses"]) >= {"200", "400", "401", "403", "404"}
