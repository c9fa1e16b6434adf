"""Delivery: the FIFO "actions" queue (grouped by user, so one user's messages go out in
order and the fatigue guard sees them one at a time) and its FIFO dead-letter queue.
The deliver function that consumes it comes later; process and check send to it."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct
from nudge import constants as C

from infra.constructs.queues import fifo_queue_with_dlq

# 6 x the 30 s the deliver function (SES / SNS calls with retries) will be given.
ACTIONS_VISIBILITY_TIMEOUT = cdk.Duration.seconds(180)


class Delivery(Construct):
    """``actions_queue``, ``actions_dlq``, ``environment`` (their URLs)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.actions_queue, self.actions_dlq = fifo_queue_with_dlq(
            self,
            "ActionsQueue",
            visibility_timeout=ACTIONS_VISIBILITY_TIMEOUT,
            max_receive_count=C.ACTIONS_MAX_RECEIVE_COUNT,
        )
        self.environment = {
            C.ENV_ACTIONS_QUEUE_URL: self.actions_queue.queue_url,
            C.ENV_ACTIONS_DLQ_URL: self.actions_dlq.queue_url,
        }
