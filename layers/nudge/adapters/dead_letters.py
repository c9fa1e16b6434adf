"""Dead-letter entries in DynamoDB and the dead-letter queues' sizes from SQS
(docs/decisions.md D40).

The entries are an item type of the timers table (`DeadLetterRow`): one partition per
queue, `dead-letters/events` and `dead-letters/actions` (a minute bucket is named
`yyyy-mm-ddThh:mm`, so no wake-up shares them), sorted by time, so that the latest are
one Query read backwards; each expires with the DLQ's retention by the table's TTL. A
consumer may write only its own queue's partition (an IAM condition on
`dynamodb:LeadingKeys`), and the api only queries them.

The sizes are GetQueueAttributes' ApproximateNumberOfMessages: nothing is received from
a DLQ, so nothing there is hidden, counted as a receive or held back in its group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nudge import constants as C
from nudge.adapters.aws import client
from nudge.adapters.queues import message_group_id
from nudge.adapters.tables import DeadLetterRow, bind_table
from nudge.adapters.tables import dead_letter_partition as partition
from nudge.domain.clock import from_ms, to_ms
from nudge.domain.dead_letters import MOVED_BY, QUEUES, DeadLetter, MovedBy


def sort_key(entry: DeadLetter) -> str:
    return f"{to_ms(entry.at):013d}/{entry.message_id}"


def _moved_by(value: str) -> MovedBy:
    for known in MOVED_BY:
        if value == known:
            return known
    return "function"


class DynamoDeadLetterLog:
    """The DeadLetterLog port on the timers table."""

    def __init__(self, *, table: str | None = None) -> None:
        """`table`: the timers table of the function's settings (None: the environment's)."""
        bind_table(C.TIMERS, table)

    def record(self, entries: Sequence[DeadLetter]) -> None:
        """One BatchWriteItem per 25 entries (a batch has at most ten records)."""
        if not entries:
            return
        with DeadLetterRow.batch_write() as batch:
            for e in entries:
                batch.save(
                    DeadLetterRow(
                        partition(e.queue),
                        sort_key(e),
                        queue=e.queue,
                        message_id=e.message_id,
                        group=e.group,
                        receive_count=e.receive_count,
                        moved_by=e.moved_by,
                        error_type=e.error_type,
                        error=e.error,
                        body=e.body,
                        body_bytes=e.body_bytes,
                        at=to_ms(e.at),
                        expires_at=e.expires_at,
                    )
                )

    def erase_users(self, user_ids: Sequence[str]) -> int:
        """Deletes the entries of the ids' messages (their message groups) of both queues;
        how many (erase, docs/erase.md). Each partition is read through once for all the
        ids, keys and group only: entries are few (a DLQ's 14 days) and an erase is rare,
        so no index is kept for it."""
        groups = {message_group_id(u) for u in user_ids}
        doomed = [
            row
            for queue in QUEUES
            for row in DeadLetterRow.query(
                partition(queue), attributes_to_get=["bucket", "ref", "group"]
            )
            if row.group in groups
        ]
        with DeadLetterRow.batch_write() as batch:
            for row in doomed:
                batch.delete(row)
        return len(doomed)

    def recent(self, queue: str, limit: int) -> list[DeadLetter]:
        rows = DeadLetterRow.query(partition(queue), scan_index_forward=False, limit=limit)
        return [
            DeadLetter(
                queue=row.queue,
                message_id=row.message_id,
                group=row.group,
                receive_count=int(row.receive_count) if row.receive_count is not None else None,
                moved_by=_moved_by(row.moved_by),
                error_type=row.error_type,
                error=row.error,
                body=row.body,
                body_bytes=int(row.body_bytes),
                at=from_ms(row.at),
            )
            for row in rows
        ]


class SqsQueueDepths:
    """The QueueDepths port: each dead-letter queue by its logical name (events, actions)."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = dict(urls)

    def depth(self, queue: str) -> int:
        attrs = client("sqs").get_queue_attributes(
            QueueUrl=self.urls[queue], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", "0"))
