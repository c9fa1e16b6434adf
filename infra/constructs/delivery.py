"""Delivery, in two constructs because the producers need the queue before the deliver
function can be built (it needs the schedule group, which needs the queue):

- ``Delivery``: the FIFO "actions" queue (grouped by user, so one user's messages go out
  in order and the fatigue guard sees them one at a time), its FIFO dead-letter queue,
  and the key that signs unsubscribe links (deliver signs, the api verifies);
- ``Sending``: the deliver function on that queue: fatigue guard, render, send through
  SES (email), SNS (SMS, push) or the in-app inbox, log; deferral (quiet hours) through
  a one-time schedule that puts the action back on the queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from nudge import constants as C

from infra.constructs.email_channel import EmailChannel
from infra.constructs.function import NudgeFunction
from infra.constructs.layers import CONFIG_PATH, TEMPLATES_PATH
from infra.constructs.queues import VISIBILITY_TO_TIMEOUT, fifo_queue_with_dlq
from infra.constructs.scheduling import Scheduling
from infra.constructs.state import State
from infra.context import DeliveryContext

# SES / SNS calls with throttling retries, for up to 10 actions.
DELIVER_TIMEOUT = cdk.Duration.seconds(30)
ACTIONS_VISIBILITY_TIMEOUT = cdk.Duration.seconds(
    VISIBILITY_TO_TIMEOUT * DELIVER_TIMEOUT.to_seconds()
)
DELIVER_BATCH_SIZE = 10

_UNSUBSCRIBE_ROTATION_REASON = (
    "This secret is the HMAC key that signs the one-click unsubscribe links in every "
    "email sent (RFC 8058). Rotating it would invalidate every link already delivered, "
    "so recipients of older emails could no longer unsubscribe; it is read only by the "
    "deliver and api functions, and is replaced by hand if it ever leaks."
)
_SNS_PUBLISH_REASON = (
    "sns:Publish to a phone number (SMS) names no resource, so the Service Authorization "
    "Reference requires '*' for it; mobile push goes to platform endpoints created per "
    "device at run time. This policy holds sns:Publish alone, for the deliver function."
)


class Delivery(Construct):
    """``actions_queue``, ``actions_dlq``, ``unsubscribe_secret``, ``environment`` (what a
    producer of actions must know)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.actions_queue, self.actions_dlq = fifo_queue_with_dlq(
            self,
            "ActionsQueue",
            visibility_timeout=ACTIONS_VISIBILITY_TIMEOUT,
            max_receive_count=C.ACTIONS_MAX_RECEIVE_COUNT,
            # Deferral schedules (EventBridge Scheduler) send to it without an id.
            content_based_deduplication=True,
        )
        self.environment = {C.ENV_ACTIONS_QUEUE_URL: self.actions_queue.queue_url}

        self.unsubscribe_secret = secretsmanager.Secret(
            self,
            "UnsubscribeSecret",
            secret_name=C.UNSUBSCRIBE_SECRET_NAME,
            description="nudge: HMAC key of the unsubscribe links (do not rotate)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        cdk.Validations.of(self.unsubscribe_secret).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-SMG4", reason=_UNSUBSCRIBE_ROTATION_REASON)
        )

    def grant_unsubscribe_key(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.unsubscribe_secret.grant_read(grantee)


class Sending(Construct):
    """``handler`` (the NudgeFunction), ``function``, ``event_source``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        delivery: Delivery,
        email: EmailChannel,
        state: State,
        scheduling: Scheduling,
        context: DeliveryContext,
        public_url: str,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id)
        self.handler = NudgeFunction(
            self,
            "Deliver",
            name=C.FN_DELIVER,
            description="Actions into messages: fatigue guard, render, send, log",
            layers=layers,
            environment={
                **environment,
                # the timers table: where its dead-letter entries go (D40)
                **state.environment_for(
                    C.PROFILES, C.DELIVERIES, C.INBOX, C.SUPPRESSIONS, C.TIMERS
                ),
                C.ENV_ACTIONS_QUEUE_ARN: delivery.actions_queue.queue_arn,
                C.ENV_ACTIONS_DLQ_URL: delivery.actions_dlq.queue_url,
                # a failure on that receive is the last: recorded as a dead letter
                C.ENV_ACTIONS_MAX_RECEIVE_COUNT: str(C.ACTIONS_MAX_RECEIVE_COUNT),
                C.ENV_SCHEDULE_GROUP: C.SCHEDULE_GROUP,
                C.ENV_SCHEDULER_ROLE_ARN: scheduling.role.role_arn,
                C.ENV_SCHEDULER_DLQ_ARN: scheduling.dlq.queue_arn,
                **email.environment,
                C.ENV_UNSUBSCRIBE_SECRET_ARN: delivery.unsubscribe_secret.secret_arn,
                C.ENV_PUBLIC_URL: public_url,
                C.ENV_APP_URL: context.app_url,
                C.ENV_TEMPLATES_PATH: TEMPLATES_PATH,
                C.ENV_CONFIG_PATH: CONFIG_PATH,
                C.ENV_SMS_TYPE: context.sms_type,
            },
            memory_size=512,
            timeout=DELIVER_TIMEOUT,
        )
        self.function = self.handler.function

        # One user's failure fails only that user's records (partial batch response;
        # FIFO: the rest of the user's group waits behind it).
        self.event_source = sources.SqsEventSource(
            delivery.actions_queue,
            batch_size=DELIVER_BATCH_SIZE,
            report_batch_item_failures=True,
        )
        self.function.add_event_source(self.event_source)  # grants consume on the queue

        # State: the fatigue guard reads, the claim and the log write.
        state.grant_profile_deliver(self.function)
        state.grant_delivery_log(self.function)
        state.grant_inbox_write(self.function)
        state.grant_suppression_check(self.function)
        # Poison actions and template errors are parked with their reason, and every
        # dead letter is noted in the actions queue's partition of the timers table.
        delivery.actions_dlq.grant_send_messages(self.function)
        state.grant_dead_letter_write(self.function, C.ACTIONS_QUEUE)
        delivery.grant_unsubscribe_key(self.function)

        # Channels.
        email.grant_send(self.function)
        self.handler.grant_unscoped(
            "SnsPublish", actions=["sns:Publish"], reason=_SNS_PUBLISH_REASON
        )
        endpoints = context.platform_endpoint_arns
        if endpoints:  # no platform application, no push endpoint to clean up
            iam.Grant.add_to_principal(
                grantee=self.function, actions=["sns:DeleteEndpoint"], resource_arns=endpoints
            )
            for arn in endpoints:
                cdk.Validations.of(self.handler.role).acknowledge(
                    cdk.Acknowledgment(
                        id=f"AwsSolutions-IAM5[Resource::{arn}]",
                        reason=(
                            "Push endpoints are created per device at run time (POST "
                            "/v1/users/{id}/devices), so their ids are unknown at deploy "
                            "time; the wildcard is confined to the endpoints of the one "
                            "configured platform application, deleted once disabled."
                        ),
                    )
                )

        # Quiet hours: a one-time schedule puts the action back on the actions queue.
        scheduling.grant_create_schedules(self.handler)
        delivery.actions_queue.grant_send_messages(scheduling.role)
