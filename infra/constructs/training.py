"""Training: the train function on a recurring EventBridge Scheduler schedule. It reads
every profile (Scan) and the archive's objects (boto3: its layer has no duckdb), writes
its artifacts under ``models/`` of the archive bucket and each user's segment and RFM
score (UpdateItem on the profile).

The function carries two layers: the core and ``train`` (the runtime dependencies but
duckdb, plus scikit-learn, numpy and scipy with their tests pruned; infra/bundling.py,
docs/decisions.md D36), not the deps layer: with duckdb it would pass Lambda's 250 MiB.

Settings read from CDK context, validated at synth time:

- ``train_schedule``: the schedule expression, ``rate(...)`` or ``cron(...)``; default
  ``rate(1 hour)``.
- ``train_window_days``: days of the archive a run reads (arrival time); default 90.

Scheduler invokes the function asynchronously: Lambda retries a failed run once, then
sends the event with its error to ``failures`` (a queue with an alarm, like the check
function's). A failed run keeps the last good artifacts and scores.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct, Node
from nudge import constants as C
from nudge.adapters.erased import ERASED_PREFIX

from infra.bundling import build_train_layer
from infra.constructs.archive import Archive
from infra.constructs.function import ARCHITECTURE, RUNTIME, NudgeFunction
from infra.constructs.queues import dead_letter_queue
from infra.constructs.scheduling import recurring_schedule
from infra.constructs.state import State
from infra.context import ContextError

DEFAULT_WINDOW_DAYS = 90
TRAIN_TIMEOUT = cdk.Duration.minutes(15)  # Lambda's most
# peak 1.9 GB measured at 100k users / 10k items with the item model, with room
TRAIN_MEMORY_MB = 3008
TRAIN_RETRY_ATTEMPTS = 1
_EXPRESSION = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$")

# The train function scans profiles and sets two attributes (and the version) of each
# changed one; it never reads one by key, puts a whole item or deletes one.
PROFILE_TRAIN_ACTIONS = ("dynamodb:Scan", "dynamodb:UpdateItem")
ARCHIVE_BUCKET_ACTIONS = ("s3:ListBucket",)
# reads the archived events; its purge step writes back the objects that held events of
# erased users without them (nudge.domain.purge), never deleting one
ARCHIVE_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject")
# the erased list: reads each id's entry, marks it purged, and drops it a day later
ERASED_LIST_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
MODELS_WRITE_ACTIONS = ("s3:GetObject", "s3:PutObject")  # the catalog merges the last one
MODELS_READ_ACTIONS = ("s3:GetObject",)


@dataclass(frozen=True)
class TrainingContext:
    schedule: str
    window_days: int

    @classmethod
    def from_node(cls, node: Node) -> TrainingContext:
        schedule = node.try_get_context("train_schedule")
        if schedule is None:
            schedule = C.DEFAULT_TRAIN_SCHEDULE
        if not isinstance(schedule, str) or not _EXPRESSION.match(schedule.strip()):
            raise ContextError(
                f"context 'train_schedule' must be a Scheduler rate(...) or cron(...) "
                f"expression, e.g. 'rate(1 hour)'; got {schedule!r}"
            )
        days = node.try_get_context("train_window_days")
        if days is None:
            days = DEFAULT_WINDOW_DAYS
        if isinstance(days, str) and days.strip().isdigit():
            days = int(days)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3660:
            raise ContextError(f"context 'train_window_days' must be 1 to 3660, got {days!r}")
        return cls(schedule=schedule.strip(), window_days=days)


class Training(Construct):
    """``layer`` (the train layer) and ``layer_dir`` (its folder), ``handler`` (the
    NudgeFunction), ``function``, ``group``, ``schedule`` (L1) and ``role`` (assumed by
    Scheduler), ``failures``
    (the on-failure destination), ``context``; ``grant_read_models`` lets another
    function read the artifacts."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        root: Path,
        core_layer: lambda_.ILayerVersion,
        state: State,
        archive: Archive,
        scheduler_dlq: sqs.IQueue,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id)
        self.context = TrainingContext.from_node(self.node)
        self.archive = archive
        self.layer_dir = build_train_layer(root)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(str(self.layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="nudge train function dependencies: scikit-learn, numpy, scipy, no duckdb",
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.handler = NudgeFunction(
            self,
            "Train",
            name=C.FN_TRAIN,
            description="Hourly: RFM scores, k-means segments, the catalog, from profiles and archive",
            layers=[self.layer, core_layer],
            environment={
                **environment,
                **state.environment_for(C.PROFILES),
                C.ENV_ARCHIVE_BUCKET: archive.bucket.bucket_name,
                C.ENV_MODELS_BUCKET: archive.bucket.bucket_name,
                C.ENV_TRAIN_WINDOW_DAYS: str(self.context.window_days),
            },
            memory_size=TRAIN_MEMORY_MB,
            timeout=TRAIN_TIMEOUT,
        )
        self.function = self.handler.function

        state.profiles.grant(self.function, *PROFILE_TRAIN_ACTIONS)
        iam.Grant.add_to_principal(
            grantee=self.function,
            actions=list(ARCHIVE_BUCKET_ACTIONS),
            resource_arns=[archive.bucket.bucket_arn],
        )
        archive.bucket.grants.actions_on_object_keys(
            self.function, f"{C.ARCHIVE_PREFIX}*", *ARCHIVE_OBJECT_ACTIONS
        )
        archive.bucket.grants.actions_on_object_keys(
            self.function, f"{C.MODELS_PREFIX}*", *MODELS_WRITE_ACTIONS
        )
        archive.bucket.grants.actions_on_object_keys(
            self.function, f"{ERASED_PREFIX}*", *ERASED_LIST_ACTIONS
        )
        Archive._acknowledge_objects(
            self.handler.role,
            archive.bucket,
            (C.ARCHIVE_PREFIX,),
            reason=(
                "Archived objects are named by Firehose at delivery time, one or more per "
                "hour, so reading them (and, in the purge step, writing back one that held "
                "an erased user's events without them) can only name a key pattern: "
                "GetObject and PutObject are confined to the events/ prefix of the archive "
                "bucket (not its errors/), with no delete."
            ),
        )
        Archive._acknowledge_objects(
            self.handler.role,
            archive.bucket,
            (ERASED_PREFIX,),
            reason=(
                "The erased list is one object per erased id, named by the id's SHA-256 "
                "when the user is erased, and the purge step's cursor beside them: reading, "
                "marking and dropping them can only name the erased/ prefix, to which "
                "these grants are confined."
            ),
        )
        Archive._acknowledge_objects(
            self.handler.role,
            archive.bucket,
            (C.MODELS_PREFIX,),
            reason=(
                "The train function's artifacts are one object per artifact name under "
                "models/ (segments, catalog, items, train_run), a set that grows with the "
                "steps of a run; the wildcard is confined to that prefix of the archive "
                "bucket, and grants only GetObject and PutObject, no delete."
            ),
        )

        # Its asynchronous invocations (Scheduler's): one retry, then a queue that keeps
        # the failed event and its error for an operator (standard: destinations cannot
        # be FIFO). The next occurrence runs anyway: a missed run only delays freshness.
        self.failures = dead_letter_queue(self, "Failures", fifo=False)
        cdk.Validations.of(self.failures).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SQS3",
                reason=(
                    "This queue is itself a dead-letter queue: the on-failure destination "
                    "of the train function's asynchronous invocations (EventInvokeConfig), "
                    "where Lambda sends a scheduled run it gave up on, which cdk-nag does "
                    "not recognize as a dead-letter queue."
                ),
            )
        )
        self.function.configure_async_invoke(
            retry_attempts=TRAIN_RETRY_ATTEMPTS,
            max_event_age=cdk.Duration.hours(1),  # the next occurrence supersedes it
            on_failure=destinations.SqsDestination(self.failures),
        )

        self.group = scheduler.ScheduleGroup(
            self,
            "Group",
            schedule_group_name=C.TRAIN_SCHEDULE_GROUP,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # Scheduler's role for this schedule: invoke this function only, unqualified (an
        # explicit statement: the L2 LambdaInvoke target grants "<arn>:*" too, every
        # version and alias), and send undeliverable invocations to the Scheduler DLQ.
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "SchedulerRole",
            description="Assumed by EventBridge Scheduler to invoke the nudge train function",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
            )
        )
        scheduler_dlq.grant_send_messages(self.role)
        self.schedule = recurring_schedule(
            self,
            "Schedule",
            group=self.group,
            name=C.TRAIN_SCHEDULE_NAME,
            description="Runs the nudge train function (segments, RFM, catalog)",
            expression=self.context.schedule,
            target=self.function,
            role=self.role,
            payload="{}",
            dlq=scheduler_dlq,
            retry_attempts=2,
            max_event_age_s=3600,
        )

    def grant_read_models(self, fn: NudgeFunction) -> None:
        """Read the artifacts (GetObject under models/) and know where they are."""
        fn.function.add_environment(C.ENV_MODELS_BUCKET, self.archive.bucket.bucket_name)
        self.archive.bucket.grants.actions_on_object_keys(
            fn.function, f"{C.MODELS_PREFIX}*", *MODELS_READ_ACTIONS
        )
        Archive._acknowledge_objects(
            fn.role,
            self.archive.bucket,
            (C.MODELS_PREFIX,),
            reason=(
                "The train function's artifacts are one object per artifact name under "
                "models/, a set that grows with the steps of a run; reading is confined to "
                "that prefix of the archive bucket, GetObject only."
            ),
        )
