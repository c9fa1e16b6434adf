"""Handlers under moto's mock_aws: the mock starts before any client is created, the
resources come from the same provisioning local mode uses, and each test gets fresh ones."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from nudge import constants as C
from nudge import runtime
from nudge.adapters.aws import reset_clients
from nudge.adapters.keys import create_key
from nudge.adapters.profiles import decode_item
from nudge.domain.clock import SettableClock
from nudge.local.emulation import Resources, provision
from nudge.local.lambdas import Function, http_event, sqs_event

ROOT = Path(__file__).resolve().parents[2]


def _share_parsed_botocore_models() -> None:
    """Each test starts a fresh mock_aws, and with it fresh boto3 sessions that would each
    parse the same service model files again (most of the ~60 ms a client costs to
    create). The parsed files are shared across sessions here, as each session's own
    cache already shares them across its clients (botocore treats them as read-only)."""
    import functools

    import botocore.loaders

    loader = botocore.loaders.Loader
    if getattr(loader, "_nudge_shared", False):
        return
    for name in ("load_service_model", "load_data_with_path", "determine_latest_version"):
        original = getattr(loader, name)
        shared: dict[Any, Any] = {}

        def cached(
            self: Any,
            *args: Any,
            _original: Any = original,
            _shared: dict[Any, Any] = shared,
            **kwargs: Any,
        ) -> Any:
            key = (tuple(self.search_paths), args, tuple(sorted(kwargs.items())))
            if key not in _shared:
                _shared[key] = _original(self, *args, **kwargs)
            return _shared[key]

        setattr(loader, name, functools.wraps(original)(cached))
    loader._nudge_shared = True  # type: ignore[attr-defined]


_share_parsed_botocore_models()
WRITE_KEY = "wk_integration"
ADMIN_KEY = "ak_integration"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Resources]:
    with mock_aws():
        reset_clients()
        res = provision(None)
        env = res.env()
        env.pop("AWS_ENDPOINT_URL")
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv(C.ENV_TRIGGERS_PATH, str(ROOT / "triggers"))
        monkeypatch.setenv("NUDGE_TEMPLATES_PATH", str(ROOT / "templates"))
        monkeypatch.setenv("NUDGE_CONFIG_PATH", str(ROOT / "config"))
        monkeypatch.setenv(C.ENV_OPENAPI_PATH, str(ROOT / "docs" / "openapi.json"))
        # each test's archive is new: the api's DuckDB copies of it must be too (its cache
        # trusts an hour it has read before, and every test's bucket has the same name)
        monkeypatch.setenv(C.ENV_ARCHIVE_CACHE_DIR, str(tmp_path / "archive-cache"))
        create_key("write", key=WRITE_KEY)
        create_key("admin", key=ADMIN_KEY)
        yield res
        reset_clients()


@pytest.fixture
def clock() -> Iterator[SettableClock]:
    from datetime import UTC, datetime

    c = SettableClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC), frozen=True)
    previous = runtime.clock()
    runtime.set_clock(c)
    yield c
    runtime.set_clock(previous)


class Fn:
    """A function of the stack, invoked the way AWS would invoke it."""

    def __init__(self, name: str) -> None:
        self.fn = Function(name)
        self.fn.module.deps.cache_clear()  # fresh clients against this test's mock

    def __call__(self, event: dict[str, Any]) -> Any:
        return self.fn.invoke(event)


@pytest.fixture
def ingest_fn(aws: Resources) -> Fn:
    return Fn(C.FN_INGEST)


@pytest.fixture
def process_fn(aws: Resources) -> Fn:
    return Fn(C.FN_PROCESS)


@pytest.fixture
def api_fn(aws: Resources) -> Fn:
    return Fn(C.FN_API)


def basic(key: str = WRITE_KEY) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def http(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    query: str = "",
) -> dict[str, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return http_event(
        method=method,
        path=path,
        query=query,
        headers=headers or {},
        body=data,
        source_ip="127.0.0.1",
        now_ms=0,
    )


def drain(
    res: Resources, process: Fn, *, queue: str = C.EVENTS_QUEUE, max_rounds: int = 50
) -> list[dict[str, Any]]:
    """Runs the queue's messages through the function as Lambda's event source would;
    returns every batch response."""
    sqs = boto3.client("sqs")
    url = res.queue_urls[queue]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    responses = []
    for _ in range(max_rounds):
        msgs = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not msgs:
            break
        resp = process(sqs_event(msgs, arn))
        responses.append(resp)
        failed = {f["itemIdentifier"] for f in resp.get("batchItemFailures", [])}
        ok = [m for m in msgs if m["MessageId"] not in failed]
        if ok:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ok)
                ],
            )
        retry = [m for m in msgs if m["MessageId"] in failed]
        if retry:
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(retry)
                ],
            )
    return responses


def queue_messages(res: Resources, logical: str) -> list[dict[str, Any]]:
    """Every message on the queue, with its attributes; consumes them (a FIFO queue hands
    out a message group's next messages only once the earlier ones are deleted)."""
    sqs = boto3.client("sqs")
    url = res.queue_urls[logical]
    out = []
    for _ in range(100):
        msgs = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            VisibilityTimeout=300,
        ).get("Messages", [])
        if not msgs:
            break
        out.extend(msgs)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    return out


def queue_arn(res: Resources, logical: str) -> str:
    sqs = boto3.client("sqs")
    return sqs.get_queue_attributes(QueueUrl=res.queue_urls[logical], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]


def bearer(key: str = ADMIN_KEY) -> str:
    return f"Bearer {key}"


def body_of(resp: dict[str, Any]) -> Any:
    """The JSON body of a handler's API Gateway response."""
    raw = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def stored_state(res: Resources, user_id: str) -> dict[str, Any] | None:
    """The profile document as the process function stored it (None: no item)."""
    item = (
        boto3.client("dynamodb")
        .get_item(
            TableName=res.tables[C.PROFILES], Key={"user_id": {"S": user_id}}, ConsistentRead=True
        )
        .get("Item")
    )
    return decode_item(item) if item else None


class AwsCalls:
    """AWS requests counted at the botocore level (what the handlers really send)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def count(self, operation: str, service: str | None = None, **match: Any) -> int:
        return sum(
            1
            for svc, op, params in self.calls
            if op == operation
            and (service is None or svc == service)
            and all(params.get(k) == v for k, v in match.items())
        )

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def aws_calls(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
    import botocore.client

    calls = AwsCalls()
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls.calls.append((self.meta.service_model.service_name, operation_name, dict(api_params)))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return calls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto server as local mode starts it in process (with its patches)."""
    from nudge.local.emulation import start_moto

    port = free_port()
    server = start_moto("127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
