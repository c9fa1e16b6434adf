"""Time conditions: the EventBridge Scheduler group, its one recurring schedule (the
wake-up sweep: `cron(* * * * ? *)`, docs/decisions.md D49) and the one-time schedules
deliver creates per deferred delivery; the check function the sweep invokes every minute
with the minute it is for (it Queries that bucket of the wake-up index, the timers table,
and sends one message per user onto the events FIFO queue, grouped by user, for process),
the role Scheduler assumes to invoke it (and, for deferred deliveries, to put an action
back on the actions queue), the dead-letter queue for schedules whose target fails, and
the check function's own on-failure destination.

Scheduler invokes the check function asynchronously: once Lambda has accepted the event,
Scheduler's retry policy and DLQ are done with it, and a check that fails is retried by
Lambda (CHECK_RETRY_ATTEMPTS more times, within CHECK_MAX_EVENT_AGE), then sent with its
error to ``check_failures`` (a queue with an alarm) rather than dropped with the minute's
timers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nudge import constants as C

from infra.constructs.function import NudgeFunction
from infra.constructs.queues import dead_letter_queue
from infra.constructs.state import State

# Lambda's asynchronous retries of a failed check: the most it allows, within the longest
# age it allows (a late check is harmless: every timer is re-checked against current
# state), then the event goes to the on-failure destination.
CHECK_RETRY_ATTEMPTS = 2
CHECK_MAX_EVENT_AGE = cdk.Duration.hours(6)

_SCHEDULES_IN_GROUP_FINDING = (
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:"
    f"<AWS::AccountId>:schedule/{C.SCHEDULE_GROUP}/*]"
)
_SCHEDULES_IN_GROUP_REASON = (
    "Schedules are created at run time, one per deferred delivery, with names not known "
    "at deploy time; the wildcard is confined "
    f"to the schedules of the nudge schedule group ({C.SCHEDULE_GROUP}), never other "
    "groups of the account."
)


def recurring_schedule(
    scope: Construct,
    id: str,
    *,
    group: scheduler.ScheduleGroup,
    name: str,
    description: str,
    expression: str,
    target: lambda_.IFunction,
    role: iam.IRole,
    payload: str,
    dlq: sqs.IQueue,
    retry_attempts: int,
    max_event_age_s: int,
) -> scheduler.CfnSchedule:
    """A recurring schedule of the stack (the wake-up sweep, the train run): in UTC, no
    flexible window, a Lambda target invoked with `payload` by `role`, Scheduler's own
    retries of handing it over, then `dlq`; made after its group."""
    schedule = scheduler.CfnSchedule(
        scope,
        id,
        name=name,
        group_name=group.schedule_group_name,
        description=description,
        schedule_expression=expression,
        schedule_expression_timezone="UTC",
        flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
        state="ENABLED",
        target=scheduler.CfnSchedule.TargetProperty(
            arn=target.function_arn,
            role_arn=role.role_arn,
            input=payload,
            dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=dlq.queue_arn),
            retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                maximum_event_age_in_seconds=max_event_age_s,
                maximum_retry_attempts=retry_attempts,
            ),
        ),
    )
    schedule.node.add_dependency(group)
    return schedule


class Scheduling(Construct):
    """``group``, ``role`` (assumed by Scheduler), ``dlq`` (standard queue: Scheduler
    target DLQs cannot be FIFO), ``check`` (the NudgeFunction), ``check_function_arn``,
    ``sweep`` (the recurring schedule that invokes it every minute), ``check_failures``
    (the check function's on-failure destination: the sweeps Lambda gave up on, with
    their error)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        state: State,
        events_queue: sqs.IQueue,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)

        self.group = scheduler.ScheduleGroup(
            self,
            "Group",
            schedule_group_name=C.SCHEDULE_GROUP,
            # Its schedules are derived state (re-armed from profiles): nothing to keep,
            # and a retained group would block the next deploy of the same name.
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.dlq = dead_letter_queue(self, "Dlq", fifo=False)
        cdk.Validations.of(self.dlq).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SQS3",
                reason=(
                    "This queue is itself a dead-letter queue: EventBridge Scheduler sends "
                    "the invocations it could not deliver here (DeadLetterConfig of the "
                    "wake-up sweep's target and of each deferred delivery's), which cdk-nag "
                    "does not recognize as a dead-letter queue."
                ),
            )
        )

        # The check function has a physical name, hence a stable ARN: the one-time bucket
        # schedules of releases before the sweep (D49) hold it as their target for up to
        # WAKE_UP_INDEX_TTL_DAYS and must keep reaching it across the upgrade.
        check_name = f"{stack.stack_name}-{C.FN_CHECK}"[:64]
        self.check_function_arn = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=check_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )

        self.role = iam.Role(
            self,
            "SchedulerRole",
            description=(
                "Assumed by EventBridge Scheduler to invoke the nudge check function and "
                "to put deferred actions back on the actions queue"
            ),
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                # Confused-deputy guard: only schedules of this account may use it.
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
        )
        self.dlq.grant_send_messages(self.role)

        self.check = NudgeFunction(
            self,
            "Check",
            name=C.FN_CHECK,
            function_name=check_name,
            description="Invoked by Scheduler every minute: queues the minute's timers per user",
            layers=layers,
            environment={
                **environment,
                **state.environment_for(C.TIMERS),
                C.ENV_EVENTS_QUEUE_URL: events_queue.queue_url,
            },
            memory_size=512,
            timeout=cdk.Duration.seconds(30),
        )
        self.function = self.check.function
        # Only this function, unqualified (an explicit statement: grant_invoke would also
        # allow every version and alias through "<arn>:*").
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
            )
        )
        # It reads the bucket's timers and hands them to process through the events queue
        # (SendMessageBatch): no profile, no action, no schedule of its own.
        state.grant_timer_query(self.function)
        events_queue.grant_send_messages(self.function)

        # Its asynchronous invocations (Scheduler's): explicit retries, then a queue, so
        # that a failed bucket is kept (with its error) for an operator to look at and
        # invoke again, not dropped. A standard queue: Lambda destinations cannot be FIFO.
        self.check_failures = dead_letter_queue(self, "CheckFailures", fifo=False)
        cdk.Validations.of(self.check_failures).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-SQS3",
                reason=(
                    "This queue is itself a dead-letter queue: the on-failure destination "
                    "of the check function's asynchronous invocations (EventInvokeConfig), "
                    "where Lambda sends a sweep event it gave up on, which cdk-nag does not "
                    "recognize as a dead-letter queue."
                ),
            )
        )
        self.function.configure_async_invoke(
            retry_attempts=CHECK_RETRY_ATTEMPTS,
            max_event_age=CHECK_MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.check_failures),
        )

        # The wake-up sweep: one recurring schedule, at second 0 of every minute, hands
        # the check function the minute it is for (Scheduler's scheduled-time context
        # attribute, the same on every retry). Its cost is fixed: 1,440 invocations a
        # day whatever the traffic, and no Scheduler call on the event path (D49).
        self.sweep = recurring_schedule(
            self,
            "WakeUpSweep",
            group=self.group,
            name=C.WAKE_UP_SWEEP_SCHEDULE,
            description=C.WAKE_UP_SWEEP_DESCRIPTION,
            expression=C.WAKE_UP_SWEEP_EXPRESSION,
            target=self.function,
            role=self.role,
            payload=C.WAKE_UP_SWEEP_INPUT,
            dlq=self.dlq,
            # Scheduler's own retries of handing a sweep to Lambda (throttled, say), then
            # the scheduler DLQ with the minute in its payload
            retry_attempts=C.SCHEDULE_RETRY_ATTEMPTS,
            max_event_age_s=C.SCHEDULE_MAX_EVENT_AGE_S,
        )

    def schedule_arns(self) -> str:
        """Every schedule of the nudge group (names are made at run time)."""
        return cdk.Stack.of(self).format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{C.SCHEDULE_GROUP}/*",
            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
        )

    def grant_create_schedules(self, fn: NudgeFunction) -> None:
        """Create one-time schedules in the group (deferred deliveries, which delete
        themselves after they ran: nothing is ever updated, read or deleted), and hand
        Scheduler its role (iam:PassRole on that role only)."""
        iam.Grant.add_to_principal(
            grantee=fn.function,
            actions=["scheduler:CreateSchedule"],
            resource_arns=[self.schedule_arns()],
        )
        self.role.grant_pass_role(fn.role)
        self._acknowledge_group_wildcard(fn)

    @staticmethod
    def _acknowledge_group_wildcard(fn: NudgeFunction) -> None:
        cdk.Validations.of(fn.role).acknowledge(
            cdk.Acknowledgment(id=_SCHEDULES_IN_GROUP_FINDING, reason=_SCHEDULES_IN_GROUP_REASON)
        )
