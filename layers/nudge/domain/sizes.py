"""Sizes as stored: the profile document is compact JSON in UTF-8 (only `"`, `\\` and
control characters escaped), so what counts against DynamoDB's item limit is the UTF-8
length of each value's JSON text. The per-field caps of the profile (nudge.domain.profile)
and the admission rules of ingest (nudge.domain.events) are stated in these bytes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# JSON escapes a control character as \\u00XX: 6 bytes, the most any character takes
_MAX_BYTES_PER_CHAR = 6
# orjson writes datetimes and dataclasses itself, json does not: they go to `default`
# (or fail) as with json
_AS_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_SORTED = orjson.OPT_SORT_KEYS | _AS_JSON


def encode_document(doc: Any) -> bytes:
    """The stored JSON text of a document: compact, keys sorted, UTF-8, by orjson
    (docs/decisions.md D48): the bytes of `json.dumps(doc, separators=(",", ":"),
    sort_keys=True, ensure_ascii=False)` in UTF-8, but for a float between 1e-5 and 1e-4
    (`0.00001`, not `1e-05`), a smaller one's exponent (`2.5e-7`, not `2.5e-07`) and a
    NaN or infinity (`null`; ingest admits none): every reader (json.loads) reads the same
    values. What orjson refuses goes through json: a lone surrogate (never admitted, but
    possible in a profile written before ingest refused them) is kept as its code point
    rather than failing the write; an integer beyond 64 bits; a key that is not text."""
    try:
        return orjson.dumps(doc, option=_SORTED)
    except TypeError:  # orjson.JSONEncodeError is one; json raises its own for a non-JSON value
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def stored_len(value: Any) -> int:
    """The bytes a JSON value takes in the stored document (a string: with its quotes),
    measured as encode_document writes it; a value JSON has no form for counts as its
    str()."""
    try:
        return len(orjson.dumps(value, default=str, option=_AS_JSON))
    except TypeError:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        return len(text.encode("utf-8", "surrogatepass"))


def clip(text: str, limit: int) -> str:
    """The longest prefix of `text` whose stored form (without the quotes) is at most
    `limit` bytes."""
    if len(text) * _MAX_BYTES_PER_CHAR <= limit or stored_len(text) - 2 <= limit:
        return text
    lo, hi = 0, min(len(text), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if stored_len(text[:mid]) - 2 <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
