"""The api function on in-memory ports: GET /v1/reports/triggers (every loaded trigger,
the days bounds, the admin key, no archive) and the archiving of in-app reads and
unsubscribes (a failed archive write never fails the request)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nudge.domain.errors import DependencyUnavailableError
from nudge.domain.ports import StoredProfile
from nudge.domain.query import QueryResult
from nudge.domain.unsubscribe import make_token
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    NOW,
    MemoryArchive,
    MemoryDeliveryLog,
    MemoryDevices,
    MemoryInbox,
    MemoryKeyStore,
    MemoryProfileStore,
    StaticKey,
    a_profile,
    an_action,
    an_http_request,
    frozen_clock,
)

ROOT = Path(__file__).resolve().parents[2]
WRITE_KEY, ADMIN_KEY = "wk_unit", "ak_unit"
DEFAULT_TRIGGERS = [
    "cart_abandonment",
    "inactivity_winback",
    "repeat_product_view",
    "product_dwell_upsell",
]


class FakeEngine:
    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows
        self.calls: list[tuple[str, datetime | None]] = []

    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        self.calls.append((sql, since))
        return QueryResult(["trigger_id", "day", "metric", "value"], self.rows)


class Api:
    def __init__(self, module: ModuleType, engine: FakeEngine | None) -> None:
        self.module = module
        self.inbox = MemoryInbox()
        self.archive = MemoryArchive()
        self.profiles = MemoryProfileStore([])
        self.profiles.save(StoredProfile(a_profile("u1"), None))
        self.key = StaticKey()
        self.deps = module.Deps(
            keys=MemoryKeyStore({WRITE_KEY: "write", ADMIN_KEY: "admin"}),
            profiles=self.profiles,
            inbox=self.inbox,
            log=MemoryDeliveryLog(),
            unsubscribe_key=self.key,
            devices=MemoryDevices(),
            openapi_path=str(ROOT / "docs" / "openapi.json"),
            clock=frozen_clock(),
            triggers_path=str(ROOT / "triggers"),
            query=engine,
            archive=self.archive,
        )

    def __call__(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        resp = self.module.handler(
            an_http_request(method, path, **kw), LambdaContext("nudge-api"), deps=self.deps
        )
        body = resp["body"]
        return resp["statusCode"], json.loads(body) if body.startswith("{") else body


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("api")


def test_every_loaded_trigger_is_listed_with_its_kpis(module: ModuleType) -> None:
    engine = FakeEngine(
        [
            ["cart_abandonment", None, "fired", 10.0],
            ["cart_abandonment", None, "sent", 8.0],
            ["cart_abandonment", None, "sent_users", 8.0],
            ["cart_abandonment", None, "responded", 4.0],
            ["cart_abandonment", None, "converted_users", 2.0],
            ["cart_abandonment", None, "engaged_seconds", 800.0],
            ["cart_abandonment", "2026-03-02", "fired", 10.0],
            ["cart_abandonment", "2026-03-02", "sent", 8.0],
        ]
    )
    status, report = Api(module, engine)("GET", "/v1/reports/triggers", bearer=ADMIN_KEY)

    assert status == 200
    assert [t["id"] for t in report["triggers"]] == DEFAULT_TRIGGERS
    cart = report["triggers"][0]
    assert (cart["fired"], cart["sent"], cart["response_rate"], cart["conversion_rate"]) == (
        10,
        8,
        0.5,
        0.25,
    )
    assert (cart["engagement_seconds"], cart["retention_vs_holdout"]) == (100.0, None)
    assert len(cart["daily"]) == 28 and cart["daily"][-1] == {
        "date": "2026-03-02",
        "fired": 10,
        "sent": 8,
        "conversions": 0,
        "anomaly": False,
    }
    for quiet in report["triggers"][1:]:
        assert (quiet["fired"], quiet["sent"], quiet["response_rate"]) == (0, 0, None)
        assert set(quiet) >= {
            "id",
            "fired",
            "sent",
            "response_rate",
            "conversion_rate",
            "engagement_seconds",
            "retention_vs_holdout",
            "daily",
        }
    [(sql, since)] = engine.calls
    assert (
        "'cart_abandonment'" in sql
        and since is not None
        and since.isoformat()
        == (
            "2026-01-06T00:00:00+00:00"  # 28 days of history before the 28 reported
        )
    )


@pytest.mark.parametrize("days", ["0", "366", "abc", "-1", "1.5", "", "٣"])
def test_days_outside_1_to_365_is_a_400(module: ModuleType, days: str) -> None:
    status, body = Api(module, FakeEngine([]))(
        "GET", "/v1/reports/triggers", bearer=ADMIN_KEY, query=f"days={days}"
    )
    assert (status, body["error"]) == (400, "validation_failed")
    assert "1 to 365" in body["message"]


def test_days_bounds_and_keys(module: ModuleType) -> None:
    api = Api(module, FakeEngine([]))
    for days, expected in (("1", 1), ("365", 365)):
        status, body = api("GET", "/v1/reports/triggers", bearer=ADMIN_KEY, query=f"days={days}")
        assert status == 200 and len(body["triggers"][0]["daily"]) == expected
    assert api("GET", "/v1/reports/triggers")[0] == 401
    assert api("GET", "/v1/reports/triggers", bearer=WRITE_KEY)[0] == 403
    status, body = Api(module, None)("GET", "/v1/reports/triggers", bearer=ADMIN_KEY)
    assert (status, body["error"]) == (503, "unavailable")


def test_an_in_app_read_is_archived_as_message_read(module: ModuleType) -> None:
    from nudge.domain.delivery import Outbound
    from nudge.domain.templates import Rendered

    api = Api(module, None)
    action = an_action("u1", "product_dwell_upsell", channel="inapp")
    message_id = api.inbox.send(
        Outbound(
            user_id="u1",
            action_id=action.action_id,
            trigger_id="product_dwell_upsell",
            channel="inapp",
            to="u1",
            at=NOW,
            content=Rendered(title="Still deciding?", body="..."),
        )
    )
    path = f"/v1/users/u1/messages/{message_id}/read"

    assert api("POST", path, bearer=ADMIN_KEY)[0] == 200
    assert api("POST", path, bearer=ADMIN_KEY)[0] == 200  # read again: the same event id
    first, second = api.archive.events()
    assert first["message_id"] == second["message_id"]
    assert (first["event"], first["user_id"]) == ("Message Read", "u1")
    assert first["properties"]["action_id"] == action.action_id
    assert first["properties"]["trigger_id"] == "product_dwell_upsell"
    # the archive down: the read still succeeds
    api.archive.fail_with.append(DependencyUnavailableError("firehose down"))
    assert api("POST", path, bearer=ADMIN_KEY)[0] == 200
    assert api("POST", "/v1/users/u1/messages/nope/read", bearer=ADMIN_KEY)[0] == 404


def test_an_unsubscribe_is_archived_as_unsubscribed(module: ModuleType) -> None:
    api = Api(module, None)
    query = "token=" + make_token(api.key.get(), "u1", "email")
    api.archive.fail_with.append(DependencyUnavailableError("firehose down"))
    assert api("POST", "/v1/unsubscribe", query=query)[0] == 200  # not archived, still done
    assert api("POST", "/v1/unsubscribe", query=query)[0] == 200
    [event] = api.archive.events()
    assert (event["event"], event["user_id"], event["properties"]["channel"]) == (
        "Unsubscribed",
        "u1",
        "email",
    )
    # the GET page unsubscribes nothing and archives nothing
    api("GET", "/v1/unsubscribe", query=query)
    assert len(api.archive.events()) == 1
