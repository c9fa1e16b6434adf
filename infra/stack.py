"""NudgeStack: composes one construct per capability and wires them together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct
from nudge import constants as C

from infra.constructs.api import Api
from infra.constructs.delivery import Delivery
from infra.constructs.ingest import Ingest
from infra.constructs.layers import CONFIG_PATH, TEMPLATES_PATH, TRIGGERS_PATH, Layers
from infra.constructs.monitoring import Monitoring
from infra.constructs.processing import PROCESS_TIMEOUT, Processing
from infra.constructs.scheduling import Scheduling
from infra.constructs.state import State

ROOT = Path(__file__).resolve().parents[1]

# Not (yet) in nudge.constants; the same names the code reads.
ENV_TEMPLATES_PATH: str = getattr(C, "ENV_TEMPLATES_PATH", "NUDGE_TEMPLATES_PATH")
ENV_CONFIG_PATH: str = getattr(C, "ENV_CONFIG_PATH", "NUDGE_CONFIG_PATH")


class NudgeStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)

        self.state = State(self, "State")
        self.layers = Layers(self, "Layers", root=ROOT)
        self.delivery = Delivery(self, "Delivery")

        # Every function: observability settings, where the definitions are, table names.
        common_env = {
            "POWERTOOLS_SERVICE_NAME": C.SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": C.METRICS_NAMESPACE,
            "LOG_LEVEL": "INFO",
            C.ENV_TRIGGERS_PATH: TRIGGERS_PATH,
            ENV_TEMPLATES_PATH: TEMPLATES_PATH,
            ENV_CONFIG_PATH: CONFIG_PATH,
            **self.state.environment,
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
            delivery=self.delivery,
            layers=layers,
            environment=common_env,
        )
        self.processing = Processing(
            self,
            "Processing",
            events_queue=self.ingest.events_queue,
            events_dlq=self.ingest.events_dlq,
            state=self.state,
            delivery=self.delivery,
            scheduling=self.scheduling,
            layers=layers,
            environment=common_env,
            timeout=PROCESS_TIMEOUT,
        )
        self.api = Api(
            self,
            "Api",
            http_api=self.ingest.http_api,
            state=self.state,
            scheduling=self.scheduling,
            layers=layers,
            environment=common_env,
        )
        self.functions = {
            C.FN_INGEST: self.ingest.function,
            C.FN_PROCESS: self.processing.function,
            C.FN_CHECK: self.scheduling.function,
            C.FN_API: self.api.function,
        }
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            functions=self.functions,
            dead_letter_queues={
                C.EVENTS_QUEUE: self.ingest.events_dlq,
                C.ACTIONS_QUEUE: self.delivery.actions_dlq,
                "scheduler": self.scheduling.dlq,
            },
            work_queues={
                C.EVENTS_QUEUE: self.ingest.events_queue,
                C.ACTIONS_QUEUE: self.delivery.actions_queue,
            },
            http_api=self.ingest.http_api,
        )

        outputs = {
            "ApiUrl": self.ingest.url,
            "ProfilesTableName": self.state.profiles.table_name,
            "KeysTableName": self.state.keys.table_name,
            "EventsQueueName": self.ingest.events_queue.queue_name,
            "EventsDlqName": self.ingest.events_dlq.queue_name,
            "ActionsQueueName": self.delivery.actions_queue.queue_name,
            "ActionsDlqName": self.delivery.actions_dlq.queue_name,
            "SchedulerDlqName": self.scheduling.dlq.queue_name,
            "ScheduleGroupName": C.SCHEDULE_GROUP,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
        }
        for name, value in outputs.items():
            cdk.CfnOutput(self, name, value=value)
