"""The tracking plan through the real handlers under moto: ingest checks events against
the plan, refuses what a block rule refuses and archives every violation through
Firehose; `GET /v1/reports/tracking` counts them with SQL over the archive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nudge import constants as C
from nudge.domain.tracking import VIOLATION_GENERATED
from nudge.local.emulation import Resources

from tests.integration.conftest import Fn, basic, bearer, http
from tests.integration.test_archive_writer import archived
from tests.integration.test_process_handler import track

PLAN = """
mode: report
events:
  Product Viewed:
    properties:
      type: object
      required: [product_id]
  Order Completed:
    mode: block
    properties:
      type: object
      required: [revenue]
      properties:
        revenue: {type: number, minimum: 0}
"""


@pytest.fixture
def planned(aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Resources:
    (tmp_path / "plan.yaml").write_text(PLAN)
    monkeypatch.setenv(C.ENV_TRACKING_PLAN_PATH, str(tmp_path))
    return aws


def post(fn: Fn, items: list[dict[str, Any]]) -> dict[str, Any]:
    resp: dict[str, Any] = fn(
        http("POST", "/v1/batch", {"batch": items}, headers={"authorization": basic()})
    )
    return resp


def test_violations_are_archived_once_and_blocked_events_refused_by_index(
    planned: Resources, clock: Any
) -> None:
    ingest_fn = Fn(C.FN_INGEST)
    items = [
        track("u1", "Product Viewed", "a"),  # reported
        track("u1", "Order Completed", "b", revenue=-3),  # blocked
        track("u2", "Order Completed", "c", revenue=12),  # fine
    ]
    resp = post(ingest_fn, items)
    assert resp["statusCode"] == 200
    details = json.loads(resp["body"])["details"]
    assert [d["index"] for d in details] == [1]
    assert "properties.revenue" in details[0]["message"]
    post(ingest_fn, items)  # the SDK retries the request
    rows = [r for r in archived(planned) if r["event"] == VIOLATION_GENERATED]
    by_id = {r["message_id"]: r for r in rows}
    assert len(by_id) == 2  # each violation twice in the archive, once in the view
    assert {r["properties"]["eventMessageID"] for r in rows} == {"a", "b"}
    assert {r["user_id"] for r in rows} == {None}  # no activity of u1
    assert {r["properties"]["eventUserId"] for r in rows} == {"u1"}

    api_fn = Fn(C.FN_API)
    resp = api_fn(http("GET", "/v1/reports/tracking", headers={"authorization": bearer()}))
    assert resp["statusCode"] == 200, resp
    report = json.loads(resp["body"])
    got = {(v["event"], v["rule"]): v for v in report["violations"]}
    assert set(got) == {("Product Viewed", "required"), ("Order Completed", "minimum")}
    assert got[("Order Completed", "minimum")]["blocked"] == 1
    assert got[("Order Completed", "minimum")]["violations"] == 1  # the retry counted once
    assert got[("Product Viewed", "required")]["blocked"] == 0


def test_a_blocked_single_event_is_a_400_and_nothing_is_queued(
    planned: Resources, clock: Any
) -> None:
    ingest_fn = Fn(C.FN_INGEST)
    resp = ingest_fn(
        http(
            "POST",
            "/v1/track",
            track("u1", "Order Completed", "x"),
            headers={"authorization": basic()},
        )
    )
    assert resp["statusCode"] == 400
    body = json.loads(resp["body"])
    assert "revenue" in body["message"] and body["details"][0]["index"] == 0


@pytest.mark.parametrize("days", ["0", "366", "week"])
def test_the_report_refuses_days_out_of_range(aws: Resources, days: str) -> None:
    api_fn = Fn(C.FN_API)
    resp = api_fn(
        http(
            "GET",
            "/v1/reports/tracking",
            headers={"authorization": bearer()},
            query=f"days={days}",
        )
    )
    assert resp["statusCode"] == 400, resp


def test_the_report_needs_the_admin_key(aws: Resources) -> None:
    api_fn = Fn(C.FN_API)
    assert api_fn(http("GET", "/v1/reports/tracking"))["statusCode"] == 401
    resp = api_fn(http("GET", "/v1/reports/tracking", headers={"authorization": basic()}))
    assert resp["statusCode"] in (401, 403)
