"""The shipped experiment `cart_abandonment_holdout` through local mode: a user in its
holdout gets no cart email and a `holdout` delivery; every exposure, holdout or not, is in
the archive as Segment's `Experiment Viewed`."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Client
from tests.e2e.test_archive_e2e import nudge, sql
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


def _report(client: Client) -> dict[str, tuple[int, int]]:
    r = client.admin_get("/v1/experiments/cart_abandonment_holdout")
    assert r.status_code == 200, r.text
    return {v["name"]: (v["users"], v["conversions"]) for v in r.json()["variants"]}


def test_the_report_counts_each_variants_users_and_conversions_within_the_window(
    client: Client,
) -> None:
    from tests.e2e.conftest import _user_in

    # given: the report so far (other tests share this local mode: only the change counts)
    before = _report(client)
    reminder = [_user_in("reminder") for _ in range(3)]
    holdout = [_user_in("holdout") for _ in range(2)]
    next_utc(client, 14)
    for user in reminder + holdout:
        _abandon(client, user)
    # when: the trigger fires for all five, two reminded users and one held-out user order
    # within the 72 h window, and the last reminded user orders only after it
    client.clock(advance_seconds=16 * 60)
    for user in (reminder[0], reminder[1], holdout[0]):
        client.track(user, "Order Completed", {"order_id": f"o-{user}", "revenue": 99})
    client.clock(advance_seconds=73 * 3600)
    client.track(reminder[2], "Order Completed", {"order_id": f"o-{reminder[2]}", "revenue": 99})
    client.settle()
    after = _report(client)

    # then
    def change(name: str) -> tuple[int, int]:
        was = before.get(name, (0, 0))
        return after[name][0] - was[0], after[name][1] - was[1]

    assert change("reminder") == (3, 2)
    assert change("holdout") == (2, 1)
    # and the report carries the sequential test, revenue and engagement with CUPED
    full = client.admin_get("/v1/experiments/cart_abandonment_holdout").json()
    reminder_row = next(v for v in full["variants"] if v["name"] == "reminder")
    assert reminder_row["sequential"]["verdict"] in {
        "continue", "variant_better", "variant_worse", "inconsistent",
    }  # fmt: skip
    revenue = {r["name"]: r for r in full["metrics"]["revenue"]["variants"]}
    assert revenue["reminder"]["mean"] > 0 and revenue["reminder"]["cuped"] is not None
    assert {"conversion", "engagement"} <= set(full["metrics"])
    # and `nudge report experiment --json` prints the same document
    code, out, err = nudge(
        "report",
        "experiment",
        "cart_abandonment_holdout",
        "--url",
        client.url,
        "--admin-key",
        client.local.admin_key,
        "--json",
    )
    assert code == 0, err
    printed = {v["name"]: (v["users"], v["conversions"]) for v in json.loads(out)["variants"]}
    assert printed == after
    r = client.admin_get("/v1/experiments/no_such_experiment")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
