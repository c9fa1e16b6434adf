"""Dead-letter entries: what went to a dead-letter queue and why, noted by the queue's
consumer when it happens, so that `GET /v1/reports/dead-letters` (and the dashboard's
"Dead letters" section) lists recent dead letters without ever receiving from a DLQ
(docs/decisions.md D40).

A consumer notes an entry in two cases:

- it moved the message to the DLQ itself (`moved_by="function"`): a body it cannot
  parse (a message of an unknown version, an action without its fields), or an action
  that failed for good (a template error, a permanent send failure);
- the record failed on its last allowed receive (`moved_by="redrive"`): its
  ApproximateReceiveCount reached the queue's maxReceiveCount, so SQS moves it to the
  DLQ instead of handing it out again.

An entry is bounded: each text is clipped to a number of UTF-8 bytes, so that an item
stays under 1 KB (one DynamoDB write unit), and it expires with the DLQ's retention
(`DEAD_LETTER_RETENTION_DAYS`; a FIFO DLQ counts a message's retention from when it was
moved there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from nudge import constants as C
from nudge.domain.clock import iso
from nudge.domain.sizes import utf8_len

QUEUES = (C.EVENTS_QUEUE, C.ACTIONS_QUEUE)
MovedBy = Literal["function", "redrive"]
MOVED_BY: tuple[MovedBy, ...] = ("function", "redrive")

# Bounds of an entry's texts, in UTF-8 bytes, so that the whole item (the message id is
# in its sort key as well) stays under 1 KB: a message group id is at most 128 ASCII
# characters, an SQS message id 36
MAX_ERROR_BYTES = 240
MAX_BODY_BYTES = 240
MAX_TYPE_BYTES = 64
MAX_GROUP_BYTES = 128
MAX_ID_BYTES = 64
RETENTION = timedelta(days=C.DEAD_LETTER_RETENTION_DAYS)


def clip_bytes(text: str, limit: int) -> str:
    """The longest prefix of `text` of at most `limit` UTF-8 bytes (never half a
    character)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


@dataclass(frozen=True)
class DeadLetter:
    """One message that went to a dead-letter queue: which queue (`events`, `actions`),
    the SQS message id, its message group (the user, or the digest SQS was given for an
    id it refuses), how often it was received (None when unknown), who moved it, the
    error's class and message, the start of the body and the body's size, and when."""

    queue: str
    message_id: str
    group: str
    receive_count: int | None
    moved_by: MovedBy
    error_type: str
    error: str
    body: str
    body_bytes: int
    at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.at + RETENTION

    def view(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "message_id": self.message_id,
            "group": self.group,
            "receive_count": self.receive_count,
            "moved_by": self.moved_by,
            "error_type": self.error_type,
            "error": self.error,
            "body": self.body,
            "body_bytes": self.body_bytes,
            "truncated": utf8_len(self.body) < self.body_bytes,
            "at": iso(self.at),
        }


def dead_letter(
    *,
    queue: str,
    message_id: str,
    group: str,
    receive_count: int | None,
    moved_by: MovedBy,
    error_type: str,
    error: str,
    body: str,
    at: datetime,
) -> DeadLetter:
    """An entry with each text clipped to its bound (the body's full size kept)."""
    if queue not in QUEUES:
        raise ValueError(f"no dead-letter queue {queue!r}")
    return DeadLetter(
        queue=queue,
        message_id=clip_bytes(message_id, MAX_ID_BYTES),
        group=clip_bytes(group, MAX_GROUP_BYTES),
        receive_count=receive_count,
        moved_by=moved_by,
        error_type=clip_bytes(error_type, MAX_TYPE_BYTES) or "Error",
        error=clip_bytes(" ".join(error.split()), MAX_ERROR_BYTES),
        body=clip_bytes(body, MAX_BODY_BYTES),
        body_bytes=utf8_len(body),
        at=at,
    )


def error_of(err: BaseException) -> tuple[str, str]:
    """An exception as (its class name, its message)."""
    return type(err).__name__, str(err) or repr(err)


def is_last_attempt(receive_count: int | None, max_receive_count: int) -> bool:
    """Whether a record received this many times, failing now, goes to the DLQ: SQS
    moves a message once it has been received maxReceiveCount times."""
    return receive_count is not None and receive_count >= max_receive_count


class DeadLetterLog(Protocol):
    """Where the entries are kept (nudge.adapters.dead_letters: the timers table)."""

    def record(self, entries: Sequence[DeadLetter]) -> None: ...

    def recent(self, queue: str, limit: int) -> list[DeadLetter]:
        """The queue's latest entries, newest first (expired ones may still be among
        them: TTL deletes within days, not at once)."""
        ...

    def erase_users(self, user_ids: Sequence[str]) -> int:
        """Deletes the entries of the messages of any of these ids (erase); how many."""
        ...


class QueueDepths(Protocol):
    def depth(self, queue: str) -> int:
        """The dead-letter queue's ApproximateNumberOfMessages (nothing is received)."""
        ...


def dead_letters_report(
    log: DeadLetterLog, depths: QueueDepths, *, limit: int, now: datetime
) -> dict[str, Any]:
    """`GET /v1/reports/dead-letters`: the size of each dead-letter queue and the latest
    `limit` entries of both, newest first, those older than the retention left out."""
    entries = [e for q in QUEUES for e in log.recent(q, limit) if e.expires_at > now]
    entries.sort(key=lambda e: (e.at, e.queue, e.message_id), reverse=True)
    return {
        "retention_days": C.DEAD_LETTER_RETENTION_DAYS,
        "queues": [{"queue": q, "messages": depths.depth(q)} for q in QUEUES],
        "dead_letters": [e.view() for e in entries[:limit]],
    }
