"""The stored form of a document (nudge.domain.sizes): orjson's bytes are json.dumps's
(compact, sorted, UTF-8) for the values a profile holds, the exceptions are the ones
D48 names, and what orjson refuses is written as before."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nudge.domain.sizes import encode_document, stored_len


def _json_bytes(value: Any) -> bytes:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _plain_float(x: float) -> bool:
    """Floats whose text both write alike: finite and not below 1e-4 in magnitude."""
    return math.isfinite(x) and (x == 0 or abs(x) >= 1e-4)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False).filter(_plain_float)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_the_stored_bytes_are_json_dumps_bytes(value: Any) -> None:
    assert encode_document(value) == _json_bytes(value)
    assert stored_len(value) == len(_json_bytes(value))


def test_small_floats_are_written_otherwise_and_read_the_same() -> None:
    doc = {"a": 1e-05, "b": 2.5e-07, "c": 0.00012}
    assert encode_document(doc) != _json_bytes(doc)
    assert json.loads(encode_document(doc)) == doc


def test_what_orjson_refuses_is_written_as_json_writes_it() -> None:
    for doc in ({"t": "a\ud800b"}, {"n": 2**70, "m": -(2**63) - 1}, {"k": {1: "x"}}):
        assert encode_document(doc) == _json_bytes(doc)
    assert stored_len("a\ud800") == len(_json_bytes("a\ud800"))
    assert stored_len(2**70) == len(str(2**70))


def test_a_value_json_cannot_write_is_refused_and_counts_as_its_text() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        encode_document({"at": at})
    except TypeError:
        pass
    else:
        raise AssertionError("a datetime is not stored as JSON")
    assert stored_len(at) == len(json.dumps(str(at)))
