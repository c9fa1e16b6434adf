"""Least privilege: one role per function, each action on named resources, no managed
policies, no wildcard resource for data-plane actions."""

from __future__ import annotations

import pytest
from nudge import constants as C

pytestmark = pytest.mark.infra


def _as_list(value):  # type: ignore[no-untyped-def]
    return value if isinstance(value, list) else [value]


def _getatt(synth, construct):  # type: ignore[no-untyped-def]
    return {"Fn::GetAtt": [synth.logical_id(construct), "Arn"]}


def _role(synth, name):  # type: ignore[no-untyped-def]
    return synth.stack.functions[name].role


def test_no_sqs_or_dynamodb_action_on_a_wildcard_resource(synth):
    for policy in synth.resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _as_list(st["Action"])
            if any(a.startswith(("sqs:", "dynamodb:")) for a in actions):
                for resource in _as_list(st["Resource"]):
                    assert resource != "*"
                    assert "*" not in str(resource), resource


def test_no_role_uses_a_managed_policy(synth):
    for role in synth.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def test_ingest_may_only_enqueue_events_and_look_up_keys(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_INGEST))
    assert perms["sqs:SendMessage"] == [_getatt(synth, s.ingest.events_queue)]
    assert perms["dynamodb:GetItem"] == [_getatt(synth, s.state.keys)]
    data_actions = {a for a in perms if a.startswith(("dynamodb:", "sqs:", "scheduler:"))}
    assert data_actions == {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "dynamodb:GetItem",
    }


def test_process_consumes_events_and_writes_profiles_dlq_and_actions(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_PROCESS))
    assert perms["sqs:ReceiveMessage"] == [_getatt(synth, s.ingest.events_queue)]
    assert perms["sqs:DeleteMessage"] == [_getatt(synth, s.ingest.events_queue)]
    assert sorted(map(str, perms["sqs:SendMessage"])) == sorted(
        map(str, [_getatt(synth, s.ingest.events_dlq), _getatt(synth, s.delivery.actions_queue)])
    )
    for action in ("GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"):
        assert perms[f"dynamodb:{action}"] == [_getatt(synth, s.state.profiles)]
    assert "dynamodb:Scan" not in perms


def test_api_manages_profiles_reads_keys_and_erases_schedules(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_API))
    for action in ("GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem"):
        assert _getatt(synth, s.state.profiles) in perms[f"dynamodb:{action}"]
    assert perms["dynamodb:GetItem"].count(_getatt(synth, s.state.keys)) == 1
    assert "scheduler:DeleteSchedule" in perms
    assert perms["scheduler:ListSchedules"] == ["*"]  # no resource-level permissions
    assert "scheduler:CreateSchedule" not in perms
    assert not any(a.startswith("sqs:") for a in perms)


def test_only_process_and_check_may_pass_the_scheduler_role(synth):
    s = synth.stack
    role_arn = _getatt(synth, s.scheduling.role)
    for name in (C.FN_PROCESS, C.FN_CHECK):
        perms = synth.allowed(_role(synth, name))
        assert perms["iam:PassRole"] == [role_arn]
    for name in (C.FN_INGEST, C.FN_API):
        assert "iam:PassRole" not in synth.allowed(_role(synth, name))
