"""`GET /v1/users/{userId}/recommendations` through local mode over HTTP: the list follows
the user's latest events with no training run, bought items leave it at once, and once
the train function has fitted the item model, what other users did next is recommended
and follows the user's session before the next training."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


def items(client: Client, user: str, query: str = "") -> list[str]:
    r = client.admin_get(f"/v1/users/{user}/recommendations{query}")
    assert r.status_code == 200, r.text
    return [item["item_id"] for item in r.json()["items"]]


def test_bought_items_leave_the_list_at_once(client: Client, uid: str) -> None:
    # given a user who viewed three products (with or without a trained model: the
    # session's order decides nothing here, what was bought does)
    for pid in ("rec-1", "rec-2", "rec-3"):
        client.track(uid, "Product Viewed", {"product_id": pid})
    client.settle()
    assert len(items(client, uid, "?limit=2")) <= 2
    # when they buy one, it is never recommended again
    client.track(uid, "Order Completed", {"products": [{"product_id": "rec-3"}]})
    client.settle()
    assert "rec-3" not in items(client, uid, "?limit=100")


def test_a_trained_model_recommends_what_others_did_next_and_follows_the_session(
    client: Client, uid: str
) -> None:
    # given shoppers who went from A to B, and from C to D
    for n in range(8):
        shopper = f"{uid}-other-{n}"
        for pid in ("co-A", "co-B", "co-C", "co-D") if n % 2 else ("co-C", "co-D"):
            client.track(shopper, "Product Viewed", {"product_id": pid, "category": "co"})
    client.settle()
    r = client.s.post(f"{client.url}/_local/train", timeout=300)
    assert r.status_code == 200, r.text
    # when the user views A, B comes first among what is new to them
    client.track(uid, "Product Viewed", {"product_id": "co-A"})
    client.settle()
    first = items(client, uid, "?limit=3")
    assert first and first[0] == "co-B", first
    # and when they move on to C, D rises at once, before any new training
    client.track(uid, "Product Viewed", {"product_id": "co-C"})
    client.settle()
    assert items(client, uid, "?limit=3")[0] == "co-D"


def test_recommendations_refuse_a_bad_limit_and_an_unknown_user(client: Client, uid: str) -> None:
    client.track(uid, "Product Viewed", {"product_id": "rec-9"})
    client.settle()
    r = client.admin_get(f"/v1/users/{uid}/recommendations?limit=500")
    assert r.status_code == 400 and r.json()["error"]
    assert client.admin_get(f"/v1/users/{uid}-nobody/recommendations").status_code == 404
    r = client.s.get(f"{client.url}/v1/users/{uid}/recommendations")
    assert r.status_code == 401
