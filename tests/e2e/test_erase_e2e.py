"""Erase through local mode: a user with a cart, an in-app message and archived events is
erased with one DELETE; the profile, inbox and deliveries are gone, `nudge sql` no longer
sees their events, and an event sent afterwards (an SDK flushing late) does not bring
them back."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Client
from tests.e2e.test_archive_e2e import sql

pytestmark = pytest.mark.e2e


def test_a_user_erased_over_http_is_gone_everywhere_and_stays_gone(client: Client) -> None:
    user = f"erase-{uuid.uuid4().hex[:10]}"
    client.send("identify", {"userId": user, "traits": {"email": f"{user}@example.com"}})
    client.track(user, "Product Viewed", {"product_id": "p-1", "name": "Shoe"})
    client.track(user, "Product Added", {"product_id": "p-1", "price": 30})
    client.settle()
    assert client.user(user)["event_counts"]["Product Added"] == 1
    before = sql(client, f"select count(*) from events where user_id = '{user}'")
    assert before["rows"] == [[3]]

    headers = {"Authorization": f"Bearer {client.local.admin_key}"}
    r = client.s.delete(f"{client.url}/v1/users/{user}", headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    assert user in r.json()["erased"]["ids"]

    assert client.admin_get(f"/v1/users/{user}").status_code == 404
    assert client.admin_get(f"/v1/users/{user}/messages").json().get("messages", []) == []
    assert client.admin_get(f"/v1/users/{user}/deliveries").json().get("deliveries", []) == []
    after = sql(client, f"select count(*) from events where user_id = '{user}'")
    assert after["rows"] == [[0]]

    client.track(user, "Order Completed", {"revenue": 30})  # in flight when erased
    client.settle()
    assert client.admin_get(f"/v1/users/{user}").status_code == 404
    late = sql(client, f"select count(*) from events where user_id = '{user}'")
    assert late["rows"] == [[0]]
    r = client.s.delete(f"{client.url}/v1/users/{user}", headers=headers, timeout=30)
    assert r.status_code == 404
