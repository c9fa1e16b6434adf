"""SQS FIFO adapters: the events queue (message group = user), the dead-letter queue
for poison messages, and the actions queue."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nudge.adapters.aws import client
from nudge.domain.errors import DependencyUnavailableError
from nudge.domain.events import Event
from nudge.domain.messages import ActionMessage, TimersMessage, pack_events

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef as Entry

MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024 - 4096  # leave room for attributes and ids
SEND_ATTEMPTS = 4


def dedup_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# SQS: a MessageGroupId is 1-128 characters, ASCII letters, digits and punctuation only
_GROUP_ID = re.compile(r"[\x21-\x7e]{1,128}")


def message_group_id(user_id: str) -> str:
    """The FIFO message group of a user: the id itself when SQS accepts it, else a stable
    digest (a user id with a space, a non-ASCII letter or over 128 characters)."""
    return user_id if _GROUP_ID.fullmatch(user_id) else "h-" + dedup_id(user_id)[:64]


def _chunks(entries: list[Entry]) -> list[list[Entry]]:
    out: list[list[Entry]] = []
    size = 0
    for entry in entries:
        n = len(entry["MessageBody"].encode())
        if not out or len(out[-1]) == MAX_ENTRIES or size + n > MAX_REQUEST_BYTES:
            out.append([])
            size = 0
        out[-1].append(entry)
        size += n
    return out


def send_fifo_batch(queue_url: str, entries: list[Entry]) -> None:
    """SendMessageBatch in chunks of 10 (and under the request size), retrying the entries
    SQS reports failed; raises DependencyUnavailableError if some never get in."""
    sqs = client("sqs")
    for chunk in _chunks(entries):
        pending = chunk
        for attempt in range(SEND_ATTEMPTS):
            resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=pending)
            failed = {f["Id"] for f in resp.get("Failed", []) if not f.get("SenderFault")}
            sender_faults = [f for f in resp.get("Failed", []) if f.get("SenderFault")]
            if sender_faults:
                raise DependencyUnavailableError(
                    f"queue rejected {len(sender_faults)} message(s): {sender_faults[0].get('Message')}"
                )
            pending = [e for e in pending if e["Id"] in failed]
            if not pending:
                break
            time.sleep(0.05 * 2**attempt)
        if pending:
            raise DependencyUnavailableError(f"{len(pending)} message(s) could not be queued")


class SqsEventQueue:
    """The events queue: a request's events, one message per user (EventsMessage), and
    a wake-up bucket's timers, one message per user (TimersMessage)."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, events: Sequence[Event]) -> None:
        entries: list[Entry] = [
            {
                "Id": str(i),
                "MessageBody": body,
                "MessageGroupId": message_group_id(user),
                # SQS drops a retried send of the same events within 5 minutes; the
                # profile's fingerprints cover the rest of the 24 h dedup window.
                "MessageDeduplicationId": dedup_id(
                    "\x00".join([user, *(ev.message_id for ev in packed)])
                ),
            }
            for i, (user, body, packed) in enumerate(pack_events(events))
        ]
        send_fifo_batch(self.queue_url, entries)

    def send_timers(self, messages: Sequence[TimersMessage]) -> None:
        """A wake-up bucket's timers, one TimersMessage per user in the user's group."""
        entries: list[Entry] = [
            {
                "Id": str(i),
                "MessageBody": m.to_json(),
                "MessageGroupId": message_group_id(m.user_id),
                # one message per user and bucket: a retried wake-up is dropped by SQS
                "MessageDeduplicationId": dedup_id(f"{m.bucket}\x1f{m.user_id}"),
            }
            for i, m in enumerate(messages)
        ]
        send_fifo_batch(self.queue_url, entries)


class SqsDeadLetters:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, body: str, *, group_id: str, reason: str) -> None:
        client("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            MessageGroupId=group_id or "poison",
            MessageDeduplicationId=dedup_id(body),
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:1000] or "unknown"}
            },
        )


class SqsActionQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, actions: Sequence[ActionMessage]) -> None:
        entries: list[Entry] = [
            {
                "Id": str(i),
                "MessageBody": a.to_json(),
                "MessageGroupId": message_group_id(a.user_id),
                "MessageDeduplicationId": dedup_id(a.action_id),
            }
            for i, a in enumerate(actions)
        ]
        send_fifo_batch(self.queue_url, entries)
