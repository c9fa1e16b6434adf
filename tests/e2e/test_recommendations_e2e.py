"""`GET /v1/users/{userId}/recommendations` through local mode over HTTP: the list follows
the user's latest events with no training run (before any model, from the profile alone)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


def items(client: Client, user: str, query: str = "") -> list[str]:
    r = client.admin_get(f"/v1/users/{user}/recommendations{query}")
    assert r.status_code == 200, r.text
    return [item["item_id"] for item in r.json()["items"]]


def test_recommendations_follow_the_latest_events(client: Client, uid: str) -> None:
    # given a user who viewed three products
    for pid in ("rec-1", "rec-2", "rec-3"):
        client.track(uid, "Product Viewed", {"product_id": pid})
    client.settle()
    assert items(client, uid) == ["rec-3", "rec-2", "rec-1"]
    assert items(client, uid, "?limit=2") == ["rec-3", "rec-2"]

    # when they buy one, it leaves the list at once
    client.track(uid, "Order Completed", {"products": [{"product_id": "rec-3"}]})
    client.settle()
    assert items(client, uid) == ["rec-2", "rec-1"]


def test_recommendations_refuse_a_bad_limit_and_an_unknown_user(client: Client, uid: str) -> None:
    client.track(uid, "Product Viewed", {"product_id": "rec-9"})
    client.settle()
    r = client.admin_get(f"/v1/users/{uid}/recommendations?limit=500")
    assert r.status_code == 400 and r.json()["error"]
    assert client.admin_get(f"/v1/users/{uid}-nobody/recommendations").status_code == 404
    r = client.s.get(f"{client.url}/v1/users/{uid}/recommendations")
    assert r.status_code == 401
