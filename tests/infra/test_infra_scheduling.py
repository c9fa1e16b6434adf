"""EventBridge Scheduler: the group, the wake-up sweep (one recurring schedule that
invokes check every minute, D49), the role it assumes (invoke check only), and the
schedule permissions of the one function that creates schedules (that group only):
deliver, one per deferred delivery; process and check create none. Scheduler invokes
check asynchronously: Lambda's retries of it are explicit, and what they give up on goes
to an on-failure queue with an alarm, not away."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match
from nudge import constants as C

pytestmark = pytest.mark.infra


def test_schedule_group_exists_with_the_shared_name(synth):
    # the triggers' group, and the train function's (tests/infra/test_infra_training.py)
    synth.template.resource_count_is("AWS::Scheduler::ScheduleGroup", 2)
    synth.template.has_resource_properties(
        "AWS::Scheduler::ScheduleGroup", {"Name": C.SCHEDULE_GROUP}
    )


def test_scheduler_role_is_assumed_by_scheduler_of_this_account_only(synth):
    role = synth.template_json["Resources"][synth.logical_id(synth.stack.scheduling.role)]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]


def test_scheduler_role_may_invoke_check_requeue_actions_and_dead_letter_only(synth):
    s = synth.stack
    perms = synth.allowed(s.scheduling.role)
    assert perms["lambda:InvokeFunction"] == [
        {"Fn::GetAtt": [synth.logical_id(s.scheduling.function), "Arn"]}
    ]
    # deferred deliveries come back on the actions queue; failures go to its DLQ
    assert sorted(map(str, perms["sqs:SendMessage"])) == sorted(
        str({"Fn::GetAtt": [synth.logical_id(q), "Arn"]})
        for q in (s.delivery.actions_queue, s.scheduling.dlq)
    )
    assert set(perms) == {
        "lambda:InvokeFunction",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    assert not any(a.startswith("kms:") for a in perms)  # the queues use SSE-SQS


def test_the_wake_up_sweep_invokes_check_every_minute_with_its_scheduled_time(synth):
    s = synth.stack
    [sweep] = [
        r
        for r in synth.resources("AWS::Scheduler::Schedule").values()
        if r["Properties"]["Name"] == C.WAKE_UP_SWEEP_SCHEDULE
    ]
    props = sweep["Properties"]
    assert props["GroupName"] == C.SCHEDULE_GROUP
    assert sweep["DependsOn"] == [synth.logical_id(s.scheduling.group)]  # made after it
    # second 0 of every minute, in UTC, no flexible window: the minute is the bucket
    assert props["ScheduleExpression"] == "cron(* * * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["State"] == "ENABLED"
    target = props["Target"]
    assert target["Arn"] == {"Fn::GetAtt": [synth.logical_id(s.scheduling.function), "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": [synth.logical_id(s.scheduling.role), "Arn"]}
    assert json.loads(target["Input"]) == {"scheduled_time": "<aws.scheduler.scheduled-time>"}
    assert target["DeadLetterConfig"] == {
        "Arn": {"Fn::GetAtt": [synth.logical_id(s.scheduling.dlq), "Arn"]}
    }
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 10}


def test_deliver_only_creates_schedules_in_the_nudge_group(synth):
    # one-time schedules that delete themselves after they ran: nothing to update, read
    # or delete
    perms = synth.allowed(synth.stack.functions[C.FN_DELIVER].role)
    assert {a for a in perms if a.startswith("scheduler:")} == {"scheduler:CreateSchedule"}
    (arn,) = perms["scheduler:CreateSchedule"]
    assert arn["Fn::Join"][1][-1] == f":schedule/{C.SCHEDULE_GROUP}/*"


@pytest.mark.parametrize("name", [C.FN_PROCESS, C.FN_CHECK])
def test_process_and_check_create_no_schedule(synth, name):
    perms = synth.allowed(synth.stack.functions[name].role)
    assert not any(a.startswith("scheduler:") for a in perms)
    assert "iam:PassRole" not in perms


def test_process_is_told_nothing_of_the_scheduler(synth):
    s = synth.stack
    fn = synth.template_json["Resources"][synth.logical_id(s.processing.function)]
    env = fn["Properties"]["Environment"]["Variables"]
    for name in (
        C.ENV_SCHEDULE_GROUP,
        C.ENV_SCHEDULER_ROLE_ARN,
        C.ENV_SCHEDULER_DLQ_ARN,
        "NUDGE_CHECK_FUNCTION_ARN",  # what it was told to create bucket schedules
    ):
        assert name not in env


def test_functions_are_told_where_schedules_go(synth):
    s = synth.stack
    synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {
                        C.ENV_SCHEDULE_GROUP: C.SCHEDULE_GROUP,
                        C.ENV_SCHEDULER_ROLE_ARN: {
                            "Fn::GetAtt": [synth.logical_id(s.scheduling.role), "Arn"]
                        },
                        C.ENV_SCHEDULER_DLQ_ARN: {
                            "Fn::GetAtt": [synth.logical_id(s.scheduling.dlq), "Arn"]
                        },
                    }
                )
            }
        },
    )


def test_check_function_retries_asynchronous_invocations_explicitly_then_keeps_the_failures(
    synth,
):
    s = synth.stack
    check = {"Ref": synth.logical_id(s.scheduling.function)}
    (config,) = [
        c
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == check
    ]
    props = config["Properties"]
    assert props["Qualifier"] == "$LATEST"
    assert props["MaximumRetryAttempts"] == 2  # the most Lambda allows
    assert props["MaximumEventAgeInSeconds"] == 6 * 3600  # the longest Lambda allows
    assert props["DestinationConfig"] == {
        "OnFailure": {
            "Destination": {"Fn::GetAtt": [synth.logical_id(s.scheduling.check_failures), "Arn"]}
        }
    }


def test_check_failures_queue_is_encrypted_tls_only_kept_14_days_and_standard(synth):
    s = synth.stack
    queue = synth.template_json["Resources"][synth.logical_id(s.scheduling.check_failures)]
    props = queue["Properties"]
    assert props["SqsManagedSseEnabled"] is True
    assert props["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "FifoQueue" not in props  # Lambda destinations cannot be FIFO
    synth.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": synth.logical_id(s.scheduling.check_failures)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_a_check_failure_alarms(synth):
    s = synth.stack
    alarm = s.monitoring.dlq_alarms["check-failures"]
    props = synth.template_json["Resources"][synth.logical_id(alarm)]["Properties"]
    assert props["MetricName"] == "ApproximateNumberOfMessagesVisible"
    (dim,) = props["Dimensions"]
    assert dim["Value"] == {
        "Fn::GetAtt": [synth.logical_id(s.scheduling.check_failures), "QueueName"]
    }
