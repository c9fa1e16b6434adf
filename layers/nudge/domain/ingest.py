"""The ingest use case: from an HTTP request body to validated, normalized events.

Pure: the handler supplies the bytes, headers and receive time, and queues what this
returns. Auth and rate limiting live here too, against ports for the key store.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from nudge.constants import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from nudge.domain.archive import ArchiveRecord
from nudge.domain.errors import (
    BadRequestError,
    InvalidJsonError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
    ValidationFailedError,
)
from nudge.domain.events import EVENT_TYPES, Event, Rejection, normalize_event, unstorable
from nudge.domain.ports import ArchiveWriter, EventQueue
from nudge.domain.tracking import TrackingPlan, violation_events

KeyKind = Literal["write", "admin"]
INGEST_KINDS = (*EVENT_TYPES, "batch", "import")
# analytics.js (Segment's browser SDK) posts each event to the first letter of its type
# under its apiHost (`/v1/t`, `/v1/i`, ...) and, when batching, to `/v1/b`: the same
# endpoints under short names.
SHORT_KINDS = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": "batch",
}
INGEST_PATHS = (*INGEST_KINDS, *SHORT_KINDS)  # every `/v1/<segment>` ingest accepts
# The ingest function's HTTP routes, in API Gateway's syntax, listed once: the stack routes
# them to the function (infra/constructs/ingest.py), its handler serves them
# (nudge.http.resolver_route), the OpenAPI document describes them.
INGEST_ROUTES = {segment: f"/v1/{segment}" for segment in INGEST_PATHS}  # POST, by segment
BROWSER_SETTINGS_ROUTE = "/v1/projects/{writeKey}/settings"  # GET: what analytics.js loads
MAX_DECOMPRESSED_BYTES = 4 * MAX_BATCH_BYTES


def hash_key(key: str) -> str:
    """Keys are stored only as this digest (never in code or logs)."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore(Protocol):
    def kind_of(self, key_hash: str) -> KeyKind | None: ...


