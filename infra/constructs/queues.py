"""Queue defaults shared by the capability constructs: encrypted, TLS only, FIFO queues
always paired with a FIFO dead-letter queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

DLQ_RETENTION = cdk.Duration.days(14)  # the SQS maximum: time to look at a poison message


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
) -> tuple[sqs.Queue, sqs.Queue]:
    """A FIFO queue grouped by user, in high-throughput mode (deduplication and the
    throughput quota per message group instead of per queue: one user's messages stay
    in order, many users go in parallel), and its FIFO dead-letter queue."""
    dlq = dead_letter_queue(scope, f"{id}Dlq", fifo=True)
    queue = sqs.Queue(
        scope,
        id,
        fifo=True,
        content_based_deduplication=False,  # the producers set MessageDeduplicationId
        deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
        fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count),
    )
    return queue, dlq
