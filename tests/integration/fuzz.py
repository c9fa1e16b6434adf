"""Hypothesis strategies for API Gateway HTTP API requests carrying Segment-like,
random JSON or random bytes, used by the no-5xx fuzz tests of the HTTP functions."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, timedelta, timezone
from typing import Any

from hypothesis import strategies as st
from nudge.local.lambdas import http_event

from tests.integration.conftest import WRITE_KEY, body_of

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
EXTREME_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59Z",
    "2026-03-02T12:00:00Z",
    "2026-03-02T12:00:00",
]
iso_times = st.one_of(
    st.sampled_from(EXTREME_TIMES),
    st.datetimes(
        timezones=st.sampled_from(
            [None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]
        )
    ).map(lambda d: d.isoformat()),
    st.text(max_size=12),
    json_scalars,
)
ids = st.one_of(
    st.sampled_from(["u1", "anon-1", "jane doe", "josé"]),
    st.sampled_from(["u2", "u3"]),
    st.text(max_size=40),
    st.integers(),
    st.none(),
    json_values,
)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": [value]}
    return value


# bodies that once gave a 5xx or are at the edges of the parsers
EDGE_BODIES = [
    b"[" * 5000,
    b"1" * 5000,
    b'{"userId": "u1", "event": "x", "properties": {"n": ' + b"9" * 5000 + b"}}",
    json.dumps({"userId": "u1", "event": "x", "properties": _nested(150)}).encode(),
    json.dumps({"userId": "u1", "event": "x", "properties": {"s": "\ud800"}}).encode(),
    b'{"userId": "u1", "event": "x", "properties": {"s": "\\ud800"}}',
    b'{"userId": "u1", "event": "x", "properties": {"revenue": 1e400, "q": NaN}}',
    b"\xef\xbb\xbf{}",
    b"null",
]
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
mostly_objects = st.one_of(json_objects, json_objects, json_objects, json_values)
mostly_text = st.one_of(
    st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30), json_values
)
# mostly valid Segment fields, so that most events get past validation into the fold
event_like = st.fixed_dictionaries(
    {"userId": ids},
    optional={
        "type": st.one_of(
            st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]),
            st.text(max_size=8),
        ),
        "anonymousId": ids,
        "event": mostly_text,
        "messageId": mostly_text,
        "properties": mostly_objects,
        "traits": mostly_objects,
        "context": mostly_objects,
        "integrations": mostly_objects,
        "timestamp": iso_times,
        "originalTimestamp": iso_times,
        "sentAt": iso_times,
        "previousId": ids,
        "groupId": ids,
        "name": mostly_text,
        "category": mostly_text,
        "writeKey": st.one_of(st.just(WRITE_KEY), st.text(max_size=10)),
    },
)
payloads = st.one_of(
    event_like,
    st.fixed_dictionaries(
        {"batch": st.lists(st.one_of(event_like, json_values), max_size=5)},
        optional={
            "context": json_values,
            "integrations": json_values,
            "sentAt": iso_times,
            "writeKey": st.just(WRITE_KEY),
        },
    ),
    json_values,
)


valid_times = st.one_of(
    st.sampled_from(EXTREME_TIMES),
    st.datetimes(
        timezones=st.sampled_from(
            [None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]
        )
    ).map(lambda d: d.isoformat()),
)
FIELDS = [
    "type",
    "userId",
    "anonymousId",
    "event",
    "messageId",
    "properties",
    "traits",
    "context",
    "integrations",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "previousId",
    "groupId",
    "name",
    "category",
]


@st.composite
def valid_events(draw: st.DrawFn, kind: str | None) -> dict[str, Any]:
    """A valid event of the kind (None: any, named in `type`), with random contents,
    then up to two fields replaced by random JSON."""
    etype = kind or draw(st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]))
    ev: dict[str, Any] = {
        "userId": draw(
            st.one_of(
                st.sampled_from(["u1", "u2", "jane doe", "josé"]),
                st.text(min_size=1, max_size=40),
                st.integers(),
            )
        )
    }
    if kind is None:
        ev["type"] = etype
    ev.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "anonymousId": st.text(min_size=1, max_size=20),
                    "messageId": st.text(min_size=1, max_size=20),
                    "properties": json_objects,
                    "traits": json_objects,
                    "context": json_objects,
                    "integrations": json_objects,
                    "timestamp": valid_times,
                    "originalTimestamp": valid_times,
                    "sentAt": valid_times,
                    "name": st.text(max_size=20),
                    "category": st.text(max_size=20),
                },
            )
        )
    )
    if etype == "track":
        ev["event"] = draw(
            st.one_of(
                st.sampled_from(["Product Added", "Order Completed", "Product Viewed"]),
                st.text(min_size=1, max_size=30),
            )
        )
    if etype == "alias":
        ev["previousId"] = draw(st.text(min_size=1, max_size=20))
    if etype == "group":
        ev["groupId"] = draw(st.text(min_size=1, max_size=20))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
        ev[field] = draw(json_values)
    return ev


@st.composite
def segment_requests(draw: st.DrawFn, authorization: str) -> dict[str, Any]:
    """A well-formed call of a Segment endpoint with an authorized key and mostly valid
    events of random contents: the fuzzing that reaches normalization and the queue."""
    kind = draw(
        st.sampled_from(
            ["track", "identify", "page", "screen", "group", "alias", "batch", "import"]
        )
    )
    if kind in ("batch", "import"):
        payload: Any = draw(
            st.fixed_dictionaries(
                {"batch": st.lists(valid_events(None), min_size=1, max_size=5)},
                optional={"context": json_objects, "sentAt": valid_times},
            )
        )
    else:
        payload = draw(valid_events(kind))
    raw = json.dumps(payload, allow_nan=True).encode()
    headers = {"authorization": authorization, "content-type": "application/json"}
    if draw(st.booleans()):
        raw, headers["content-encoding"] = gzip.compress(raw), "gzip"
    return http_event(
        method="POST",
        path=f"/v1/{kind}",
        query="",
        headers=headers,
        body=raw,
        source_ip="127.0.0.1",
        now_ms=0,
    )


@st.composite
def api_gateway_requests(
    draw: st.DrawFn, paths: st.SearchStrategy[str], auths: st.SearchStrategy[str | None]
) -> dict[str, Any]:
    """A payload 2.0 request: random method, path, headers, auth and body (JSON, event
    shaped JSON, bytes, gzip or not), sometimes with a body that is not valid base64."""
    method = draw(st.sampled_from(["POST"] * 6 + ["GET"] * 3 + ["PUT", "DELETE", "OPTIONS"]))
    path = draw(paths)
    body_kind = draw(
        st.sampled_from(
            ["none", "json", "json", "json", "json", "bytes", "edge", "gzip-json", "gzip-bytes"]
        )
    )
    raw = b""
    if body_kind.endswith("json"):
        raw = json.dumps(draw(payloads), allow_nan=True).encode()
    elif body_kind.endswith("bytes"):
        raw = draw(st.binary(max_size=200))
    elif body_kind == "edge":
        raw = draw(st.sampled_from(EDGE_BODIES))
    headers: dict[str, str] = draw(
        st.dictionaries(
            st.sampled_from(
                ["content-type", "x-forwarded-for", "user-agent", "content-encoding", "host"]
            ),
            st.text(max_size=20),
            max_size=3,
        )
    )
    if body_kind.startswith("gzip"):
        raw = gzip.compress(raw) if draw(st.booleans()) else raw
        headers["content-encoding"] = draw(
            st.sampled_from(["gzip", "GZIP", "deflate", "br", "x-gzip"])
        )
    auth = draw(auths)
    if auth is not None:
        headers["authorization"] = auth
    event = http_event(
        method=method,
        path=path,
        query=draw(st.sampled_from(["", "a=1", "limit=x&&", "token=%ZZ"])),
        headers=headers,
        body=raw,
        source_ip="127.0.0.1",
        now_ms=0,
    )
    if draw(st.integers(0, 9)) == 0:  # a body that claims base64 but is not
        event["isBase64Encoded"] = True
        event["body"] = draw(st.text(max_size=30))
    return event


def assert_no_5xx(resp: dict[str, Any]) -> None:
    """No input is a server error; every 4xx is a JSON error document."""
    assert resp["statusCode"] < 500, resp
    if resp["statusCode"] >= 400:
        body = body_of(resp)
        assert set(body) == {"error", "message", "details"}, body
