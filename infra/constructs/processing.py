"""Processing: the process function, fed by the events queue in batches (events, and the
timers the check function fans out), folding them into user state, filing new timers in
the wake-up index (minute buckets, swept by one recurring schedule), and enqueueing
actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nudge import constants as C

from infra.constructs.delivery import Delivery
from infra.constructs.function import NudgeFunction
from infra.constructs.state import State

# The events queue's visibility timeout is derived from this (infra/constructs/ingest.py).
PROCESS_TIMEOUT = cdk.Duration.seconds(C.EVENTS_VISIBILITY_TIMEOUT_S // 6)


class Processing(Construct):
    """``handler`` (the NudgeFunction), ``function``, ``event_source``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        events_queue: sqs.IQueue,
        events_dlq: sqs.IQueue,
        state: State,
        delivery: Delivery,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        timeout: cdk.Duration = PROCESS_TIMEOUT,
    ) -> None:
        super().__init__(scope, id)
        self.handler = NudgeFunction(
            self,
            "Process",
            name=C.FN_PROCESS,
            description="Folds events into user state, evaluates triggers, files timers",
            layers=layers,
            environment={
                **environment,
                **state.environment_for(C.PROFILES, C.DEDUP, C.TIMERS),
                C.ENV_EVENTS_DLQ_URL: events_dlq.queue_url,
                # a failure on that receive is the last: recorded as a dead letter (D40)
                C.ENV_EVENTS_MAX_RECEIVE_COUNT: str(C.EVENTS_MAX_RECEIVE_COUNT),
                **delivery.environment,
            },
            memory_size=512,
            timeout=timeout,
        )
        self.function = self.handler.function

        # One failing user's records fail alone (partial batch response); FIFO event
        # sources take no batching window.
        self.event_source = sources.SqsEventSource(
            events_queue,
            batch_size=C.PROCESS_BATCH_SIZE,
            report_batch_item_failures=True,
        )
        self.function.add_event_source(self.event_source)  # grants consume on the queue

        events_dlq.grant_send_messages(self.function)  # it parks poison messages itself
        delivery.actions_queue.grant_send_messages(self.function)
        state.grant_profile_read_write(self.function)
        state.grant_dedup(self.function)  # heavy users' fingerprints (D42)
        # the wake-up index, and the events queue's dead-letter entries beside it (D40)
        # no Scheduler grant: the wake-up sweep reads the index every minute (D49)
        state.grant_timer_write(self.function)
