"""API keys in DynamoDB, stored as SHA-256 digests, with a short in-process cache so that
a warm function does not read the table on every request."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import cast

from pynamodb.exceptions import DoesNotExist

from nudge import constants as C
from nudge.adapters.tables import KeyRow, bind_table
from nudge.domain.clock import Clock, SystemClock, to_ms
from nudge.domain.ingest import KeyKind, hash_key

POSITIVE_TTL_S = 60.0
NEGATIVE_TTL_S = 5.0


class DynamoKeyStore:
    """`table`: the keys table of the function's settings (None: the environment's).
    The cache ages by `monotonic` (elapsed time, not the clock of events)."""

    def __init__(
        self, *, table: str | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        bind_table(C.KEYS, table)
        self._cache: dict[str, tuple[KeyKind | None, float]] = {}
        self._lock = threading.Lock()
        self._monotonic = monotonic

    def kind_of(self, key_hash: str) -> KeyKind | None:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key_hash)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            kind: KeyKind | None = cast(KeyKind, KeyRow.get(key_hash).kind)
        except DoesNotExist:
            kind = None
        ttl = POSITIVE_TTL_S if kind else NEGATIVE_TTL_S
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_hash] = (kind, now + ttl)
        return kind


def create_key(
    kind: KeyKind,
    *,
    label: str = "",
    key: str | None = None,
    table: str | None = None,
    clock: Clock | None = None,
) -> str:
    """Creates (or registers) a key and returns it; only its digest is stored. `table`
    as for DynamoKeyStore; `clock` stamps `created_at`."""
    bind_table(C.KEYS, table)
    prefix = "wk_" if kind == "write" else "ak_"
    key = key or prefix + secrets.token_urlsafe(24)
    created_at = to_ms((clock or SystemClock()).now()) // 1000
    KeyRow(hash_key(key), kind=kind, label=label, created_at=created_at).save()
    return key
