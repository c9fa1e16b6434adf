"""GET /v1/reports/cohorts and /v1/reports/funnel under mock_aws: history sent to
/v1/import, processed, archived through Firehose to S3 and read back by the api
function's DuckDB engine; the funnel split by the profiles' segments and by the variant
of archived exposures; bad parameters are 400s naming them; answers fit docs/openapi.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nudge import constants as C
from nudge.adapters.profiles import DynamoProfileStore
from nudge.local.emulation import Resources

from tests.integration.conftest import (
    WRITE_KEY,
    Fn,
    basic,
    bearer,
    body_of,
    drain,
    http,
)
from tests.integration.test_openapi import assert_conforms

COHORTS, FUNNEL = "GET /v1/reports/cohorts", "GET /v1/reports/funnel"


def track(user: str, event: str, at: str, n: int, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": event,
        "timestamp": at,
        "messageId": f"{user}-{n}",
        "properties": props,
    }


# (user, event, timestamp): months Dec 2025 .. Mar 2026 (the clock is 2026-03-02)
HISTORY = [
    # December's cohort: ana (back in Jan and Mar), ben (back in Feb)
    ("ana", "Product Viewed", "2025-12-03T10:00:00Z"),
    ("ana", "Product Added", "2025-12-03T10:05:00Z"),
    ("ana", "Order Completed", "2025-12-04T09:00:00Z"),  # within 7d of her view
    ("ana", "Product Viewed", "2026-01-10T10:00:00Z"),
    ("ana", "Order Completed", "2026-03-01T10:00:00Z"),
    ("ben", "Product Viewed", "2025-12-20T10:00:00Z"),
    ("ben", "Order Completed", "2025-12-21T10:00:00Z"),  # skipped Product Added
    ("ben", "Product Added", "2026-02-02T10:00:00Z"),  # ... and then out of order
    # January's cohort: cai (never back); dee (back in Feb)
    ("cai", "Product Viewed", "2026-01-05T10:00:00Z"),
    ("cai", "Product Added", "2026-01-05T11:00:00Z"),
    ("cai", "Order Completed", "2026-01-20T11:00:00Z"),  # 15 days later: outside 7d
    ("dee", "Page Viewed", "2026-01-31T23:59:59Z"),
    ("dee", "Product Viewed", "2026-02-01T00:00:00Z"),
    ("dee", "Product Added", "2026-02-01T00:00:01Z"),
    ("dee", "Order Completed", "2026-02-03T00:00:00Z"),
]


@pytest.fixture
def archived(
    aws: Resources,
    clock: Any,
    ingest_fn: Fn,
    process_fn: Fn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Fn:
    """The history imported and processed (so archived), two exposures, segments set on
    two profiles; the api function reading the archive into this test's cache."""
    batch = [track(u, e, at, i) for i, (u, e, at) in enumerate(HISTORY)]
    batch += [
        track(
            u,
            "Experiment Viewed",
            "2025-12-01T00:00:00Z",
            100 + i,
            experiment_id="cart_abandonment_holdout",
            variation_id=v,
            variation_name=v,
        )
        for i, (u, v) in enumerate([("ana", "reminder"), ("cai", "holdout")])
    ]
    resp = ingest_fn(
        http("POST", "/v1/import", {"batch": batch}, headers={"authorization": basic()})
    )
    assert resp["statusCode"] == 200, resp
    drain(aws, process_fn)
    store = DynamoProfileStore(table=aws.tables[C.PROFILES], clock=clock)
    for user, segment in (("ana", "frequent buyers"), ("dee", "cart abandoners")):
        stored = store.get(user)
        assert stored is not None
        stored.profile.segment = segment
        store.save(stored)
    monkeypatch.setenv(C.ENV_ARCHIVE_CACHE_DIR, str(tmp_path / "cache"))
    return Fn(C.FN_API)


def get(api: Fn, route: str, query: str = "", key: str | None = None) -> tuple[int, Any]:
    resp = api(
        http(
            "GET",
            route.split(" ", 1)[1],
            query=query,
            headers={"authorization": bearer(key)} if key else {"authorization": bearer()},
        )
    )
    return resp["statusCode"], assert_conforms(route, resp)


