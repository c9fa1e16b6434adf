"""The email channel: the SES v2 identity of the sender's domain, the configuration set
every email is sent with, and the way back for what happened to each email: an event
destination (deliveries, opens, clicks, bounces, complaints) to an encrypted SNS topic,
and the feedback function subscribed to it, which puts bounced and complaining addresses
on the suppression list and archives every event (the stack grants it the archive)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct
from nudge import constants as C

from infra.constructs.function import NudgeFunction
from infra.constructs.state import State
from infra.context import DeliveryContext

# The SES events the configuration set publishes: bounces and complaints make an address
# unsendable; all five are archived as Segment's email events (Email Delivered, Opened,
# Link Clicked, Bounced, Marked as Spam), for response rates (D33). Delivery costs an
# invocation per email sent, which the response rate is worth. SES adds open tracking
# (a pixel) and click tracking (links rewritten through its domain) to emails of a
# configuration set that publishes OPEN and CLICK.
FEEDBACK_EVENTS = (
    ses.EmailSendingEvent.DELIVERY,
    ses.EmailSendingEvent.OPEN,
    ses.EmailSendingEvent.CLICK,
    ses.EmailSendingEvent.BOUNCE,
    ses.EmailSendingEvent.COMPLAINT,
)


class EmailChannel(Construct):
    """``identity``, ``configuration_set``, ``configuration_set_arn``, ``feedback_key``,
    ``feedback_topic``, ``feedback`` (the NudgeFunction), ``function``, ``environment``
    (what a function that sends email must know)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: DeliveryContext,
        state: State,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)

        # Easy DKIM: the three CNAME records to publish are stack outputs (infra/stack.py);
        # SES sends from any address of the domain once they resolve.
        self.identity = ses.EmailIdentity(
            self, "Identity", identity=ses.Identity.domain(context.sender_domain)
        )
        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            configuration_set_name=C.SES_CONFIGURATION_SET,
            reputation_metrics=True,  # bounce and complaint rates per configuration set
        )
        self.configuration_set_arn = stack.format_arn(
            service="ses", resource="configuration-set", resource_name=C.SES_CONFIGURATION_SET
        )

        # SES cannot publish to a topic encrypted with the AWS managed key (its policy
        # cannot name SES), hence a customer managed key that lets SES, for this account's
        # configuration set only, encrypt.
        self.feedback_key = kms.Key(
            self,
            "FeedbackKey",
            description="nudge: encrypts SES event notifications in SNS",
            enable_key_rotation=True,
            # Only messages in flight are encrypted with it: nothing to keep.
            removal_policy=cdk.RemovalPolicy.DESTROY,
            pending_window=cdk.Duration.days(7),
        )
        self.feedback_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="SesPublishesFeedback",
                principals=[iam.ServicePrincipal("ses.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": self.configuration_set_arn},
                },
            )
        )
        self.feedback_topic = sns.Topic(
            self,
            "FeedbackTopic",
            display_name="nudge SES feedback",
            master_key=self.feedback_key,
            enforce_ssl=True,
        )
        # Also adds the topic policy letting SES (this configuration set) publish.
        self.configuration_set.add_event_destination(
            "Feedback",
            destination=ses.EventDestination.sns_topic(self.feedback_topic),
            events=list(FEEDBACK_EVENTS),
        )

        self.feedback = NudgeFunction(
            self,
            "Feedback",
            name=C.FN_FEEDBACK,
            description="SES events (SNS): bounces and complaints suppress; all are archived "
            "and confirm their email's send",
            layers=layers,
            environment={**environment, **state.environment_for(C.SUPPRESSIONS, C.DELIVERIES)},
            memory_size=256,
            timeout=cdk.Duration.seconds(10),
        )
        self.function = self.feedback.function
        self.feedback_topic.add_subscription(subscriptions.LambdaSubscription(self.function))
        state.grant_suppression_write(self.function)
        state.grant_delivery_confirm(self.function)  # SES's events confirm a send (D41)

        self.environment: dict[str, str] = {
            C.ENV_SENDER_EMAIL: context.sender_email,
            C.ENV_SES_CONFIGURATION_SET: self.configuration_set.configuration_set_name,
        }

    def grant_send(self, grantee: iam.IGrantable) -> iam.Grant:
        """ses:SendEmail (SES v2), from the identity, with the configuration set: SES
        authorizes a send against both."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ses:SendEmail"],
            resource_arns=[self.identity.email_identity_arn, self.configuration_set_arn],
        )
