"""NudgeStack: composes one construct per capability and wires them together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct
from nudge import constants as C
from nudge.domain.triggers.loader import load_triggers

from infra.constructs.api import Api
from infra.constructs.archive import Archive
from infra.constructs.delivery import Delivery, Sending
from infra.constructs.email_channel import EmailChannel
from infra.constructs.ingest import Ingest
from infra.constructs.layers import (
    CONFIG_PATH,
    TEMPLATES_PATH,
    TRIGGERS_PATH,
    Layers,
)
from infra.constructs.monitoring import Monitoring
from infra.constructs.processing import PROCESS_TIMEOUT, Processing
from infra.constructs.scheduling import Scheduling
from infra.constructs.state import State
from infra.constructs.training import Training
from infra.context import DeliveryContext

ROOT = Path(__file__).resolve().parents[1]


class NudgeStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)

        self.context = DeliveryContext.from_node(self.node)
        self.state = State(self, "State")
        self.layers = Layers(self, "Layers", root=ROOT)
        self.delivery = Delivery(self, "Delivery")

        # Every function: observability settings and where the definitions are. Each
        # construct adds the names of the tables (and queues...) its function may use.
        common_env = {
            "POWERTOOLS_SERVICE_NAME": C.SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": C.METRICS_NAMESPACE,
            "LOG_LEVEL": "INFO",
            C.ENV_TRIGGERS_PATH: TRIGGERS_PATH,
            C.ENV_TEMPLATES_PATH: TEMPLATES_PATH,
            C.ENV_CONFIG_PATH: CONFIG_PATH,
        }
        layers = self.layers.all

        self.ingest = Ingest(
            self,
            "Ingest",
            state=self.state,
            layers=layers,
            environment=common_env,
            consumer_timeout=PROCESS_TIMEOUT,
        )
        self.scheduling = Scheduling(
            self,
            "Scheduling",
            state=self.state,
            events_queue=self.ingest.events_queue,  # check fans timers out onto it
            layers=layers,
            environment=common_env,
        )
        # Before processing, whose function writes every accepted event into it.
        self.archive = Archive(self, "Archive")
        self.processing = Processing(
            self,
            "Processing",
            events_queue=self.ingest.events_queue,
            events_dlq=self.ingest.events_dlq,
            state=self.state,
            delivery=self.delivery,
            layers=layers,
            environment=common_env,
            timeout=PROCESS_TIMEOUT,
        )
        self.email = EmailChannel(
            self,
            "Email",
            context=self.context,
            state=self.state,
            layers=layers,
            environment=common_env,
        )
        self.sending = Sending(
            self,
            "Sending",
            delivery=self.delivery,
            email=self.email,
            state=self.state,
            scheduling=self.scheduling,
            context=self.context,
            public_url=self.ingest.url,  # unsubscribe links point at the HTTP API
            layers=layers,
            environment=common_env,
        )
        self.api = Api(
            self,
            "Api",
            http_api=self.ingest.http_api,
            state=self.state,
            scheduling=self.scheduling,
            delivery=self.delivery,
            events_dlq=self.ingest.events_dlq,
            context=self.context,
            layers=layers,
            environment=common_env,
        )
        self.archive.grant_write(self.processing.handler)
        self.archive.grant_write(self.ingest.handler)  # the tracking plan's violations
        # message outcomes: delivery statuses, SES events, in-app reads and unsubscribes
        self.archive.grant_write(self.sending.handler)
        self.archive.grant_write(self.email.feedback)
        self.archive.grant_write(self.api.handler)
        self.archive.grant_query(self.api.handler)  # reports are SQL over the archive
        self.archive.grant_erase(self.api.handler)  # erase lists the user's ids there
        # Hourly: segments, RFM scores, the catalog; its own layers (no deps layer, D36)
        self.training = Training(
            self,
            "Training",
            root=ROOT,
            core_layer=self.layers.core,
            state=self.state,
            archive=self.archive,
            scheduler_dlq=self.scheduling.dlq,
            environment=common_env,
        )
        self.training.grant_read_models(self.sending.handler)  # catalog and items, for templates
        self.training.grant_read_models(self.api.handler)  # recommendations and the catalog
        self.functions = {
            C.FN_INGEST: self.ingest.function,
            C.FN_PROCESS: self.processing.function,
            C.FN_CHECK: self.scheduling.function,
            C.FN_API: self.api.function,
            C.FN_DELIVER: self.sending.function,
            C.FN_FEEDBACK: self.email.function,
            C.FN_TRAIN: self.training.function,
        }
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            functions=self.functions,
            dead_letter_queues={
                C.EVENTS_QUEUE: self.ingest.events_dlq,
                C.ACTIONS_QUEUE: self.delivery.actions_dlq,
                "scheduler": self.scheduling.dlq,
                "check-failures": self.scheduling.check_failures,
                "train-failures": self.training.failures,
            },
            work_queues={
                C.EVENTS_QUEUE: self.ingest.events_queue,
                C.ACTIONS_QUEUE: self.delivery.actions_queue,
            },
            http_api=self.ingest.http_api,
            delivery_streams={C.ARCHIVE: self.archive.stream_name},
            # the shipped definitions: one fired metric and anomaly alarm per trigger
            trigger_ids=load_triggers(ROOT / "triggers").ids,
        )

        outputs = {
            "ApiUrl": self.ingest.url,
            "ProfilesTableName": self.state.profiles.table_name,
            "KeysTableName": self.state.keys.table_name,
            "DeliveriesTableName": self.state.deliveries.table_name,
            "InboxTableName": self.state.inbox.table_name,
            "SuppressionsTableName": self.state.suppressions.table_name,
            "TimersTableName": self.state.timers.table_name,
            "EventsQueueName": self.ingest.events_queue.queue_name,
            "EventsDlqName": self.ingest.events_dlq.queue_name,
            "ActionsQueueName": self.delivery.actions_queue.queue_name,
            "ActionsDlqName": self.delivery.actions_dlq.queue_name,
            "SchedulerDlqName": self.scheduling.dlq.queue_name,
            "CheckFailuresQueueName": self.scheduling.check_failures.queue_name,
            "ScheduleGroupName": C.SCHEDULE_GROUP,
            "TrainScheduleGroupName": C.TRAIN_SCHEDULE_GROUP,
            "TrainFailuresQueueName": self.training.failures.queue_name,
            "UnsubscribeSecretName": C.UNSUBSCRIBE_SECRET_NAME,
            "SenderEmail": self.context.sender_email,
            "SesIdentity": self.email.identity.email_identity_name,
            "SesConfigurationSetName": self.email.configuration_set.configuration_set_name,
            "SesFeedbackTopicArn": self.email.feedback_topic.topic_arn,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            # The CLI finds the stack's archive by these names.
            "ArchiveBucketName": self.archive.bucket.bucket_name,
            "ArchiveStreamName": self.archive.stream_name,
            "GlueDatabaseName": self.archive.database_name,
            "GlueTableName": self.archive.table_name,
            "AthenaWorkGroupName": self.archive.workgroup_name,
        }
        # Easy DKIM: publish these three CNAME records in the sender domain's DNS.
        for i, record in enumerate(self.email.identity.dkim_records, start=1):
            outputs[f"SesDkimRecord{i}"] = cdk.Fn.join(" CNAME ", [record.name, record.value])
        for name, value in outputs.items():
            cdk.CfnOutput(self, name, value=value)