def test_cohorts_by_month_from_imported_history(archived: Fn) -> None:
    status, report = get(archived, COHORTS, "period=month")
    assert status == 200
    assert report["period"] == "month" and report["current"] == "2026-03"
    assert [(c["cohort"], c["size"], c["retained"]) for c in report["cohorts"]] == [
        ("2025-12", 2, [2, 1, 1, 1]),  # Jan ana, Feb ben, Mar ana
        ("2026-01", 2, [2, 1, 0]),  # Feb dee
    ]
    assert report["cohorts"][0]["retention"] == [1.0, 0.5, 0.5, 0.5]
    # an exposure of Dec 1st (nudge's own event) starts no cohort: still 2 users in Dec
    status, orders = get(archived, COHORTS, "period=month&event=Order%20Completed")
    assert status == 200
    assert [c["retention"] for c in orders["cohorts"]] == [[1.0, 0.0, 0.0, 0.5], [1.0, 0.5, 0.0]]
    assert [c["event_users_in_cohort_period"] for c in orders["cohorts"]] == [2, 1]
    status, weeks = get(archived, COHORTS)
    assert status == 200 and weeks["period"] == "week"
    assert [c["cohort"] for c in weeks["cohorts"]] == [
        "2025-W49",
        "2025-W51",
        "2026-W02",
        "2026-W05",
    ]


def test_the_funnel_and_its_splits(archived: Fn) -> None:
    steps = "steps=Product%20Viewed,Product%20Added,Order%20Completed"
    status, report = get(archived, FUNNEL, steps)
    assert status == 200
    # ana, ben, cai, dee viewed; ana, cai, dee added after; ana and dee ordered within 7d
    assert [(s["event"], s["users"]) for s in report["steps"]] == [
        ("Product Viewed", 4),
        ("Product Added", 3),
        ("Order Completed", 2),
    ]
    assert [s["drop_off"] for s in report["steps"]] == [None, 0.25, pytest.approx(1 / 3)]
    assert report["groups"] == {} and report["within"] == "7d"
    status, wide = get(archived, FUNNEL, steps + "&within=30d")
    assert [s["users"] for s in wide["steps"]] == [4, 3, 3]  # cai's order now counts
    status, by_segment = get(archived, FUNNEL, steps + "&by=segment")
    assert status == 200
    assert {k: [s["users"] for s in g["steps"]] for k, g in by_segment["groups"].items()} == {
        "frequent buyers": [1, 1, 1],
        "cart abandoners": [1, 1, 1],
        "none": [2, 1, 0],
    }
    status, by_variant = get(archived, FUNNEL, steps + "&by=variant")
    assert status == 200 and by_variant["experiment"] == "cart_abandonment_holdout"
    assert {k: [s["users"] for s in g["steps"]] for k, g in by_variant["groups"].items()} == {
        "reminder": [1, 1, 1],
        "holdout": [1, 1, 0],
        "none": [2, 1, 1],
    }


@pytest.mark.parametrize(
    ("route", "query", "parameters"),
    [
        (COHORTS, "period=day", ["period"]),
        (FUNNEL, "steps=Product%20Viewed", ["steps"]),
        (FUNNEL, "steps=A,B&within=7", ["within"]),
        (FUNNEL, "steps=A,B&by=country&within=1y", ["within", "by"]),
    ],
)
def test_bad_parameters_are_400s_naming_them(
    archived: Fn, route: str, query: str, parameters: list[str]
) -> None:
    status, body = get(archived, route, query)
    assert status == 400 and body["error"] == "validation_failed"
    assert [d["parameter"] for d in body["details"]] == parameters


def test_the_reports_need_the_admin_key(archived: Fn) -> None:
    for route in (COHORTS, FUNNEL):
        path = route.split(" ", 1)[1]
        assert archived(http("GET", path, query="steps=A,B"))["statusCode"] == 401
        status, _ = get(archived, route, "steps=A,B", key=WRITE_KEY)
        assert status == 403


def test_without_an_archive_the_reports_are_unavailable(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(C.ENV_ARCHIVE_BUCKET, "")
    api = Fn(C.FN_API)
    for route in (COHORTS, FUNNEL):
        resp = api(
            http(
                "GET",
                route.split(" ", 1)[1],
                query="steps=A,B",
                headers={"authorization": bearer()},
            )
        )
        assert resp["statusCode"] == 503 and body_of(resp)["error"] == "unavailable"
        assert_conforms(route, resp)
