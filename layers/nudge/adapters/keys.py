"""API keys in DynamoDB, stored as SHA-256 digests, with a short in-process cache so that
a warm function does not read the table on every request; and their management
(`nudge keys`, `POST|GET /v1/keys`, `DELETE /v1/keys/{keyId}`)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from pynamodb.exceptions import DoesNotExist

from nudge import constants as C
from nudge.adapters.tables import KeyRow, bind_table
from nudge.domain.clock import Clock, SystemClock, to_ms
from nudge.domain.errors import ConflictError, NotFoundError
from nudge.domain.ingest import KeyKind, hash_key
from nudge.domain.keys import KeyInfo, key_id_of

# A revoked key stops working within POSITIVE_TTL_S in every warm function (docs/api.md).
POSITIVE_TTL_S = 60.0
NEGATIVE_TTL_S = 5.0
# Unknown keys are remembered in an LRU of their own: however many random keys a client
# sends, they evict only each other, never the cached real keys (there are few of those).
MAX_NEGATIVE_ENTRIES = 10_000
MAX_POSITIVE_ENTRIES = 1_000


class DynamoKeyStore:
    """`table`: the keys table of the function's settings (None: the environment's).
    The cache ages by `monotonic` (elapsed time, not the clock of events)."""

    def __init__(
        self,
        *,
        table: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_unknown: int = MAX_NEGATIVE_ENTRIES,
    ) -> None:
        bind_table(C.KEYS, table)
        self._max_unknown = max_unknown
        self._known: OrderedDict[str, tuple[KeyKind, float]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self.lookups = 0  # table reads (what the cache saves)

    def kind_of(self, key_hash: str) -> KeyKind | None:
        now = self._monotonic()
        with self._lock:
            known = self._known.get(key_hash)
            if known is not None and known[1] > now:
                return known[0]
            unknown_until = self._unknown.get(key_hash)
            if unknown_until is not None and unknown_until > now:
                return None
        try:
            self.lookups += 1
            kind: KeyKind | None = cast(KeyKind, KeyRow.get(key_hash).kind)
        except DoesNotExist:
            kind = None
        with self._lock:
            if kind is not None:
                self._unknown.pop(key_hash, None)
                self._known[key_hash] = (kind, now + POSITIVE_TTL_S)
                self._known.move_to_end(key_hash)
                while len(self._known) > MAX_POSITIVE_ENTRIES:
                    self._known.popitem(last=False)
            else:
                self._known.pop(key_hash, None)
                self._unknown[key_hash] = now + NEGATIVE_TTL_S
                self._unknown.move_to_end(key_hash)
                while len(self._unknown) > self._max_unknown:
                    self._unknown.popitem(last=False)
        return kind

    def forget(self, key_hash: str) -> None:
        """Drops a key from this instance's cache (a revocation made here)."""
        with self._lock:
            self._known.pop(key_hash, None)
            self._unknown.pop(key_hash, None)


class DynamoKeyAdmin:
    """Creating, listing and revoking keys (the `nudge.domain.keys.KeyAdmin` port)."""

    def __init__(
        self,
        *,
        table: str | None = None,
        clock: Clock | None = None,
        cache: DynamoKeyStore | None = None,
    ) -> None:
        self._table = table
        bind_table(C.KEYS, table)
        self._clock = clock or SystemClock()
        self._cache = cache

    def create(self, kind: KeyKind, label: str = "") -> tuple[str, KeyInfo]:
        key = create_key(kind, label=label, table=self._table, clock=self._clock)
        digest = hash_key(key)
        row = KeyRow.get(digest)
        return key, _info(row)

    def list(self) -> list[KeyInfo]:
        return sorted((_info(r) for r in KeyRow.scan()), key=lambda k: (k.created_at, k.id))

    def revoke(self, key_id: str, *, keep_admin: bool = True) -> KeyInfo:
        """Deletes the key whose id is `key_id`. The last admin key is kept (409): without
        one, nothing could manage the deployment any more but direct table access."""
        every = list(KeyRow.scan())  # a handful of rows, read once
        rows = [r for r in every if key_id_of(r.key_hash) == key_id]
        if not rows:
            raise NotFoundError(f"no key {key_id!r}")
        (row,) = rows
        if keep_admin and row.kind == "admin" and sum(r.kind == "admin" for r in every) <= 1:
            raise ConflictError("this is the last admin key: create another one first")
        row.delete()
        if self._cache is not None:
            self._cache.forget(row.key_hash)
        return _info(row)


def _info(row: KeyRow) -> KeyInfo:
    return KeyInfo(
        id=key_id_of(row.key_hash),
        kind=cast(KeyKind, row.kind),
        label=row.label or "",
        created_at=int(row.created_at or 0),
    )


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
