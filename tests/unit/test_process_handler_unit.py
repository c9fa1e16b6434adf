"""The process function's handler on in-memory ports (its `deps` argument), without moto:
an SQS batch of events-queue messages in, the profiles, wake-ups, actions, archive,
dead letters and batch item failures out. The same handler runs against moto in
tests/integration/test_process_handler.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nudge.domain.clock import iso
from nudge.domain.events import normalize_event
from nudge.domain.messages import timers_messages
from nudge.domain.triggers.engine import Engine
from nudge.domain.triggers.loader import load_triggers
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    NOW,
    SHOE,
    MemoryActionQueue,
    MemoryArchive,
    MemoryDeadLetters,
    MemoryEventQueue,
    MemoryProfileStore,
    MemoryWakeUps,
    an_sqs_batch,
    frozen_clock,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("process")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_triggers(ROOT / "triggers"))


class Run:
    """The process function with its ports in memory; `events` queues what ingest would."""

    def __init__(self, module: ModuleType, engine: Engine) -> None:
        self.module, self.engine = module, engine
        self.store = MemoryProfileStore()
        self.dead = MemoryDeadLetters()
        self.actions = MemoryActionQueue()
        self.wakeups = MemoryWakeUps()
        self.archive = MemoryArchive()
        self.queue = MemoryEventQueue()

    def track(self, user: str, event: str, message_id: str, **props: Any) -> None:
        raw = {
            "type": "track",
            "userId": user,
            "event": event,
            "properties": props,
            "messageId": message_id,
            "timestamp": iso(NOW),
        }
        self.queue.send([normalize_event(raw, kind=None, received_at=NOW)])

    def __call__(self, *, at: datetime = NOW, bodies: tuple[str, ...] = ()) -> list[str]:
        """Hands what is queued (and `bodies`) to the handler as one batch."""
        self.queue.messages += [("poison", b) for b in bodies]
        event = an_sqs_batch(self.queue.records())
        self.queue.messages = []
        deps = self.module.Deps(
            store=self.store,
            dead_letters=self.dead,
            engine=self.engine,
            actions=self.actions,
            wakeups=self.wakeups,
            archive=self.archive,
            clock=frozen_clock(at),
        )
        resp = self.module.handler(event, LambdaContext("nudge-process"), deps=deps)
        return [f["itemIdentifier"] for f in resp["batchItemFailures"]]


def test_a_packed_message_is_folded_archived_and_arms_the_trigger_s_timer(
    module: ModuleType, engine: Engine
) -> None:
    run = Run(module, engine)
    run.track("u1", "Product Viewed", "e1", **SHOE)
    run.track("u1", "Product Added", "e2", **SHOE)

    assert run() == []
    profile = run.store.profile("u1")
    assert list(profile.cart) == ["p-trail"] and profile.event_counts["Product Added"] == 1
    assert [e["message_id"] for e in run.archive.events()] == ["e1", "e2"]
    assert ("u1", "cart_abandonment") in {(u, t) for _, u, t, _ in run.wakeups.armed()}
    assert run.actions.actions == [] and run.dead.dead_lettered == []


def test_a_failing_user_reports_its_own_records_and_the_others_commit(
    module: ModuleType, engine: Engine
) -> None:
    run = Run(module, engine)
    run.store.fail_saves["u2"] = RuntimeError("DynamoDB unavailable")
    run.track("u1", "Product Added", "e1", **SHOE)
    run.track("u2", "Product Added", "e2", **SHOE)
    run.track("u2", "Product Viewed", "e3", **SHOE)

    assert run() == ["m1", "m2"]  # the SQS ids of the second and third records: u2's
    assert run.store.get("u2") is None and list(run.store.profile("u1").cart) == ["p-trail"]
    assert [e["message_id"] for e in run.archive.events()] == ["e1"]


def test_an_unknown_message_version_is_dead_lettered_with_its_reason(
    module: ModuleType, engine: Engine
) -> None:
    run = Run(module, engine)
    run.track("u1", "Product Added", "e1", **SHOE)

    assert run(bodies=('{"kind": "events", "v": 9, "user_id": "u1", "events": []}',)) == []
    [(_, group, reason)] = run.dead.dead_lettered
    assert group == "poison" and "unknown events message version 9" in reason
    assert list(run.store.profile("u1").cart) == ["p-trail"]


def test_the_check_function_s_timers_message_fires_the_due_trigger(
    module: ModuleType, engine: Engine
) -> None:
    run = Run(module, engine)
    run.track("u1", "Product Added", "e1", **SHOE)
    run()
    [(bucket, *_)] = run.wakeups.armed()
    later = NOW + timedelta(minutes=16)

    run.queue.send_timers(timers_messages(bucket, run.wakeups.due(bucket)))  # as check does
    assert run(at=later) == []

    assert [(a.user_id, a.trigger_id) for a in run.actions.actions] == [("u1", "cart_abandonment")]
