"""The archive's list of erased ids: one small S3 object per id under `erased/` in the
archive bucket, named by the SHA-256 of the id (the id itself is not kept), holding when
it was erased.
The query engines read the list and leave those ids' events out of every query
(nudge.domain.erase, docs/erase.md); the train function's purge step rewrites the
objects without their events (nudge.domain.purge, `S3ArchivePurge`)."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from nudge.adapters.aws import client
from nudge.constants import ARCHIVE_PREFIX
from nudge.domain.archive import iso_ms
from nudge.domain.clock import utc
from nudge.domain.purge import Listed, Pass, PurgeState

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
        result = frozenset(digest for digest, _ in erased_objects(self._client(), self.bucket))
        with self._lock:
            self._cached = (now, result)
        return result


def erased_objects(s3: Any, bucket: str) -> Iterator[tuple[str, datetime]]:
    """The erased list's entries: each id digest (64 hex digits; the purge's state file
    under the same prefix is not one) with the time it was listed (LastModified)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ERASED_PREFIX)
    for page in pages:
        for obj in page.get("Contents", []):
            digest = str(obj["Key"])[len(ERASED_PREFIX) :]
            if len(digest) == 64:
                yield digest, utc(obj["LastModified"])


def parse_time(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


STATE_KEY = ERASED_PREFIX + ".purge.json"  # how far the list is purged (not a digest)
GZIP_MAGIC = b"\x1f\x8b"


class S3ArchivePurge:
    """The ArchivePurge port (nudge.domain.purge) on the archive bucket: the erased list's
    entries (listed at their LastModified; each body `{"erased_at"}`), the purge's state
    at STATE_KEY, and the archive's objects under `events/`, read and written back GZIP
    when they were."""

    def __init__(self, bucket: str, *, prefix: str = ARCHIVE_PREFIX, s3: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._s3 = s3
        self._gzipped: set[str] = set()

    def _client(self) -> Any:
        return self._s3 if self._s3 is not None else client("s3")

    def _get(self, key: str) -> bytes | None:
        try:
            return bytes(self._client().get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def listed_since(self, after: datetime | None) -> list[Listed]:
        out = [
            Listed(digest, listed_at)
            for digest, listed_at in erased_objects(self._client(), self.bucket)
            if after is None or listed_at > after
        ]
        return sorted(out, key=lambda e: (e.listed_at, e.digest))

    def erased_at(self, entry: Listed) -> datetime:
        body = self._get(ERASED_PREFIX + entry.digest)
        try:
            return parse_time(str(json.loads(body or b"{}")["erased_at"]))
        except (KeyError, ValueError):  # written without it: when it was listed
            return entry.listed_at

    def state(self) -> PurgeState:
        body = self._get(STATE_KEY)
        if body is None:
            return PurgeState()
        doc = json.loads(body)
        through = doc.get("purged_through")
        p = doc.get("current")
        current = None
        if p:
            current = Pass(
                digests=[str(d) for d in p["digests"]],
                through=str(p["through"]),
                listed_through=parse_time(p["listed_through"]),
                after=str(p.get("after") or ""),
                started_at=parse_time(p["started_at"]) if p.get("started_at") else None,
            )
        return PurgeState(parse_time(through) if through else None, current)

    def save_state(self, state: PurgeState) -> None:
        p = state.current
        doc = {
            "purged_through": iso_ms(state.purged_through) if state.purged_through else None,
            "current": None
            if p is None
            else {
                "digests": p.digests,
                "through": p.through,
                "listed_through": iso_ms(p.listed_through),
                "after": p.after,
                "started_at": iso_ms(p.started_at) if p.started_at else None,
            },
        }
        self._client().put_object(Bucket=self.bucket, Key=STATE_KEY, Body=json.dumps(doc).encode())

    def keys(self, after: str) -> Iterator[str]:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        if after:
            kw["StartAfter"] = after
        for page in self._client().get_paginator("list_objects_v2").paginate(**kw):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if not key.endswith("/") and obj.get("Size"):
                    yield key

    def read(self, key: str) -> bytes:
        body = self._get(key) or b""
        if body[:2] == GZIP_MAGIC:
            self._gzipped.add(key)
            return gzip.decompress(body)
        self._gzipped.discard(key)
        return body

    def write(self, key: str, body: bytes) -> None:
        data = gzip.compress(body) if key in self._gzipped and body else body
        self._client().put_object(Bucket=self.bucket, Key=key, Body=data)
