"""API keys in DynamoDB, stored as SHA-256 digests, with a short in-process cache so that
a warm function does not read the table on every request."""

from __future__ import annotations

import secrets
import threading
import time
from typing import cast

from pynamodb.exceptions import DoesNotExist

from nudge.adapters.tables import KeyRow, bind_tables
from nudge.domain.ingest import KeyKind, hash_key

POSITIVE_TTL_S = 60.0
NEGATIVE_TTL_S = 5.0


class DynamoKeyStore:
    def __init__(self) -> None:
        bind_tables()
        self._cache: dict[str, tuple[KeyKind | None, float]] = {}
        self._lock = threading.Lock()

    def kind_of(self, key_hash: str) -> KeyKind | None:
        now = time.monotonic()
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


def create_key(kind: KeyKind, *, label: str = "", key: str | None = None) -> str:
    """Creates (or registers) a key and returns it; only its digest is stored."""
    bind_tables()
    prefix = "wk_" if kind == "write" else "ak_"
    key = key or prefix + secrets.token_urlsafe(24)
    KeyRow(hash_key(key), kind=kind, label=label, created_at=int(time.time())).save()
    return key
