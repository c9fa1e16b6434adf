"""`GET /v1/reports/segments` under moto: empty before any training, then the segments
the train function saved (sizes, standardized centroids, raw means) and its run's
summary; a failed run shows with its errors; the admin key is needed."""

from __future__ import annotations

from typing import Any

import pytest
from nudge import constants as C
from nudge.adapters.models import S3ModelStore
from nudge.domain.segments_report import SEGMENTS_ARTIFACT, TRAIN_RUN_ARTIFACT
from nudge.learn.segments import FEATURES
from nudge.learn.train import SEGMENTS, TRAIN_RUN
from nudge.local.emulation import Resources

from tests.integration.conftest import Fn, basic, bearer, body_of, http
from tests.integration.test_train_handler import NOW, seed
from tests.train_support import Shop


def report(api_fn: Fn) -> dict[str, Any]:
    resp = api_fn(http("GET", "/v1/reports/segments", headers={"authorization": bearer()}))
    assert resp["statusCode"] == 200, resp
    body: dict[str, Any] = body_of(resp)
    return body


def test_the_api_reads_the_names_the_train_function_saves() -> None:
    assert (SEGMENTS_ARTIFACT, TRAIN_RUN_ARTIFACT) == (SEGMENTS, TRAIN_RUN)


def test_before_any_training_the_list_is_empty(aws: Resources, api_fn: Fn) -> None:
    body = report(api_fn)
    assert body["segments"] == [] and body["trained_at"] is None and body["last_run"] is None


def test_after_training_the_segments_show_with_sizes_and_centroids(
    aws: Resources, api_fn: Fn, clock: Any
) -> None:
    # given a shop's profiles and archive, trained by the train function
    seed(aws, Shop.make(NOW))
    summary = Fn(C.FN_TRAIN)({})
    assert summary["ok"]
    # when
    body = report(api_fn)
    # then
    segs = body["segments"]
    assert body["k"] == len(segs) == summary["k"] >= 2
    assert sum(s["size"] for s in segs) == summary["users"] == 60
    assert {s["name"]: s["size"] for s in segs} == summary["segments"]
    for s in segs:
        assert list(s["centroid"]) == list(FEATURES) == list(s["means"])
    assert body["features"] == list(FEATURES)
    assert body["trained_at"] is not None and body["trained_at"].endswith("Z")
    assert body["silhouette"] == pytest.approx(summary["silhouette"])
    run = body["last_run"]
    assert run["ok"] is True and run["errors"] == [] and run["users"] == 60
    assert run["finished"] == summary["finished"]


def test_a_failed_run_shows_with_its_errors(aws: Resources, api_fn: Fn) -> None:
    store = S3ModelStore(aws.archive_bucket)
    store.save(
        SEGMENTS,
        {
            "trained_at_ms": 1_772_452_800_000,
            "features": ["orders", "revenue"],
            "k": 2,
            "silhouette": 0.5,
            "clusters": [
                {"name": "a", "size": 3, "centroid": [1.0, 2.0], "means": {"orders": 3.0}},
                {"name": "b", "size": 1, "centroid": [-1.0, -2.0], "means": {"orders": 0.0}},
            ],
        },
    )
    store.save(TRAIN_RUN, {"ok": False, "users": 0, "errors": ["read: boom"], "items": 9})
    body = report(api_fn)
    assert body["trained_at"] == "2026-03-02T12:00:00Z"
    assert body["segments"][0] == {
        "name": "a",
        "size": 3,
        "centroid": {"orders": 1.0, "revenue": 2.0},
        "means": {"orders": 3.0},
    }
    assert body["last_run"]["ok"] is False and body["last_run"]["errors"] == ["read: boom"]
    assert "items" not in body["last_run"]


def test_the_report_needs_the_admin_key(aws: Resources, api_fn: Fn) -> None:
    assert api_fn(http("GET", "/v1/reports/segments"))["statusCode"] == 401
    resp = api_fn(http("GET", "/v1/reports/segments", headers={"authorization": bearer("nope")}))
    assert resp["statusCode"] == 401
    resp = api_fn(http("GET", "/v1/reports/segments", headers={"authorization": basic()}))
    assert resp["statusCode"] == 403