def basic_auth_user(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic Authorization header (Segment puts the write key there)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def decode_body(body: bytes, *, content_encoding: str | None, limit: int) -> Any:
    """Bytes of a request body → JSON value, after gzip when the client compressed it."""
    if len(body) > limit:
        raise PayloadTooLargeError(f"request body is over the {limit // 1024} KB limit")
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            if encoding == "deflate":
                # bounded, like gzip below: a small body must not inflate without limit
                inflater = zlib.decompressobj()
                body = inflater.decompress(body, MAX_DECOMPRESSED_BYTES + 1)
                if not inflater.eof and len(body) <= MAX_DECOMPRESSED_BYTES:
                    raise zlib.error("truncated stream")
            else:
                with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
                    body = f.read(MAX_DECOMPRESSED_BYTES + 1)
        except (OSError, EOFError, zlib.error) as err:
            raise InvalidJsonError(f"body is not valid {encoding}: {err}") from None
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body is over the {limit // 1024} KB limit")
    elif encoding not in ("", "identity"):
        raise InvalidJsonError(f"unsupported Content-Encoding {content_encoding!r}")
    if not body.strip():
        raise InvalidJsonError("request body is empty")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and integers over
        # Python's digit limit; RecursionError, arrays or objects nested too deep
        message = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise InvalidJsonError(f"request body is not valid JSON: {message}") from None


@dataclass
class IngestResult:
    accepted: list[Event] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    write_key: str | None = None
    # the tracking plan's `Violation Generated` events, of accepted and blocked events alike
    violations: list[Event] = field(default_factory=list)

    def admit(self, event: Event, index: int, plan: TrackingPlan | None) -> str | None:
        """Accepts the event unless the tracking plan blocks it (then: the reason)."""
        found = plan.check(event) if plan is not None else []
        blocked = plan is not None and plan.blocks(event, found)
        if found:
            self.violations.extend(
                violation_events(event, found, blocked=blocked, received_at=event.received_at)
            )
        if blocked:
            reason = "; ".join(v.describe() for v in found)
            self.rejected.append(Rejection(index=index, message=reason))
            return reason
        self.accepted.append(event)
        return None

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": True}
        if self.rejected:
            body["details"] = [r.model_dump() for r in self.rejected]
        return body


def endpoint_kind(segment: str) -> str:
    """The kind of request a `/v1/<segment>` path stands for (`t` -> `track`, ...)."""
    return SHORT_KINDS.get(segment, segment)


def parse_request(
    kind: str, payload: Any, *, received_at: datetime, plan: TrackingPlan | None = None
) -> IngestResult:
    """Validate a decoded request of one of the Segment ingest endpoints.

    Single-event endpoints raise on an invalid event (400); a batch accepts the valid
    items and reports the invalid ones by index, and raises only when none is valid. An
    event the tracking `plan` blocks is invalid; its violations are in the result either way.
    """
    if endpoint_kind(kind) not in INGEST_KINDS:
        raise ValidationFailedError(f"unknown endpoint /v1/{kind}")
    kind = endpoint_kind(kind)
    if not isinstance(payload, dict):
        raise ValidationFailedError("request body must be a JSON object")
    write_key = payload.get("writeKey") if isinstance(payload.get("writeKey"), str) else None
    result = IngestResult(write_key=write_key)

    if kind in ("batch", "import"):
        items = payload.get("batch")
        if not isinstance(items, list):
            raise ValidationFailedError('a batch needs a "batch" array of events')
        if not items:
            raise ValidationFailedError("the batch is empty")
        # the batch's own fields (`context` and `integrations` merge into every item): a
        # value there that cannot be stored makes every item invalid
        problem = unstorable({k: v for k, v in payload.items() if k != "batch"})
        if problem:
            raise ValidationFailedError(
                f"batch {problem}",
                details=[{"index": i, "message": f"batch {problem}"} for i in range(len(items))],
            )
        ctx = payload.get("context") if isinstance(payload.get("context"), dict) else None
        integ = (
            payload.get("integrations") if isinstance(payload.get("integrations"), dict) else None
        )
        sent_at = _parse_time(payload.get("sentAt"))
        for i, item in enumerate(items):
            try:
                event = normalize_event(
                    item,
                    kind=None,
                    received_at=received_at,
                    batch_context=ctx,
                    batch_integrations=integ,
                    batch_sent_at=sent_at,
                    historical=kind == "import",
                )
            except ValueError as err:
                result.rejected.append(Rejection(index=i, message=str(err)))
                continue
            result.admit(event, i, plan)
        if not result.accepted:
            raise ValidationFailedError(
                "no valid event in the batch", details=[r.model_dump() for r in result.rejected]
            )
        return result

    size = len(
        json.dumps(payload, separators=(",", ":"), default=str, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    )
    if size > MAX_EVENT_BYTES:
        raise PayloadTooLargeError(f"event is over the {MAX_EVENT_BYTES // 1024} KB limit")
    try:
        event = normalize_event(payload, kind=kind, received_at=received_at)
    except ValueError as err:
        raise ValidationFailedError(str(err), details=[{"index": 0, "message": str(err)}]) from None
    reason = result.admit(event, 0, plan)
    if reason is not None:
        raise ValidationFailedError(reason, details=[{"index": 0, "message": reason}])
    return result


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def authenticate_write(
    keys: KeyStore, *, authorization: str | None, body_write_key: str | None
) -> str:
    """Returns the hash of the write key that authenticated the request."""
    key = basic_auth_user(authorization) or body_write_key
    if not key:
        raise UnauthorizedError(
            "missing write key: use HTTP Basic auth with the write key as user name"
        )
    digest = hash_key(key)
    if keys.kind_of(digest) != "write":
        raise UnauthorizedError("invalid write key")
    return digest


class RateLimiter:
    """A token bucket per key (Segment's guidance: 1,000 requests/s per write key).

    On AWS each function instance holds its own bucket, so this is a per-instance
    guard; the API's stage throttling is the global ceiling (docs/decisions.md)."""

    def __init__(self, rate_per_second: float, burst: float | None = None) -> None:
        self.rate = float(rate_per_second)
        # at least one request: a rate under 1/s must still let a request through
        self.burst = float(burst if burst is not None else max(1.0, rate_per_second))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = max(1, int((1.0 - tokens) / self.rate + 0.999))
                raise RateLimitedError(
                    f"over {self.rate:g} requests per second for this write key",
                    retry_after_seconds=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)


def ingest(
    kind: str,
    body: bytes,
    *,
    content_encoding: str | None,
    authorization: str | None,
    received_at: datetime,
    keys: KeyStore,
    queue: EventQueue,
    limiter: RateLimiter | None = None,
    plan: TrackingPlan | None = None,
    violations: ArchiveWriter | None = None,
) -> IngestResult:
    """One request of the Segment HTTP Tracking API: authenticate, validate, queue.

    Answers only once every accepted event is queued (the queue raises otherwise). The
    tracking `plan`'s violations go to the archive (`violations`) after the events are
    queued; they are analytics: a failure to archive them is the caller's to log, never a
    reason to refuse events already queued (`archive_violations`)."""
    if endpoint_kind(kind) not in INGEST_KINDS:
        raise ValidationFailedError(f"unknown endpoint /v1/{kind}")
    kind = endpoint_kind(kind)
    limit = MAX_BATCH_BYTES if kind in ("batch", "import") else MAX_EVENT_BYTES
    key_hash: str | None = None
    if basic_auth_user(authorization):
        key_hash = authenticate_write(keys, authorization=authorization, body_write_key=None)
    payload = decode_body(body, content_encoding=content_encoding, limit=limit)
    if key_hash is None:
        body_key = payload.get("writeKey") if isinstance(payload, dict) else None
        key_hash = authenticate_write(
            keys, authorization=None, body_write_key=body_key if isinstance(body_key, str) else None
        )
    if limiter is not None:
        limiter.take(key_hash)
    result = parse_request(kind, payload, received_at=received_at, plan=plan)
    queue.send(result.accepted)
    return result


def archive_violations(result: IngestResult, archive: ArchiveWriter) -> int:
    """Archives the request's `Violation Generated` events; their number."""
    if not result.violations:
        return 0
    archive.write(ArchiveRecord.of(v, None).line() for v in result.violations)
    return len(result.violations)


# A host as a browser reached us: a name or address and an optional port, nothing else.
_HOST = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\])"  # name, IPv4 or [IPv6]
    r"(?::\d{1,5})?"  # port
)


def browser_settings(
    keys: KeyStore, write_key: str, *, host: str | None, protocol: str | None
) -> dict[str, Any]:
    """What analytics.js fetches from `{cdnURL}/v1/projects/{writeKey}/settings` before
    it sends anything (Segment's CDN serves it there): its Segment.io destination pointed
    at the host the browser fetched this from, no device-mode destinations, and no
    telemetry (`metrics.sampleRate` 0; analytics.js would post it to Segment).

    An unknown write key gets 404, so a wrong key shows in the browser's console at load
    time rather than as events that vanish (write keys are public: they ship in pages)."""
    if keys.kind_of(hash_key(write_key)) != "write":
        raise NotFoundError("no such write key: use the write key nudge printed or created")
    if not host or not _HOST.fullmatch(host):
        raise BadRequestError("the request has no usable Host header")
    scheme = (protocol or "http").split(",")[0].strip().lower()
    if scheme not in ("http", "https"):
        raise BadRequestError(f"unsupported protocol {scheme!r}")
    return {
        "integrations": {
            "Segment.io": {"apiKey": write_key, "apiHost": f"{host}/v1", "protocol": scheme}
        },
        "plan": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "remotePlugins": [],
    }
