"""The shipped experiment `cart_abandonment_holdout` through local mode: a user in its
holdout gets no cart email and a `holdout` delivery; every exposure, holdout or not, is in
the archive as Segment's `Experiment Viewed`."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Client
from tests.e2e.test_archive_e2e import sql
from tests.e2e.test_delivery_e2e import identify, next_utc

pytestmark = pytest.mark.e2e


def _abandon(client: Client, user: str) -> None:
    identify(client, user)
    client.track(user, "Product Added", {"product_id": "sku-7", "name": "Tent", "price": 99})


def test_the_holdout_gets_no_cart_email_and_both_exposures_are_archived(
    client: Client, uid: str, holdout_uid: str
) -> None:
    next_utc(client, 14)
    _abandon(client, uid)
    _abandon(client, holdout_uid)
    client.clock(advance_seconds=16 * 60)
    assert [m["trigger"] for m in client.outbox(holdout_uid) if m["channel"] == "email"] == []
    held = [d for d in client.deliveries(holdout_uid) if d["trigger"] == "cart_abandonment"]
    assert [(d["status"], d["reason"]) for d in held] == [
        ("holdout", "experiment:cart_abandonment_holdout")
    ]
    assert [m["trigger"] for m in client.outbox(uid) if m["channel"] == "email"] == [
        "cart_abandonment"
    ]
    rows = sql(
        client,
        "SELECT user_id, json_extract_string(properties, '$.experiment_id') AS experiment, "
        "json_extract_string(properties, '$.variation_id') AS variant FROM events "
        f"WHERE event = 'Experiment Viewed' AND user_id IN ('{uid}', '{holdout_uid}') "
        "ORDER BY variant",
    )["rows"]
    assert sorted(rows) == sorted(
        [
            [holdout_uid, "cart_abandonment_holdout", "holdout"],
            [uid, "cart_abandonment_holdout", "reminder"],
        ]
    )
