"""The archive writer (and training's reader): accepted events → Kinesis Data Firehose (`PutRecordBatch`) → S3.

Lines are packed into as few records as fit (Firehose bills each record rounded up to
5 KB), one call per SQS batch of the events queue; entries Firehose reports failed
(throttling, service errors) are retried with backoff. When some never get in, the
writer raises DependencyUnavailableError, and the process function fails those users'
records: the retry finds their events already folded (deduplicated, no second effect)
and archives them again — at least once, the view `events` keeps each message_id once.
"""

from __future__ import annotations

import gzip
import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from nudge.adapters.aws import client
from nudge.constants import ARCHIVE_PREFIX
from nudge.domain.archive import batch_records, hour_prefixes, pack_records
from nudge.domain.errors import DependencyUnavailableError

PUT_ATTEMPTS = 4


class FirehoseArchive:
    def __init__(self, stream_name: str) -> None:
        self.stream_name = stream_name
        self.calls = 0  # PutRecordBatch calls made (for metrics and the bench)
        self.records = 0  # Firehose records sent

    def write(self, lines: Iterable[bytes]) -> None:
        records = pack_records(lines)
        if not records:
            return
        firehose = client("firehose")
        for call in batch_records(records):
            pending = call
            for attempt in range(PUT_ATTEMPTS):
                self.calls += 1
                resp = firehose.put_record_batch(
                    DeliveryStreamName=self.stream_name,
                    Records=[{"Data": data} for data in pending],
                )
                self.records += len(pending) - int(resp.get("FailedPutCount") or 0)
                if not resp.get("FailedPutCount"):
                    pending = []
                    break
                results = resp.get("RequestResponses") or []
                pending = [d for d, r in zip(pending, results, strict=False) if r.get("ErrorCode")]
                time.sleep(0.05 * 2**attempt)
            if pending:
                raise DependencyUnavailableError(
                    f"{len(pending)} archive record(s) could not be written to {self.stream_name}"
                )


GZIP_MAGIC = b"\x1f\x8b"


class S3ArchiveLines:
    """The archive's raw lines for training, read with boto3 (no DuckDB: the train
    function's layer has none, docs/decisions.md D36). One listing from the first hour
    wanted on (`StartAfter`), then the objects, `readers` at a time (a 90-day window is
    some 26,000 objects: one after the other they would take most of Lambda's 15
    minutes), at most `readers` * 2 held at once; GZIP (AWS) or plain (local mode)."""

    def __init__(self, bucket: str, *, prefix: str = ARCHIVE_PREFIX, readers: int = 16) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.readers = readers
        self.objects = 0  # objects read (the run's summary, tests)

    def keys(self, *, since: datetime, until: datetime) -> list[str]:
        hours = hour_prefixes(since, until)
        if not hours:
            return []
        first, last = hours[0], hours[-1]
        # `…/HH` sorts before every key of hour HH (`…/HH/…`), after every earlier hour's
        pages = (
            client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=self.prefix, StartAfter=first.rstrip("/"))
        )
        out: list[str] = []
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key[: len(last)] > last:
                    return out
                if not key.endswith("/") and obj.get("Size"):
                    out.append(key)
        return out

    def _read(self, key: str) -> bytes:
        body = client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return gzip.decompress(body) if body[:2] == GZIP_MAGIC else body

    def lines(self, *, since: datetime, until: datetime) -> Iterator[bytes]:
        keys = self.keys(since=since, until=until)
        window = max(1, self.readers * 2)
        with ThreadPoolExecutor(max_workers=max(1, self.readers)) as pool:
            pending: deque[Future[bytes]] = deque()
            queued = iter(keys)
            for key in itertools.islice(queued, window):
                pending.append(pool.submit(self._read, key))
            while pending:
                body = pending.popleft().result()
                for key in itertools.islice(queued, 1):
                    pending.append(pool.submit(self._read, key))
                self.objects += 1
                for line in body.splitlines():
                    if line.strip():
                        yield line
