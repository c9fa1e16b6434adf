"""The ingest function's handler on in-memory ports (its `deps` argument), without moto:
an HTTP API request in, the response and the events-queue messages out. The same
handler runs against moto in tests/integration/test_ingest_handler.py."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from nudge.domain.errors import DependencyUnavailableError
from nudge.domain.ingest import RateLimiter
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import NOW, MemoryEventQueue, MemoryKeyStore, an_http_request, frozen_clock

WRITE_KEY, ADMIN_KEY = "wk_unit", "ak_unit"


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("ingest")


class Run:
    def __init__(self, module: ModuleType) -> None:
        self.queue = MemoryEventQueue()
        self.deps = module.Deps(
            keys=MemoryKeyStore({WRITE_KEY: "write", ADMIN_KEY: "admin"}),
            queue=self.queue,
            limiter=RateLimiter(1000),
            clock=frozen_clock(),
        )
        self.handler = module.handler

    def __call__(self, event: dict[str, Any]) -> tuple[int, Any]:
        resp = self.handler(event, LambdaContext("nudge-ingest"), deps=self.deps)
        return resp["statusCode"], json.loads(resp["body"])


def track(user: str, event: str, message_id: str) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "messageId": message_id}


def test_a_batch_is_accepted_and_queued_as_one_message_per_user(module: ModuleType) -> None:
    run = Run(module)
    batch = [
        track("u1", "Product Viewed", "m1"),
        track("u2", "Product Viewed", "m2"),
        track("u1", "Product Added", "m3"),
    ]

    status, _ = run(an_http_request("POST", "/v1/batch", {"batch": batch}, key=WRITE_KEY))

    assert status == 200
    assert [group for group, _ in run.queue.messages] == ["u1", "u2"]
    by_user = {p.user_id: p for p in run.queue.parsed()}
    assert [e.message_id for e in by_user["u1"].events] == ["m1", "m3"]
    assert [e.message_id for e in by_user["u2"].events] == ["m2"]
    assert {e.received_at for p in by_user.values() for e in p.events} == {NOW}  # the clock


def test_a_wrong_key_is_a_401_and_queues_nothing(module: ModuleType) -> None:
    run = Run(module)

    status, body = run(an_http_request("POST", "/v1/track", track("u1", "X", "m1"), key="wk_no"))

    assert (status, body["error"]) == (401, "unauthorized")
    assert run.queue.messages == []


def test_a_short_endpoint_of_analytics_js_queues_like_its_long_name(module: ModuleType) -> None:
    run = Run(module)

    status, _ = run(an_http_request("POST", "/v1/t", track("u1", "X", "m1"), key=WRITE_KEY))

    assert status == 200 and [p.user_id for p in run.queue.parsed()] == ["u1"]


def test_a_queue_that_does_not_take_the_events_is_a_503_sdks_retry(module: ModuleType) -> None:
    run = Run(module)
    run.queue.fail_with.append(DependencyUnavailableError("1 message(s) could not be queued"))

    status, body = run(an_http_request("POST", "/v1/track", track("u1", "X", "m1"), key=WRITE_KEY))

    assert (status, body["error"]) == (503, "unavailable")


def test_browser_settings_answer_for_a_write_key_only(module: ModuleType) -> None:
    run = Run(module)

    ok, settings = run(an_http_request("GET", f"/v1/projects/{WRITE_KEY}/settings"))
    unknown, _ = run(an_http_request("GET", "/v1/projects/wk_no/settings"))

    assert ok == 200
    assert settings["integrations"]["Segment.io"]["apiHost"] == "nudge.example.test/v1"
    assert unknown == 404
