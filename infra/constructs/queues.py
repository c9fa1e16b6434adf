"""Queue defaults shared by the capability constructs: encrypted, TLS only, FIFO queues
always paired with a FIFO dead-letter queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nudge import constants as C

# the SQS maximum: time to look at a poison message (its dead-letter entry lasts as long)
DLQ_RETENTION = cdk.Duration.days(C.DEAD_LETTER_RETENTION_DAYS)

# SQS keeps a message invisible for this multiple of the consumer's timeout, so that a
# batch still being worked on (with retries inside the function) is not handed out twice.
VISIBILITY_TO_TIMEOUT = 6


def dead_letter_queue(scope: Construct, id: str, *, fifo: bool) -> sqs.Queue:
    return sqs.Queue(
        scope,
        id,
        fifo=fifo or None,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )


def fifo_queue_with_dlq(
    scope: Construct,
    id: str,
    *,
    visibility_timeout: cdk.Duration,
    max_receive_count: int,
    content_based_deduplication: bool = False,
) -> tuple[sqs.Queue, sqs.Queue]:
    """A FIFO queue grouped by user, in high-throughput mode (deduplication and the
    throughput quota per message group instead of per queue: one user's messages stay
    in order, many users go in parallel), and its FIFO dead-letter queue.

    The producers set MessageDeduplicationId; ``content_based_deduplication`` is for a
    queue that EventBridge Scheduler also sends to, which sets none (Scheduler requires
    it of a FIFO target). An explicit id still wins over the content hash."""
    dlq = dead_letter_queue(scope, f"{id}Dlq", fifo=True)
    queue = sqs.Queue(
        scope,
        id,
        fifo=True,
        content_based_deduplication=content_based_deduplication,
        deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
        fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count),
    )
    return queue, dlq
