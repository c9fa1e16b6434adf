"""The ingest use case: body decoding, auth, validation by index, rate limiting (docs/api.md)."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from nudge.constants import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from nudge.domain.errors import (
    InvalidJsonError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
    ValidationFailedError,
)
from nudge.domain.events import Event
from nudge.domain.ingest import (
    KeyKind,
    RateLimiter,
    authenticate_write,
    basic_auth_user,
    bearer_token,
    decode_body,
    hash_key,
    ingest,
    parse_request,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WRITE_KEY = "wk_test"
ADMIN_KEY = "ak_test"


class FakeKeys:
    def __init__(self) -> None:
        self.kinds: dict[str, KeyKind] = {
            hash_key(WRITE_KEY): "write",
            hash_key(ADMIN_KEY): "admin",
        }

    def kind_of(self, key_hash: str) -> KeyKind | None:
        return self.kinds.get(key_hash)


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[Event] = []

    def send(self, events: Sequence[Event]) -> None:
        self.sent.extend(events)


def basic(key: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def run(
    kind: str,
    payload: Any,
    *,
    authorization: str | None = None,
    raw: bytes | None = None,
    encoding: str | None = None,
    queue: FakeQueue | None = None,
    limiter: RateLimiter | None = None,
) -> dict[str, Any]:
    return ingest(
        kind,
        raw if raw is not None else body(payload),
        content_encoding=encoding,
        authorization=authorization,
        received_at=NOW,
        keys=FakeKeys(),
        queue=queue if queue is not None else FakeQueue(),
        limiter=limiter,
    ).response()


# ---- decode_body ----------------------------------------------------------------------------


def test_plain_json_body_is_decoded() -> None:
    assert decode_body(b'{"a": 1}', content_encoding=None, limit=100) == {"a": 1}


def test_gzip_body_is_decompressed() -> None:
    data = gzip.compress(b'{"userId": "u1"}')
    assert decode_body(data, content_encoding="gzip", limit=1000) == {"userId": "u1"}


def test_content_encoding_is_case_and_space_insensitive() -> None:
    data = gzip.compress(b"[1]")
    assert decode_body(data, content_encoding=" GZIP ", limit=1000) == [1]


def test_deflate_body_is_decompressed() -> None:
    data = zlib.compress(b'{"userId": "u1"}')
    assert decode_body(data, content_encoding="deflate", limit=1000) == {"userId": "u1"}


def test_identity_encoding_is_plain() -> None:
    assert decode_body(b"{}", content_encoding="identity", limit=10) == {}


def test_invalid_gzip_is_invalid_json_error() -> None:
    with pytest.raises(InvalidJsonError, match="gzip"):
        decode_body(b"definitely not gzip", content_encoding="gzip", limit=1000)


def test_truncated_gzip_is_invalid_json_error() -> None:
    with pytest.raises(InvalidJsonError):
        decode_body(gzip.compress(b'{"a": 1}' * 50)[:20], content_encoding="gzip", limit=1000)


def test_invalid_deflate_is_invalid_json_error() -> None:
    with pytest.raises(InvalidJsonError, match="deflate"):
        decode_body(b"\x00\x01\x02", content_encoding="deflate", limit=1000)


def test_unsupported_content_encoding_is_rejected() -> None:
    with pytest.raises(InvalidJsonError, match="Content-Encoding"):
        decode_body(b"{}", content_encoding="br", limit=1000)


@pytest.mark.parametrize("raw", [b"", b"   \n"])
def test_empty_body_is_invalid_json_error(raw: bytes) -> None:
    with pytest.raises(InvalidJsonError, match="empty"):
        decode_body(raw, content_encoding=None, limit=100)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"{'single': 'quotes'}", b"\xff\xfe\x00garbage", b"[" * 100_000, b"1" * 5000],
    ids=["truncated", "not-json", "not-utf8", "nested-too-deep", "integer-too-long"],
)
def test_malformed_json_is_invalid_json_error(raw: bytes) -> None:
    with pytest.raises(InvalidJsonError):
        decode_body(raw, content_encoding=None, limit=len(raw) + 1)


def test_body_over_the_limit_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLargeError):
        decode_body(b"[" + b"1," * 600 + b"1]", content_encoding=None, limit=1000)


def test_body_exactly_at_the_limit_is_accepted() -> None:
    raw = b'"' + b"x" * 98 + b'"'
    assert len(raw) == 100
    assert decode_body(raw, content_encoding=None, limit=100) == "x" * 98


def test_gzip_body_over_the_limit_once_decompressed_is_payload_too_large() -> None:
    data = gzip.compress(json.dumps(["x" * 5000]).encode())
    assert len(data) < 1000
    with pytest.raises(PayloadTooLargeError):
        decode_body(data, content_encoding="gzip", limit=1000)


def _deflate_bomb(megabytes: int) -> bytes:
    c = zlib.compressobj(6)
    chunk = b"\0" * (1 << 20)
    return b"".join([c.compress(chunk) for _ in range(megabytes)] + [c.flush()])


@pytest.mark.parametrize("encoding,compress", [("gzip", gzip.compress), ("deflate", None)])
def test_compression_bomb_is_rejected_without_inflating_it_whole(
    encoding: str, compress: Any
) -> None:
    # given 16 MB of zeros compressed into a body well under the limit
    bomb = _deflate_bomb(16) if compress is None else compress(b"\0" * (16 << 20), 6)
    assert len(bomb) < MAX_EVENT_BYTES
    # when decoding it
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLargeError):
            decode_body(bomb, content_encoding=encoding, limit=MAX_EVENT_BYTES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then memory stays bounded by the decompression cap, not the bomb's size
    assert peak < 8 << 20


# ---- auth -----------------------------------------------------------------------------------


def test_basic_auth_user_is_the_write_key() -> None:
    assert basic_auth_user(basic("wk_abc")) == "wk_abc"
    assert basic_auth_user(basic("wk_abc", "ignored-password")) == "wk_abc"
    assert basic_auth_user("basic " + base64.b64encode(b"wk_abc:").decode()) == "wk_abc"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b":pw").decode(),
        "Bearer wk_abc",
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),
    ],
)
def test_unusable_basic_auth_gives_no_user(header: str | None) -> None:
    assert basic_auth_user(header) is None


def test_bearer_token_is_read_only_from_bearer_scheme() -> None:
    assert bearer_token("Bearer ak_1") == "ak_1"
    assert bearer_token("bearer  ak_1 ") == "ak_1"
    assert bearer_token("Basic ak_1") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_keys_are_looked_up_by_digest_only() -> None:
    assert hash_key("wk_test") != "wk_test"
    assert len(hash_key("wk_test")) == 64


def test_write_key_in_basic_auth_authenticates() -> None:
    assert authenticate_write(
        FakeKeys(), authorization=basic(WRITE_KEY), body_write_key=None
    ) == hash_key(WRITE_KEY)


def test_write_key_in_body_authenticates() -> None:
    assert authenticate_write(FakeKeys(), authorization=None, body_write_key=WRITE_KEY) == hash_key(
        WRITE_KEY
    )


def test_missing_write_key_is_unauthorized() -> None:
    with pytest.raises(UnauthorizedError, match="missing"):
        authenticate_write(FakeKeys(), authorization=None, body_write_key=None)


@pytest.mark.parametrize("key", ["wk_wrong", ADMIN_KEY])
def test_wrong_or_admin_key_cannot_ingest(key: str) -> None:
    with pytest.raises(UnauthorizedError, match="invalid"):
        authenticate_write(FakeKeys(), authorization=basic(key), body_write_key=None)


def test_ingest_with_wrong_basic_key_is_unauthorized_even_with_a_valid_body_key() -> None:
    with pytest.raises(UnauthorizedError):
        run(
            "track",
            {"userId": "u1", "event": "x", "writeKey": WRITE_KEY},
            authorization=basic("wk_wrong"),
        )


def test_ingest_rejects_a_bad_key_before_reading_the_body() -> None:
    with pytest.raises(UnauthorizedError):
        run("track", None, raw=b"not json at all", authorization=basic("wk_wrong"))


def test_ingest_accepts_the_body_write_key() -> None:
    queue = FakeQueue()
    assert run("track", {"userId": "u1", "event": "x", "writeKey": WRITE_KEY}, queue=queue) == {
        "success": True
    }
    assert [e.event for e in queue.sent] == ["x"]


def test_ingest_without_any_key_is_unauthorized_and_queues_nothing() -> None:
    queue = FakeQueue()
    with pytest.raises(UnauthorizedError):
        run("track", {"userId": "u1", "event": "x"}, queue=queue)
    assert queue.sent == []


# ---- validation -------------------------------------------------------------------------------


def test_single_event_is_queued_and_answered_success() -> None:
    queue = FakeQueue()
    resp = run(
        "identify",
        {"userId": "u1", "traits": {"email": "a@example.com"}},
        authorization=basic(WRITE_KEY),
        queue=queue,
    )
    assert resp == {"success": True}
    assert len(queue.sent) == 1
    assert queue.sent[0].type == "identify"


def test_invalid_single_event_is_validation_error_with_index_zero() -> None:
    queue = FakeQueue()
    with pytest.raises(ValidationFailedError) as err:
        run("track", {"userId": "u1"}, authorization=basic(WRITE_KEY), queue=queue)
    assert err.value.details == [{"index": 0, "message": err.value.message}]
    assert queue.sent == []


def test_batch_with_one_invalid_of_ten_queues_nine_and_reports_the_index() -> None:
    # given 10 events, the 4th without any id
    items = [
        {"type": "track", "userId": f"u{i}", "event": "Viewed", "messageId": f"m{i}"}
        for i in range(10)
    ]
    del items[3]["userId"]
    queue = FakeQueue()
    # when
    resp = run("batch", {"batch": items}, authorization=basic(WRITE_KEY), queue=queue)
    # then
    assert resp["success"] is True
    assert [d["index"] for d in resp["details"]] == [3]
    assert "userId" in resp["details"][0]["message"]
    assert sorted(e.message_id for e in queue.sent) == sorted(f"m{i}" for i in range(10) if i != 3)


def test_batch_with_no_valid_event_is_validation_error_with_every_index() -> None:
    items = [{"type": "track", "userId": "u1"}, {"type": "nope", "userId": "u1"}, "not an object"]
    queue = FakeQueue()
    with pytest.raises(ValidationFailedError) as err:
        run("batch", {"batch": items}, authorization=basic(WRITE_KEY), queue=queue)
    assert [d["index"] for d in err.value.details] == [0, 1, 2]
    assert all(d["message"] for d in err.value.details)
    assert queue.sent == []


@pytest.mark.parametrize("payload", [{"batch": []}, {"batch": "x"}, {}, [1, 2], "batch"])
def test_malformed_batch_is_validation_error(payload: Any) -> None:
    with pytest.raises(ValidationFailedError):
        parse_request("batch", payload, received_at=NOW)


def test_unknown_endpoint_is_validation_error() -> None:
    with pytest.raises(ValidationFailedError, match="unknown endpoint"):
        run("purchase", {"userId": "u1"}, authorization=basic(WRITE_KEY))


def test_batch_items_get_the_batch_context_and_sent_at() -> None:
    payload = {
        "batch": [
            {
                "type": "track",
                "userId": "u1",
                "event": "A",
                "timestamp": "2026-03-02T11:00:00Z",
                "context": {"ip": "1.1.1.1"},
            }
        ],
        "context": {"library": {"name": "analytics-python"}, "ip": "9.9.9.9"},
        "sentAt": "2026-03-02T11:30:00Z",  # client clock 30 minutes slow
    }
    [ev] = parse_request("batch", payload, received_at=NOW).accepted
    assert ev.context == {"library": {"name": "analytics-python"}, "ip": "1.1.1.1"}
    assert ev.timestamp == datetime(2026, 3, 2, 11, 30, tzinfo=UTC)


def test_import_marks_every_event_historical() -> None:
    payload = {
        "batch": [{"type": "track", "userId": "u1", "event": "A"}, {"type": "page", "userId": "u1"}]
    }
    accepted = parse_request("import", payload, received_at=NOW).accepted
    assert [e.historical for e in accepted] == [True, True]
    assert all(not e.historical for e in parse_request("batch", payload, received_at=NOW).accepted)


def test_single_event_over_32_kb_is_payload_too_large() -> None:
    payload = {"userId": "u1", "event": "x", "properties": {"pad": "x" * MAX_EVENT_BYTES}}
    with pytest.raises(PayloadTooLargeError):
        run("track", payload, authorization=basic(WRITE_KEY))


def test_event_over_32_kb_inside_a_batch_is_rejected_by_index() -> None:
    items = [
        {
            "type": "track",
            "userId": "u1",
            "event": "x",
            "properties": {"pad": "x" * MAX_EVENT_BYTES},
        },
        {"type": "track", "userId": "u1", "event": "y"},
    ]
    result = parse_request("batch", {"batch": items}, received_at=NOW)
    assert [r.index for r in result.rejected] == [0]
    assert [e.event for e in result.accepted] == ["y"]


def test_batch_over_500_kb_is_payload_too_large() -> None:
    items = [
        {"type": "track", "userId": "u1", "event": "x", "properties": {"pad": "x" * 20_000}}
    ] * 30
    raw = body({"batch": items})
    assert len(raw) > MAX_BATCH_BYTES
    with pytest.raises(PayloadTooLargeError):
        run("batch", None, raw=raw, authorization=basic(WRITE_KEY))


def test_gzip_batch_is_ingested() -> None:
    queue = FakeQueue()
    raw = gzip.compress(body({"batch": [{"type": "track", "userId": "u1", "event": "A"}]}))
    assert run(
        "batch", None, raw=raw, encoding="gzip", authorization=basic(WRITE_KEY), queue=queue
    ) == {"success": True}
    assert len(queue.sent) == 1


# ---- rate limiting ----------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_refuses_with_retry_after() -> None:
    limiter = RateLimiter(5)
    for _ in range(5):
        limiter.take("k", now=100.0)
    with pytest.raises(RateLimitedError) as err:
        limiter.take("k", now=100.0)
    assert err.value.retry_after_seconds >= 1


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(5)
    for _ in range(5):
        limiter.take("k", now=100.0)
    with pytest.raises(RateLimitedError):
        limiter.take("k", now=100.1)  # half a token back: still short
    limiter.take("k", now=100.4)  # 0.3 s more: two tokens, one taken
    for _ in range(5):
        limiter.take("k", now=102.0)  # refilled to the burst, never beyond it
    with pytest.raises(RateLimitedError):
        limiter.take("k", now=102.0)


def test_rate_limiter_retry_after_reflects_a_slow_rate() -> None:
    limiter = RateLimiter(0.25, burst=1)
    limiter.take("k", now=0.0)
    with pytest.raises(RateLimitedError) as err:
        limiter.take("k", now=0.0)
    assert err.value.retry_after_seconds == 4


def test_rate_limiter_buckets_are_per_key() -> None:
    limiter = RateLimiter(1)
    limiter.take("a", now=0.0)
    limiter.take("b", now=0.0)
    with pytest.raises(RateLimitedError):
        limiter.take("a", now=0.0)


def test_ingest_over_the_rate_is_rate_limited_and_queues_nothing() -> None:
    limiter = RateLimiter(0.001, burst=2)
    queue = FakeQueue()
    for _ in range(2):
        run(
            "track",
            {"userId": "u1", "event": "x"},
            authorization=basic(WRITE_KEY),
            limiter=limiter,
            queue=queue,
        )
    with pytest.raises(RateLimitedError):
        run(
            "track",
            {"userId": "u1", "event": "x"},
            authorization=basic(WRITE_KEY),
            limiter=limiter,
            queue=queue,
        )
    assert len(queue.sent) == 2


def test_truncated_deflate_is_invalid_json_error() -> None:
    with pytest.raises(InvalidJsonError, match="deflate"):
        decode_body(zlib.compress(b'{"a": 1}' * 50)[:-6], content_encoding="deflate", limit=1000)


def test_rate_under_one_per_second_still_lets_a_request_through() -> None:
    limiter = RateLimiter(0.5)
    limiter.take("k", now=0.0)
    with pytest.raises(RateLimitedError) as err:
        limiter.take("k", now=0.5)
    assert err.value.retry_after_seconds == 2  # 0.75 of a token missing at 0.5/s
    limiter.take("k", now=2.0)
