"""Dead-letter entries (docs/decisions.md D40): bounded entries, the last allowed receive
told from the earlier ones, what the consumers note (a body moved at once, a record
failing on its last attempt, with the error's class and message), and the report that
lists them newest first beside the queues' sizes, all on in-memory ports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nudge import constants as C
from nudge.batch import DeadLetterWatch, read_fifo_batch
from nudge.domain.clock import iso
from nudge.domain.dead_letters import (
    MAX_BODY_BYTES,
    MAX_ERROR_BYTES,
    MAX_GROUP_BYTES,
    DeadLetter,
    dead_letter,
    dead_letters_report,
    is_last_attempt,
)
from nudge.domain.delivery import TransientSendError
from nudge.domain.events import normalize_event
from nudge.domain.messages import ActionMessage
from nudge.domain.ports import StoredProfile
from nudge.domain.triggers.engine import Engine
from nudge.domain.triggers.loader import load_triggers
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    NOW,
    SHOE,
    FakeDelivery,
    MemoryActionQueue,
    MemoryArchive,
    MemoryDeadLetterLog,
    MemoryDeadLetters,
    MemoryDeliveryLog,
    MemoryDevices,
    MemoryEventQueue,
    MemoryInbox,
    MemoryKeyStore,
    MemoryProfileStore,
    MemoryQueueDepths,
    MemoryWakeUps,
    StaticKey,
    a_profile,
    an_action,
    an_http_request,
    an_sqs_batch,
    frozen_clock,
)

ROOT = Path(__file__).resolve().parents[2]
MAX = 5  # the queues' maxReceiveCount


def an_entry(message_id: str = "m1", **kw: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "queue": C.EVENTS_QUEUE,
        "message_id": message_id,
        "group": "u1",
        "receive_count": MAX,
        "moved_by": "redrive",
        "error_type": "RuntimeError",
        "error": "DynamoDB unavailable",
        "body": '{"kind":"events"}',
        "at": NOW,
    }
    fields.update(kw)
    return dead_letter(**fields)


def records(*specs: tuple[str, str, int]) -> list[dict[str, Any]]:
    """SQS records (group, body, ApproximateReceiveCount), message ids m0, m1, ..."""
    return [
        {
            "MessageId": f"m{i}",
            "ReceiptHandle": f"r{i}",
            "Body": body,
            "Attributes": {
                "MessageGroupId": group,
                "SequenceNumber": str(i),
                "ApproximateReceiveCount": str(count),
            },
        }
        for i, (group, body, count) in enumerate(specs)
    ]


# ---- the entry -------------------------------------------------------------------------------


def test_an_entry_clips_each_text_to_its_bound_in_bytes_and_keeps_the_body_s_size() -> None:
    body = json.dumps({"kind": "events", "traits": {"name": "Zoë " * 400}})
    entry = an_entry(error="é" * 1000 + " tail", body=body, group="g" * 300)

    assert len(entry.error.encode()) <= MAX_ERROR_BYTES and entry.error.startswith("éé")
    assert len(entry.body.encode()) <= MAX_BODY_BYTES and body.startswith(entry.body)
    assert len(entry.group) == MAX_GROUP_BYTES
    assert entry.body_bytes == len(body.encode())
    view = entry.view()
    assert view["truncated"] is True and view["at"] == iso(NOW)
    assert an_entry().view()["truncated"] is False


def test_an_entry_of_the_longest_texts_is_one_dynamodb_write_unit() -> None:
    # given every text at or beyond its bound, in characters of 2 to 4 UTF-8 bytes
    from nudge.adapters.dead_letters import sort_key
    from nudge.adapters.tables import DeadLetterRow, dead_letter_partition

    entry = an_entry(
        message_id="8" * 200,
        group="g" * 200,
        error_type="E" * 200,
        error="😀" * 500,
        body="ü" * 5000,
    )
    row = DeadLetterRow(
        dead_letter_partition(entry.queue),
        sort_key(entry),
        queue=entry.queue,
        message_id=entry.message_id,
        group=entry.group,
        receive_count=entry.receive_count,
        moved_by=entry.moved_by,
        error_type=entry.error_type,
        error=entry.error,
        body=entry.body,
        body_bytes=entry.body_bytes,
        at=1_800_000_000_000,
        expires_at=entry.expires_at,
    )
    # then the item (names and values, as DynamoDB sizes them) stays under 1 KB
    size = sum(
        len(name.encode()) + len(str(next(iter(value.values()))).encode())
        for name, value in row.serialize().items()
    )
    assert size < 1024, size


def test_only_a_receive_that_reached_the_max_receive_count_is_the_last_attempt() -> None:
    assert [is_last_attempt(n, MAX) for n in range(1, 7)] == [False] * 4 + [True, True]
    assert not is_last_attempt(None, MAX)


def test_an_entry_of_a_queue_without_a_dlq_is_refused() -> None:
    with pytest.raises(ValueError, match="no dead-letter queue"):
        an_entry(queue="timers")


# ---- the report ------------------------------------------------------------------------------


def test_the_report_lists_both_queues_newest_first_without_expired_entries() -> None:
    log = MemoryDeadLetterLog()
    log.record(
        [
            an_entry("old", at=NOW - timedelta(days=C.DEAD_LETTER_RETENTION_DAYS, seconds=1)),
            an_entry("e1", at=NOW - timedelta(minutes=3)),
            an_entry("a1", queue=C.ACTIONS_QUEUE, at=NOW - timedelta(minutes=1)),
            an_entry("e2", at=NOW - timedelta(minutes=2)),
        ]
    )
    depths = MemoryQueueDepths(events=3, actions=1)

    report = dead_letters_report(log, depths, limit=10, now=NOW)

    assert [e["message_id"] for e in report["dead_letters"]] == ["a1", "e2", "e1"]
    assert report["queues"] == [
        {"queue": "events", "messages": 3},
        {"queue": "actions", "messages": 1},
    ]
    assert report["retention_days"] == 14
    limited = dead_letters_report(log, depths, limit=2, now=NOW)
    assert [e["message_id"] for e in limited["dead_letters"]] == ["a1", "e2"]


# ---- what a consumer notes ---------------------------------------------------------------------


def watch(event: dict[str, Any], log: MemoryDeadLetterLog | None) -> DeadLetterWatch:
    return DeadLetterWatch(event, log=log, queue=C.EVENTS_QUEUE, max_receive_count=MAX, now=NOW)


def test_a_failed_record_is_noted_on_its_last_receive_and_not_before() -> None:
    log = MemoryDeadLetterLog()
    event = an_sqs_batch(records(("u1", "a", MAX - 1), ("u2", "b", MAX)))
    w = watch(event, log)
    w.failed(["m0", "m1"], RuntimeError("DynamoDB unavailable"))

    assert w.record([{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]) == 1

    [entry] = log.entries
    assert (entry.message_id, entry.group, entry.receive_count) == ("m1", "u2", MAX)
    assert (entry.moved_by, entry.error_type, entry.error) == (
        "redrive",
        "RuntimeError",
        "DynamoDB unavailable",
    )
    assert entry.body == "b" and entry.at == NOW


def test_a_record_moved_by_the_function_is_noted_on_any_receive() -> None:
    log = MemoryDeadLetterLog()
    w = watch(an_sqs_batch(records(("poison", "{", 1))), log)
    w.moved("m0", error_type="ValueError", error="invalid message: not JSON")

    assert w.record([]) == 1
    [entry] = log.entries
    assert (entry.moved_by, entry.receive_count, entry.error_type) == ("function", 1, "ValueError")


def test_a_failure_with_no_reason_noted_is_still_recorded_as_such() -> None:
    log = MemoryDeadLetterLog()
    w = watch(an_sqs_batch(records(("u1", "a", MAX))), log)

    w.record([{"itemIdentifier": "m0"}])
    assert [e.error_type for e in log.entries] == ["UnknownError"]


def test_the_first_reason_given_for_a_record_is_kept() -> None:
    log = MemoryDeadLetterLog()
    w = watch(an_sqs_batch(records(("u1", "a", MAX))), log)
    w.failed(["m0"], TransientSendError("Throttling"))
    w.failed(["m0"], RuntimeError("archive down"))

    w.record([{"itemIdentifier": "m0"}])
    assert [(e.error_type, e.error) for e in log.entries] == [("TransientSendError", "Throttling")]


def test_an_entry_that_cannot_be_written_is_logged_and_never_fails_the_batch() -> None:
    log = MemoryDeadLetterLog()
    log.fail_with.append(RuntimeError("ProvisionedThroughputExceededException"))
    w = watch(an_sqs_batch(records(("u1", "a", MAX))), log)
    w.failed(["m0"], RuntimeError("boom"))

    assert w.record([{"itemIdentifier": "m0"}]) == 0
    assert log.entries == []


def test_without_a_log_nothing_is_written() -> None:
    w = watch(an_sqs_batch(records(("u1", "a", MAX))), None)
    w.failed(["m0"], RuntimeError("boom"))
    assert w.record([{"itemIdentifier": "m0"}]) == 0


@dataclass(frozen=True)
class Parsed:
    """A parsed body: whose it is (read_fifo_batch groups by `user_id`)."""

    user_id: str
    body: str


def test_the_batch_reader_tells_the_watch_of_poison_and_of_failed_parses() -> None:
    # given a poison body, a parse that raises on a user's first record, and that user's
    # next record (which the FIFO processor fails unread, to keep the group's order)
    def parse(body: str) -> Parsed:
        if body == "poison":
            raise ValueError("not a message")
        if body == "explodes":
            raise RuntimeError("parser bug")
        return Parsed("u1", body)

    log = MemoryDeadLetterLog()
    event = an_sqs_batch(
        records(("p", "poison", 1), ("u1", "explodes", MAX), ("u1", "next", MAX), ("u2", "ok", 1))
    )
    w = watch(event, log)
    dead = MemoryDeadLetters()

    items, failures = read_fifo_batch(
        event,
        LambdaContext("nudge-process"),
        parse=parse,
        dead_letters=dead,
        what="message",
        watch=w,
    )
    w.record(failures)

    assert [f["itemIdentifier"] for f in failures] == ["m1", "m2"]
    assert items == {"u1": [("m3", Parsed("u1", "ok"))]}
    got = {(e.message_id, e.moved_by, e.error_type) for e in log.entries}
    assert got == {
        ("m0", "function", "ValueError"),
        ("m1", "redrive", "RuntimeError"),
        ("m2", "redrive", "SQSFifoMessageGroupCircuitBreakerError"),
    }
    assert [e.error for e in log.entries if e.message_id == "m0"] == [
        "invalid message: not a message"
    ]


# ---- the process and deliver functions ---------------------------------------------------------


@pytest.fixture(scope="module")
def process() -> ModuleType:
    return Function.load_module("process")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_triggers(ROOT / "triggers"))


def run_process(
    module: ModuleType, engine: Engine, event: dict[str, Any], store: MemoryProfileStore
) -> tuple[list[str], MemoryDeadLetterLog]:
    log = MemoryDeadLetterLog()
    deps = module.Deps(
        store=store,
        dead_letters=MemoryDeadLetters(),
        engine=engine,
        actions=MemoryActionQueue(),
        wakeups=MemoryWakeUps(),
        archive=MemoryArchive(),
        clock=frozen_clock(),
        dead_letter_log=log,
        max_receive_count=MAX,
    )
    resp = module.handler(event, LambdaContext("nudge-process"), deps=deps)
    return [f["itemIdentifier"] for f in resp["batchItemFailures"]], log


def events_body(user: str, message_id: str) -> str:
    queue = MemoryEventQueue()
    raw = {"type": "track", "userId": user, "event": "Product Added", "properties": SHOE}
    raw |= {"messageId": message_id, "timestamp": iso(NOW)}
    queue.send([normalize_event(raw, kind=None, received_at=NOW)])
    return queue.messages[0][1]


@pytest.mark.parametrize(("count", "recorded"), [(MAX - 1, 0), (MAX, 1)])
def test_process_records_a_user_whose_fold_fails_on_the_last_receive_only(
    process: ModuleType, engine: Engine, count: int, recorded: int
) -> None:
    store = MemoryProfileStore()
    store.fail_saves["u2"] = RuntimeError("DynamoDB unavailable")
    event = an_sqs_batch(
        records(("u1", events_body("u1", "e1"), count), ("u2", events_body("u2", "e2"), count))
    )

    failed, log = run_process(process, engine, event, store)

    assert failed == ["m1"]
    assert [(e.message_id, e.group, e.error) for e in log.entries] == [
        ("m1", "u2", "DynamoDB unavailable")
    ][:recorded]


def test_process_records_a_message_of_an_unknown_version_moved_at_once(
    process: ModuleType, engine: Engine
) -> None:
    body = '{"kind": "events", "v": 9, "user_id": "u1", "events": []}'
    failed, log = run_process(
        process, engine, an_sqs_batch(records(("u1", body, 1))), MemoryProfileStore()
    )

    assert failed == []
    [entry] = log.entries
    assert (entry.queue, entry.moved_by, entry.group, entry.body) == (
        "events",
        "function",
        "u1",
        body,
    )
    assert "unknown events message version 9" in entry.error


@pytest.fixture(scope="module")
def deliver() -> ModuleType:
    return Function.load_module("deliver")


def run_deliver(
    module: ModuleType, fx: FakeDelivery, bodies: list[tuple[ActionMessage, int]]
) -> tuple[list[str], MemoryDeadLetterLog]:
    log = MemoryDeadLetterLog()
    deps = module.Deps(
        ports=fx.ports,
        dead_letters=MemoryDeadLetters(),
        clock=frozen_clock(),
        dead_letter_log=log,
        max_receive_count=MAX,
    )
    event = an_sqs_batch(
        records(*((a.user_id, a.to_json(), n) for a, n in bodies)), "nudge-actions.fifo"
    )
    resp = module.handler(event, LambdaContext("nudge-deliver"), deps=deps)
    return [f["itemIdentifier"] for f in resp["batchItemFailures"]], log


def test_deliver_records_an_action_it_dead_letters_with_the_reason_s_code(
    deliver: ModuleType,
) -> None:
    fx = FakeDelivery()
    fx.profiles.save(StoredProfile(a_profile("u1"), None))
    fx.renderer.broken.add("cart_abandonment")

    failed, log = run_deliver(deliver, fx, [(an_action("u1"), 1)])

    assert failed == []
    [entry] = log.entries
    assert (entry.queue, entry.moved_by, entry.error_type) == (
        "actions",
        "function",
        "template_error",
    )
    assert "'nope' is undefined" in entry.error and entry.receive_count == 1


def test_deliver_records_a_transient_failure_on_the_last_receive(deliver: ModuleType) -> None:
    fx = FakeDelivery()
    fx.profiles.save(StoredProfile(a_profile("u1"), None))
    fx.email.fail_with.append(TransientSendError("Throttling: slow down"))

    failed, log = run_deliver(deliver, fx, [(an_action("u1"), MAX)])

    assert failed == ["m0"]
    assert [(e.moved_by, e.error_type, e.error) for e in log.entries] == [
        ("redrive", "TransientSendError", "Throttling: slow down")
    ]


# ---- the api route -------------------------------------------------------------------------------

ADMIN_KEY = "ak_unit"


def api_get(query: str = "", *, log: MemoryDeadLetterLog | None) -> tuple[int, Any]:
    module = Function.load_module("api")
    deps = module.Deps(
        keys=MemoryKeyStore({"wk_unit": "write", ADMIN_KEY: "admin"}),
        profiles=MemoryProfileStore(),
        inbox=MemoryInbox(),
        log=MemoryDeliveryLog(),
        unsubscribe_key=StaticKey(),
        devices=MemoryDevices(),
        openapi_path=str(ROOT / "docs" / "openapi.json"),
        clock=frozen_clock(),
        dead_letter_log=log,
        dlq_depths=MemoryQueueDepths(events=2) if log is not None else None,
    )
    request = an_http_request("GET", "/v1/reports/dead-letters", bearer=ADMIN_KEY, query=query)
    resp = module.handler(request, LambdaContext("nudge-api"), deps=deps)
    return resp["statusCode"], json.loads(resp["body"])


def test_the_route_answers_the_report_and_refuses_a_bad_limit() -> None:
    log = MemoryDeadLetterLog()
    log.record([an_entry("e1"), an_entry("e2", at=NOW + timedelta(seconds=1))])

    status, body = api_get("limit=1", log=log)
    assert status == 200
    assert [e["message_id"] for e in body["dead_letters"]] == ["e2"]
    assert body["queues"][0] == {"queue": "events", "messages": 2}
    assert api_get("limit=0", log=log)[0] == 400
    assert api_get("limit=201", log=log)[0] == 400


def test_the_route_is_a_503_where_the_api_has_no_dead_letter_log() -> None:
    status, body = api_get(log=None)
    assert status == 503 and "dead-letter" in body["message"]
