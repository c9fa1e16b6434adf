"""Exactly-once delivery runs (issue 12, part 10): every action delivered three times
(the actions queue is at-least-once: a retried process batch past FIFO's 5-minute
deduplication window queues an action again), the copies shuffled and dealt in batches
of 10 to four concurrent deliver invocations, with no FIFO ordering to help. Each action
must still leave exactly one entry in the delivery log and at most one message, and a
record that found another invocation's claim comes back (as SQS brings it back) until
its action is decided. The figures are printed (`pytest -s`)."""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from moto.backends import get_backend
from nudge.adapters.delivery import DynamoInbox
from nudge.local.emulation import ACCOUNT, REGION
from nudge.local.lambdas import sqs_event

from tests.integration.delivery_support import Delivery, dx_fixture  # noqa: F401

THREADS = 4
COPIES = 3


@pytest.fixture
def atomic_conditional_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB evaluates a condition and writes atomically; moto's in-memory backend does
    not lock between the two, so give it that one guarantee of the real service."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "delete_item", "update_item"):
        real = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            with lock:
                return _real(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


def _records(actions: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Each action COPIES times, as separate SQS messages, shuffled."""
    copies = [(a, c) for a in actions for c in range(COPIES)]
    rng.shuffle(copies)
    return [
        {
            "MessageId": f"m-{i}",
            "ReceiptHandle": f"r-{i}",
            "Body": json.dumps(a, separators=(",", ":")),
            "Attributes": {
                "MessageGroupId": a["user_id"],
                "SequenceNumber": str(i),
                "ApproximateReceiveCount": "1",
            },
        }
        for i, (a, _c) in enumerate(copies)
    ]


def _concurrently(
    deliver: Any, batches: list[list[dict[str, Any]]], queue_arn: str
) -> tuple[list[dict[str, Any]], list[BaseException]]:
    """The batches delivered by THREADS invocations at once; the records they failed."""
    todo: queue.Queue[list[dict[str, Any]]] = queue.Queue()
    for b in batches:
        todo.put(b)
    failed: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker() -> None:
        start.wait()
        while True:
            try:
                batch = todo.get_nowait()
            except queue.Empty:
                return
            try:
                resp = deliver(sqs_event(batch, queue_arn))
            except BaseException as err:
                errors.append(err)
                return
            ids = {f["itemIdentifier"] for f in resp["batchItemFailures"]}
            failed.extend(m for m in batch if m["MessageId"] in ids)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return failed, errors


def test_each_action_three_times_shuffled_to_four_concurrent_senders_is_sent_once(
    dx: Delivery, atomic_conditional_writes: None
) -> None:
    # given 50 users with one to three actions each (email, push, in-app)
    rng = random.Random(3)
    actions: list[dict[str, Any]] = []
    for i in range(50):
        user = f"x{i:03d}"
        dx.seed(user, email=f"{user}@example.com", devices=[dx.endpoint(f"token-{user}")])
        kinds = rng.sample(["email", "push", "inapp"], rng.randint(1, 3))
        for kind in kinds:
            if kind == "email":
                actions.append(dx.action(user, "cart_abandonment"))
            elif kind == "push":
                actions.append(dx.action(user, "repeat_product_view"))
            else:
                actions.append(dx.action(user, "product_dwell_upsell"))
    records = _records(actions, rng)
    dx.deliver({"Records": []})  # the cold start, before the threads share the clients

    # when the copies go out in batches of 10 to four invocations at once, and what they
    # failed comes back after the visibility timeout, until nothing fails
    started = time.perf_counter()
    pending, rounds, retried, errors = records, 0, 0, []
    while pending and rounds < 10:
        batches = [pending[i : i + 10] for i in range(0, len(pending), 10)]
        pending, errs = _concurrently(dx.deliver, batches, dx.queue_arn)
        errors += errs
        retried += len(pending)
        rounds += 1
        dx.clock.set(dx.clock.now() + timedelta(seconds=180))
    took = time.perf_counter() - started

    # then
    entries = [e for u in {a["user_id"] for a in actions} for e in dx.log(u)]
    by_action = Counter(e.action_id for e in entries)
    statuses = Counter(e.status for e in entries)
    emails = Counter(m.destinations["ToAddresses"][0] for m in dx.emails())
    pushes = Counter(
        ep.token
        for ep in get_backend("sns")[ACCOUNT][REGION].platform_endpoints.values()
        for _ in ep.messages
    )
    inbox = DynamoInbox()
    in_app = Counter(
        m.action_id for u in {a["user_id"] for a in actions} for m in inbox.messages(u)
    )
    messages = sum(emails.values()) + sum(pushes.values()) + sum(in_app.values())
    print(
        f"\nexactly once: {len(actions)} actions x {COPIES} = {len(records)} records, shuffled, "
        f"{THREADS} concurrent invocations, {rounds} rounds, {retried} records retried "
        f"(another invocation held the claim) in {took:.1f} s\n"
        f"  outcomes {dict(statuses.most_common())}; messages {messages} (email "
        f"{sum(emails.values())}, push {sum(pushes.values())}, in-app {sum(in_app.values())}); "
        f"doubled {sum(1 for c in (emails, pushes, in_app) for n in c.values() if n > 1)}"
    )
    assert errors == [] and pending == []
    assert set(by_action) == {a["action_id"] for a in actions}
    assert max(by_action.values()) == 1  # one entry per action
    assert all(n == 1 for c in (emails, pushes, in_app) for n in c.values())  # none doubled
    assert messages == statuses["sent"]  # every message logged sent, every `sent` a message
    assert set(statuses) <= {"sent", "capped"}
