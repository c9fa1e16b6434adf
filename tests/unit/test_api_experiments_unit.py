"""GET /v1/experiments/{id} on in-memory ports: the shipped experiment's report from the
aggregates a (fake) query engine returns; 404 for an unknown experiment."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nudge.domain.experiment_report import METRICS, SUMS
from nudge.domain.query import QueryResult
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    MemoryDeliveryLog,
    MemoryDevices,
    MemoryInbox,
    MemoryKeyStore,
    MemoryProfileStore,
    StaticKey,
    an_http_request,
    frozen_clock,
)

ROOT = Path(__file__).resolve().parents[2]
WRITE_KEY, ADMIN_KEY = "wk_unit", "ak_unit"


class FakeEngine:
    def __init__(self, rows: list[list[Any]]) -> None:
        """rows: (variant, users, conversions) of one exposure day; no revenue, no
        engagement, no pre-exposure activity."""
        self.rows = [[v, date(2026, 3, 1), u, x, *sums(x)] for v, u, x in rows]
        self.sql: list[str] = []

    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        self.sql.append(sql)
        return QueryResult(COLUMNS, self.rows)


COLUMNS = ["variant", "day", "users", "conversions"] + [f"{m}_{s}" for m in METRICS for s in SUMS]


def sums(conversions: int) -> list[float]:
    return [conversions, conversions, 0, 0, 0] + [0.0] * 5 * (len(METRICS) - 1)


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("api")


def call(module: ModuleType, path: str, engine: FakeEngine | None, **auth: str) -> tuple[int, Any]:
    deps = module.Deps(
        keys=MemoryKeyStore({WRITE_KEY: "write", ADMIN_KEY: "admin"}),
        profiles=MemoryProfileStore([]),
        inbox=MemoryInbox(),
        log=MemoryDeliveryLog(),
        unsubscribe_key=StaticKey(),
        devices=MemoryDevices(),
        openapi_path=str(ROOT / "docs" / "openapi.json"),
        clock=frozen_clock(),
        triggers_path=str(ROOT / "triggers"),
        query=engine,
    )
    resp = module.handler(
        an_http_request("GET", path, **auth), LambdaContext("nudge-api"), deps=deps
    )
    return resp["statusCode"], json.loads(resp["body"])


def test_the_shipped_experiments_report(module: ModuleType) -> None:
    engine = FakeEngine([["holdout", 10, 1], ["reminder", 90, 18]])
    status, report = call(
        module, "/v1/experiments/cart_abandonment_holdout", engine, bearer=ADMIN_KEY
    )
    assert status == 200
    assert report["experiment"] == "cart_abandonment_holdout"
    assert report["goal"] == {"event": "Order Completed", "within_seconds": 72 * 3600}
    assert [(v["name"], v["users"], v["conversions"]) for v in report["variants"]] == [
        ("holdout", 10, 1),
        ("reminder", 90, 18),
    ]
    reminder = next(v for v in report["variants"] if v["name"] == "reminder")
    assert reminder["lift"] == pytest.approx(0.2 / 0.1 - 1)
    assert report["srm_p_value"] == pytest.approx(1.0)
    assert report["metrics"]["control"] == "holdout"
    assert reminder["sequential"]["looks"] == 1 and set(report["metrics"]) >= set(METRICS)
    assert "'cart_abandonment_holdout'" in engine.sql[0] and "'Order Completed'" in engine.sql[0]


def test_unknown_experiment_and_keys(module: ModuleType) -> None:
    status, body = call(module, "/v1/experiments/nope", FakeEngine([]), bearer=ADMIN_KEY)
    assert (status, body["error"]) == (404, "not_found")
    status, _ = call(module, "/v1/experiments/cart_abandonment_holdout", FakeEngine([]))
    assert status == 401
    status, _ = call(
        module, "/v1/experiments/cart_abandonment_holdout", FakeEngine([]), bearer=WRITE_KEY
    )
    assert status == 403


def test_no_archive_is_a_503(module: ModuleType) -> None:
    status, body = call(module, "/v1/experiments/cart_abandonment_holdout", None, bearer=ADMIN_KEY)
    assert status == 503 and body["error"] == "unavailable"
