"""The archive's list of erased ids: one empty S3 object per id under `erased/` in the
archive bucket, named by the SHA-256 of the id (the id itself is not kept). The query
engines read the list and leave those ids' events out of every query
(nudge.domain.erase, docs/erase.md)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from nudge.adapters.aws import client
from nudge.domain.archive import iso_ms

ERASED_PREFIX = "erased/"  # beside the archive's `events/` (not under it: no Glue partition)
CACHE_SECONDS = 30.0  # a reader lists the prefix again after this long


def id_digest(user_id: str) -> str:
    """What the list keeps of an id (DuckDB's `sha256()` and Athena's `sha256(to_utf8())`
    compute the same)."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


class S3ErasedIds:
    """`bucket`: the archive bucket. `s3`: a client (default: the adapters' own)."""

    def __init__(
        self,
        bucket: str,
        *,
        s3: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self._s3 = s3
        self._monotonic = monotonic
        self._cached: tuple[float, frozenset[str]] | None = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        return self._s3 if self._s3 is not None else client("s3")

    def add(self, ids: Iterable[str], *, at: datetime) -> None:
        body = json.dumps({"erased_at": iso_ms(at)}).encode()
        for user_id in dict.fromkeys(ids):
            self._client().put_object(
                Bucket=self.bucket, Key=ERASED_PREFIX + id_digest(user_id), Body=body
            )
        with self._lock:
            self._cached = None

    def digests(self) -> frozenset[str]:
        """Every erased id's digest (listed at most every CACHE_SECONDS)."""
        now = self._monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        found: set[str] = set()
        pages = (
            self._client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=ERASED_PREFIX)
        )
        for page in pages:
            for obj in page.get("Contents", []):
                found.add(str(obj["Key"])[len(ERASED_PREFIX) :])
        result = frozenset(d for d in found if len(d) == 64)
        with self._lock:
            self._cached = (now, result)
        return result
