"""The feedback function's handler on in-memory ports (its `deps` argument), without
moto: SES notifications through SNS in, the suppression list out. The same handler runs
against moto in tests/integration/test_feedback_handler.py."""

from __future__ import annotations

from types import ModuleType

import pytest
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    NOW,
    MemorySuppressions,
    a_bounce,
    a_complaint,
    an_sns_event,
    frozen_clock,
)


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("feedback")


def run(module: ModuleType, *notifications: dict[str, object] | str) -> MemorySuppressions:
    suppressions = MemorySuppressions()
    deps = module.Deps(suppressions=suppressions, clock=frozen_clock())
    out = module.handler(an_sns_event(*notifications), LambdaContext("nudge-feedback"), deps=deps)
    assert out["suppressed"] == len(suppressions.rows)
    return suppressions


def test_a_permanent_bounce_suppresses_the_address_at_the_clock_s_time(
    module: ModuleType,
) -> None:
    suppressions = run(module, a_bounce("Ana@Example.com"))

    assert suppressions.rows == {"ana@example.com": ("bounce:General", NOW)}


def test_a_complaint_suppresses_and_a_transient_bounce_does_not(module: ModuleType) -> None:
    suppressions = run(
        module, a_complaint("bo@example.com"), a_bounce("cy@example.com", "Transient")
    )

    assert suppressions.is_suppressed("bo@example.com")
    assert not suppressions.is_suppressed("cy@example.com")


def test_a_message_that_is_not_a_notification_is_skipped(module: ModuleType) -> None:
    suppressions = run(module, "not json", a_bounce("ana@example.com", key="eventType"))

    assert list(suppressions.rows) == ["ana@example.com"]
