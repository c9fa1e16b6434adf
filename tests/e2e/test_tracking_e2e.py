"""The shipped tracking plan through local mode: an event that breaks it is accepted
(report mode), its violation is archived once however often the SDK retries, and
`GET /v1/reports/tracking` and `nudge sql` both see it."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Client
from tests.e2e.test_archive_e2e import sql

pytestmark = pytest.mark.e2e


def test_a_violation_of_the_shipped_plan_is_accepted_reported_and_counted_once(
    client: Client,
) -> None:
    run = uuid.uuid4().hex[:10]
    user, message_id = f"tp-{run}", f"tp-{run}-1"
    body = {
        "userId": user,
        "event": "Product Added",
        "messageId": message_id,
        "properties": {"product_id": f"p-{run}", "price": -4, "quantity": 1},
    }
    for _ in range(2):  # an SDK retrying
        r = client.send("track", body)
        assert r.status_code == 200, r.text
    client.settle()
    # the event itself went through: it is in the user's profile
    assert client.user(user)["event_counts"] == {"Product Added": 1}
    # the violation once, not the user's activity
    found = sql(
        client,
        "select user_id, json_extract_string(properties, '$.violationType') as rule, "
        "json_extract_string(properties, '$.violationField') as field from events "
        f"where event = 'Violation Generated' "
        f"and json_extract_string(properties, '$.eventMessageID') = '{message_id}'",
    )
    assert found["rows"] == [[None, "minimum", "properties.price"]]
    r = client.admin_get("/v1/reports/tracking", params={"days": 1})
    assert r.status_code == 200, r.text
    rows = {(v["event"], v["rule"], v["field"]): v for v in r.json()["violations"]}
    row = rows[("Product Added", "minimum", "properties.price")]
    assert row["violations"] >= 1 and row["blocked"] == 0
