"""The feedback function's handler on in-memory ports (its `deps` argument), without
moto: SES notifications through SNS in, the suppression list out. The same handler runs
against moto in tests/integration/test_feedback_handler.py."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from nudge.domain.delivery import DeliveryEntry
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    NOW,
    MemoryArchive,
    MemoryDeliveryLog,
    MemorySuppressions,
    a_bounce,
    a_complaint,
    an_sns_event,
    frozen_clock,
)
from tests.ses_events import an_ses_event


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


# ---- SES's events confirm an email logged `unconfirmed` (D41) ------------------------------
def _logged(status: str) -> MemoryDeliveryLog:
    log = MemoryDeliveryLog()
    log.record(
        DeliveryEntry("u1", "a1", "cart_abandonment", "email", status, "ambiguous: x", NOW),
        expect=frozenset({None}),
    )
    return log


@pytest.mark.parametrize("status", ["unconfirmed", "sending"])
def test_ses_s_delivery_event_turns_an_unconfirmed_email_sent_and_archives_the_outcome(
    module: ModuleType, status: str
) -> None:
    log, archive = _logged(status), MemoryArchive()
    deps = module.Deps(
        suppressions=MemorySuppressions(), clock=frozen_clock(), archive=archive, log=log
    )

    module.handler(
        an_sns_event(an_ses_event("Delivery", ses_id="ses-9")),
        LambdaContext("nudge-feedback"),
        deps=deps,
    )

    entry = log.entry("u1", "a1")
    assert (entry.status, entry.provider_id) == ("sent", "ses-9")
    events = [json.loads(line) for line in archive.lines]
    assert [(e["event"], e["properties"].get("status")) for e in events] == [
        ("Email Delivered", None),
        ("Message Outcome", "sent"),
    ]


@pytest.mark.parametrize("status", ["sent", "capped", "failed"])
def test_an_email_event_leaves_any_other_entry_as_it_is(module: ModuleType, status: str) -> None:
    log = _logged(status)
    deps = module.Deps(suppressions=MemorySuppressions(), clock=frozen_clock(), log=log)

    module.handler(an_sns_event(an_ses_event("Open")), LambdaContext("nudge-feedback"), deps=deps)

    assert log.entry("u1", "a1").status == status and len(log.writes) == 1
