"""The deliver function's handler on in-memory ports (its `deps` argument), without moto:
the SQS batch in, the batch item failures and dead letters out. The same handler runs
against moto in tests/integration/test_deliver_handler.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest
from nudge.domain.delivery import TransientSendError
from nudge.domain.messages import ActionMessage
from nudge.domain.ports import StoredProfile
from nudge.local.lambdas import Function, LambdaContext, sqs_event

from tests.fakes import (
    NOW,
    FakeDelivery,
    MemoryDeadLetters,
    a_profile,
    an_action,
    frozen_clock,
)

QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:nudge-actions.fifo"


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("deliver")


@pytest.fixture
def fx() -> FakeDelivery:
    fake = FakeDelivery()
    fake.profiles.save(StoredProfile(a_profile("u1"), None))
    fake.profiles.save(StoredProfile(a_profile("u2", email="bo@example.com"), None))
    return fake


def event(bodies: Sequence[ActionMessage | str]) -> dict[str, Any]:
    """An SQS FIFO batch as the event source mapping hands it over (group = user)."""
    messages: list[Any] = []
    for i, body in enumerate(bodies):
        text = body if isinstance(body, str) else body.to_json()
        group = "poison" if isinstance(body, str) else body.user_id
        messages.append(
            {
                "MessageId": f"m{i}",
                "ReceiptHandle": f"r{i}",
                "Body": text,
                "Attributes": {"MessageGroupId": group, "SequenceNumber": str(i)},
            }
        )
    return sqs_event(messages, QUEUE_ARN)


class Run:
    def __init__(self, module: ModuleType, fx: FakeDelivery, *, at: Any = NOW) -> None:
        self.dead = MemoryDeadLetters()
        self.deps = module.Deps(ports=fx.ports, dead_letters=self.dead, clock=frozen_clock(at))
        self.handler = module.handler

    def __call__(self, bodies: Sequence[ActionMessage | str]) -> list[str]:
        resp = self.handler(event(bodies), LambdaContext("nudge-deliver"), deps=self.deps)
        return [f["itemIdentifier"] for f in resp["batchItemFailures"]]


def test_an_action_is_sent_and_logged_with_no_batch_failures(
    module: ModuleType, fx: FakeDelivery
) -> None:
    run = Run(module, fx)
    action = an_action("u1")

    assert run([action]) == []
    assert [m.to for m in fx.email.sent] == ["ana@example.com"]
    assert fx.log.entry("u1", action.action_id).status == "sent"
    assert run.dead.dead_lettered == []


def test_the_injected_clock_decides_the_quiet_hours(module: ModuleType, fx: FakeDelivery) -> None:
    run = Run(module, fx, at=NOW + timedelta(hours=10))  # 22:00 UTC

    assert run([an_action("u1")]) == []
    assert fx.email.sent == [] and len(fx.deferrer.deferred) == 1


def test_a_template_error_dead_letters_the_action_with_its_reason_and_the_batch_goes_on(
    module: ModuleType, fx: FakeDelivery
) -> None:
    fx.renderer.broken.add("broken")
    run = Run(module, fx)
    bad = an_action("u1", "broken", channel="inapp")
    good = an_action("u2")

    assert run([bad, good]) == []
    [(body, group, reason)] = run.dead.dead_lettered
    assert (json.loads(body)["action_id"], group) == (bad.action_id, "u1")
    assert reason.startswith("template_error: broken/inapp")
    assert [m.to for m in fx.email.sent] == ["bo@example.com"]


def test_a_transient_failure_reports_the_user_s_undelivered_records_only(
    module: ModuleType, fx: FakeDelivery
) -> None:
    fx.email.fail_with.append(TransientSendError("Throttling: slow down"))
    run = Run(module, fx)
    first = an_action("u1", priority=100)
    then = an_action("u1", "product_dwell_upsell", channel="inapp", priority=30)
    other = an_action("u2", "product_dwell_upsell", channel="inapp")

    assert run([first, then, other]) == ["m0", "m1"]
    assert [m.trigger for m in fx.inbox.messages("u2")] == ["product_dwell_upsell"]


def test_a_record_that_is_not_an_action_is_dead_lettered_at_once(
    module: ModuleType, fx: FakeDelivery
) -> None:
    run = Run(module, fx)

    assert run(['{"user_id": "u1"}', an_action("u2")]) == []
    [(_, _, reason)] = run.dead.dead_lettered
    assert reason.startswith("invalid action: an action needs user_id, action_id")
    assert len(fx.email.sent) == 1
