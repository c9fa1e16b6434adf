"""EventBridge Scheduler: the group, the role it assumes (invoke check only), and the
schedule permissions of the functions that arm schedules (that group only)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from nudge import constants as C

pytestmark = pytest.mark.infra

ARM_ACTIONS = (
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
)


def test_schedule_group_exists_with_the_shared_name(synth):
    synth.template.resource_count_is("AWS::Scheduler::ScheduleGroup", 1)
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


@pytest.mark.parametrize("name", [C.FN_PROCESS, C.FN_CHECK])
def test_function_arms_schedules_in_the_nudge_group_only(synth, name):
    perms = synth.allowed(synth.stack.functions[name].role)
    for action in ARM_ACTIONS:
        assert len(perms[action]) == 1, action
        joined = perms[action][0]["Fn::Join"][1]
        assert joined[-1] == f":schedule/{C.SCHEDULE_GROUP}/*", action


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
