"""The archive writer: accepted events → Kinesis Data Firehose (`PutRecordBatch`) → S3.

Lines are packed into as few records as fit (Firehose bills each record rounded up to
5 KB), one call per SQS batch of the events queue; entries Firehose reports failed
(throttling, service errors) are retried with backoff. When some never get in, the
writer raises DependencyUnavailableError, and the process function fails those users'
records: the retry finds their events already folded (deduplicated, no second effect)
and archives them again — at least once, the view `events` keeps each message_id once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from nudge.adapters.aws import client
from nudge.domain.archive import batch_records, pack_records
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
