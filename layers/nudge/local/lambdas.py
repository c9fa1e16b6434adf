"""Invoking the real handlers in-process with the event shapes AWS would send them:
API Gateway HTTP API (payload 2.0) requests and SQS batches with partial failures."""

from __future__ import annotations

import base64
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nudge.local.emulation import ACCOUNT, REGION

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef


def repo_root() -> Path:
    """The project folder (functions/, triggers/, templates/, config/)."""
    here = Path(__file__).resolve().parents[3]
    if (here / "functions").is_dir():
        return here
    return Path.cwd()


@dataclass
class LambdaContext:
    """The context object the Lambda runtime passes (the fields Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = ""
    log_group_name: str = ""
    log_stream_name: str = "local"
    deadline_ms: float = 0.0

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - time.time() * 1000))


class Function:
    """One function of the stack, loaded from functions/<name>/handler.py.

    `one_at_a_time`: invocations take turns, as in one Lambda execution environment,
    which is given one request at a time. The HTTP functions need it: Powertools' event
    resolver keeps the request being answered on the module's `app` (its event, its
    context), so two requests answered at once in one module read each other's query
    string and headers. The queue consumers keep nothing per invocation in the module
    and run batches of different users side by side, as Lambda does with several
    environments."""

    def __init__(self, name: str, timeout_s: int = 30, *, one_at_a_time: bool = False) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.module = self._load(name)
        deps = getattr(self.module, "deps", None)
        if deps is not None and hasattr(deps, "cache_clear"):
            deps.cache_clear()  # a cold start: settings and clients from this environment
        self.handler: Callable[[dict[str, Any], Any], Any] = self.module.handler
        self.invocations = 0
        self._lock = threading.Lock()
        self._turn: threading.Lock | None = threading.Lock() if one_at_a_time else None

    @staticmethod
    def load_module(name: str) -> ModuleType:
        """functions/<name>/handler.py, imported once (its AWS clients are made lazily)."""
        return Function._load(name)

    @staticmethod
    def _load(name: str) -> ModuleType:
        path = repo_root() / "functions" / name / "handler.py"
        mod_name = f"nudge_function_{name}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        return module

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.invocations += 1
        ctx = LambdaContext(
            function_name=f"nudge-{self.name}",
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/nudge-{self.name}",
            deadline_ms=time.time() * 1000 + self.timeout_s * 1000,
        )
        if self._turn is None:
            return self.handler(event, ctx)
        with self._turn:
            return self.handler(event, ctx)


def http_event(
    *,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
    now_ms: int,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) request event."""
    lower = {k.lower(): v for k, v in headers.items()}
    binary = bool(lower.get("content-encoding"))
    text: str | None = None
    if body:
        try:
            text = body.decode("utf-8") if not binary else None
        except UnicodeDecodeError:
            text = None
        if text is None:
            binary = True
    qs: dict[str, str] = {}
    if query:
        from urllib.parse import parse_qsl

        for k, v in parse_qsl(query, keep_blank_values=True):
            qs[k] = f"{qs[k]},{v}" if k in qs else v
    request_id = uuid.uuid4().hex[:16]
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lower,
        "queryStringParameters": qs or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": lower.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lower.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
            "timeEpoch": now_ms,
        },
        "body": (base64.b64encode(body).decode() if binary else text) if body else None,
        "isBase64Encoded": binary and bool(body),
    }


def sqs_event(messages: Sequence[MessageTypeDef], queue_arn: str) -> dict[str, Any]:
    """A Lambda SQS event from ReceiveMessage results (as the event source mapping builds it)."""
    records = []
    for m in messages:
        attrs = {k: str(v) for k, v in (m.get("Attributes") or {}).items()}
        msg_attrs: dict[str, dict[str, Any]] = {
            name: {
                "stringValue": a.get("StringValue"),
                "binaryValue": a.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": a.get("DataType", "String"),
            }
            for name, a in (m.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": attrs,
                "messageAttributes": msg_attrs,
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}
