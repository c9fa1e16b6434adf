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


def _table_actions(synth, perms):  # type: ignore[no-untyped-def]
    """logical table name -> the dynamodb actions allowed on it."""
    out: dict[str, set[str]] = {}
    for logical, table in synth.stack.state.tables.items():
        arn = _getatt(synth, table)
        for action, resources in perms.items():
            if action.startswith("dynamodb:") and arn in resources:
                out.setdefault(logical, set()).add(action)
    return out


def test_process_consumes_events_and_writes_profiles_timers_dlq_and_actions(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_PROCESS))
    assert perms["sqs:ReceiveMessage"] == [_getatt(synth, s.ingest.events_queue)]
    assert perms["sqs:DeleteMessage"] == [_getatt(synth, s.ingest.events_queue)]
    assert sorted(map(str, perms["sqs:SendMessage"])) == sorted(
        map(str, [_getatt(synth, s.ingest.events_dlq), _getatt(synth, s.delivery.actions_queue)])
    )
    for action in ("GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"):
        assert _getatt(synth, s.state.profiles) in perms[f"dynamodb:{action}"]
    assert "dynamodb:Scan" not in perms
    assert _table_actions(synth, perms) == {
        C.PROFILES: {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        },
        # files each timer under its minute bucket; never reads the index back
        C.TIMERS: {"dynamodb:BatchWriteItem", "dynamodb:PutItem"},
        # moves heavy users' fingerprints out and looks them up (D42); TTL deletes them
        C.DEDUP: {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"},
    }


def test_process_can_write_timers(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_PROCESS))
    timers = _getatt(synth, s.state.timers)
    assert sorted(map(str, perms["dynamodb:BatchWriteItem"])) == sorted(
        map(str, [timers, _getatt(synth, s.state.dedup)])
    )
    assert timers in perms["dynamodb:PutItem"]


def test_check_queries_timers_and_sends_to_the_events_queue_only(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_CHECK))
    assert _table_actions(synth, perms) == {C.TIMERS: {"dynamodb:Query"}}
    assert perms["dynamodb:Query"] == [_getatt(synth, s.state.timers)]
    # the events queue, and its own on-failure destination (Lambda sends with its role)
    assert sorted(map(str, perms["sqs:SendMessage"])) == sorted(
        str(_getatt(synth, q)) for q in (s.ingest.events_queue, s.scheduling.check_failures)
    )
    data_actions = {a for a in perms if not a.startswith(("logs:", "xray:"))}
    assert data_actions == {
        "dynamodb:Query",
        "sqs:SendMessage",  # SendMessageBatch is authorized as sqs:SendMessage
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }


def test_check_can_not_read_profiles_send_actions_or_touch_schedules(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_CHECK))
    every_resource = [r for resources in perms.values() for r in resources]
    assert _getatt(synth, s.state.profiles) not in every_resource
    assert _getatt(synth, s.delivery.actions_queue) not in every_resource
    assert C.PROFILES not in _table_actions(synth, perms)
    assert not any(a.startswith(("scheduler:", "iam:")) for a in perms)


def test_api_manages_profiles_and_keys_reads_inbox_and_log_and_erases_users(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_API))
    for action in ("GetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem"):
        assert _getatt(synth, s.state.profiles) in perms[f"dynamodb:{action}"]
    tables = _table_actions(synth, perms)
    assert tables[C.KEYS] == {  # looked up, and managed by /v1/keys
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:DeleteItem",
    }
    # reads, plus what erase deletes (docs/erase.md)
    assert tables[C.INBOX] == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
    }
    assert tables[C.DELIVERIES] == {"dynamodb:Query", "dynamodb:BatchWriteItem"}
    # erase deletes wake-up entries; the dead-letter report queries its partitions
    assert tables[C.TIMERS] == {"dynamodb:BatchWriteItem", "dynamodb:Query"}
    assert tables[C.SUPPRESSIONS] == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert tables[C.DEDUP] == {"dynamodb:Query", "dynamodb:BatchWriteItem"}  # each id's
    # the wake-up sweep is one schedule for all users: erase has none of its own to delete
    assert not any(a.startswith("scheduler:") for a in perms)
    # the dead-letter queues' sizes, and nothing else of SQS: never a receive (D39, D40)
    assert {a for a in perms if a.startswith("sqs:")} == {"sqs:GetQueueAttributes"}
    assert sorted(map(str, perms["sqs:GetQueueAttributes"])) == sorted(
        str(_getatt(synth, q)) for q in (s.ingest.events_dlq, s.delivery.actions_dlq)
    )
    assert not any(a.startswith(("ses:", "sns:")) for a in perms)  # no push app in context


def test_deliver_reads_and_writes_exactly_what_a_delivery_needs(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_DELIVER))
    assert _table_actions(synth, perms) == {
        C.PROFILES: {"dynamodb:GetItem", "dynamodb:PutItem"},
        C.DELIVERIES: {
            "dynamodb:Query",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
        },
        C.INBOX: {"dynamodb:PutItem", "dynamodb:GetItem"},  # GetItem: confirming a stale claim
        C.SUPPRESSIONS: {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
        C.TIMERS: {"dynamodb:BatchWriteItem"},  # its dead-letter entries only (below)
    }
    # consumes the actions queue, parks poison actions in its DLQ, sends nowhere else
    assert perms["sqs:ReceiveMessage"] == [_getatt(synth, s.delivery.actions_queue)]
    assert perms["sqs:DeleteMessage"] == [_getatt(synth, s.delivery.actions_queue)]
    assert perms["sqs:SendMessage"] == [_getatt(synth, s.delivery.actions_dlq)]


def _timer_statements(synth, name):  # type: ignore[no-untyped-def]
    """The role's statements on the timers table: (actions, conditions)."""
    arn = _getatt(synth, synth.stack.state.timers)
    return [
        (set(_as_list(st["Action"])), st.get("Condition"))
        for st in synth.statements_of_role(_role(synth, name))
        if st["Effect"] == "Allow" and arn in _as_list(st["Resource"])
    ]


def _leading_keys(*queues: str) -> dict[str, dict[str, list[str]]]:
    keys = [f"dead-letters/{q}" for q in queues]
    return {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": keys}}


def test_deliver_writes_only_the_actions_queue_s_dead_letter_partition_of_the_timers_table(
    synth,
):
    assert _timer_statements(synth, C.FN_DELIVER) == [
        ({"dynamodb:BatchWriteItem"}, _leading_keys(C.ACTIONS_QUEUE))
    ]


def test_api_queries_only_the_dead_letter_partitions_of_the_timers_table(synth):
    statements = _timer_statements(synth, C.FN_API)
    queries = [(a, c) for a, c in statements if "dynamodb:Query" in a]
    assert queries == [({"dynamodb:Query"}, _leading_keys(C.EVENTS_QUEUE, C.ACTIONS_QUEUE))]
    # erase's deletes are the only other access, unconditioned as before
    assert [a for a, c in statements if c is None] == [{"dynamodb:BatchWriteItem"}]


def test_the_granted_partitions_are_the_ones_the_adapter_writes():
    from nudge.adapters.tables import dead_letter_partition

    assert [dead_letter_partition(q) for q in (C.EVENTS_QUEUE, C.ACTIONS_QUEUE)] == [
        "dead-letters/events",
        "dead-letters/actions",
    ]


def test_deliver_sends_email_from_the_identity_with_the_configuration_set_only(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_DELIVER))
    # ARNs built with Fn::Join: (what the ARN ends with) for each
    ends = sorted(
        (
            tuple(r["Fn::Join"][1][-2:])
            if r["Fn::Join"][1][-2] == ":identity/"
            else (r["Fn::Join"][1][-1],)
        )
        for r in perms["ses:SendEmail"]
    )
    assert ends == sorted(
        [
            (f":configuration-set/{C.SES_CONFIGURATION_SET}",),
            (":identity/", {"Ref": synth.logical_id(s.email.identity)}),
        ],
    )
    assert [a for a in perms if a.startswith("ses:")] == ["ses:SendEmail"]


def test_deliver_publishes_sms_and_push_through_an_unscoped_policy_of_its_own(synth):
    role_ref = {"Ref": synth.logical_id(_role(synth, C.FN_DELIVER))}
    for policy in synth.resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "sns:Publish" in _as_list(st["Action"]):
                # only deliver publishes, and the '*' holds sns:Publish alone
                assert policy["Properties"]["Roles"] == [role_ref]
                assert _as_list(st["Action"]) == ["sns:Publish"]
                assert st["Resource"] == "*"
    perms = synth.allowed(_role(synth, C.FN_DELIVER))
    assert perms["sns:Publish"] == ["*"]
    # no platform application in the context: no push endpoint to delete
    assert "sns:DeleteEndpoint" not in perms


def test_deliver_may_only_create_schedules_and_pass_the_scheduler_role(synth):
    s = synth.stack
    perms = synth.allowed(_role(synth, C.FN_DELIVER))
    scheduler = {a for a in perms if a.startswith("scheduler:")}
    assert scheduler == {"scheduler:CreateSchedule"}  # deferral schedules delete themselves
    (arn,) = perms["scheduler:CreateSchedule"]
    assert arn["Fn::Join"][1][-1] == f":schedule/{C.SCHEDULE_GROUP}/*"
    assert perms["iam:PassRole"] == [_getatt(synth, s.scheduling.role)]


def test_feedback_may_only_add_suppressions_confirm_sends_and_archive(synth):
    perms = synth.allowed(_role(synth, C.FN_FEEDBACK))
    assert _table_actions(synth, perms) == {
        C.SUPPRESSIONS: {"dynamodb:PutItem"},
        C.DELIVERIES: {"dynamodb:Query", "dynamodb:PutItem"},  # `unconfirmed` → `sent`
    }
    data = {a for a in perms if not a.startswith(("logs:", "xray:"))}
    assert data == {
        "dynamodb:PutItem",
        "dynamodb:Query",
        "firehose:PutRecord",
        "firehose:PutRecordBatch",
    }


def test_only_the_function_that_creates_schedules_may_pass_the_scheduler_role(synth):
    # deliver, for deferred deliveries; process files timers in the index only (D49)
    s = synth.stack
    role_arn = _getatt(synth, s.scheduling.role)
    assert synth.allowed(_role(synth, C.FN_DELIVER))["iam:PassRole"] == [role_arn]
    for name in (C.FN_INGEST, C.FN_PROCESS, C.FN_CHECK, C.FN_API, C.FN_FEEDBACK):
        assert "iam:PassRole" not in synth.allowed(_role(synth, name))


def test_only_deliver_and_api_may_read_the_unsubscribe_secret(synth):
    s = synth.stack
    secret = {"Ref": synth.logical_id(s.delivery.unsubscribe_secret)}
    readers = set()
    for policy in synth.resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if any(a.startswith("secretsmanager:") for a in _as_list(st["Action"])):
                assert _as_list(st["Resource"]) == [secret]
                assert set(_as_list(st["Action"])) == {
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                }
                readers.update(r["Ref"] for r in policy["Properties"]["Roles"])
    assert readers == {
        synth.logical_id(_role(synth, C.FN_DELIVER)),
        synth.logical_id(_role(synth, C.FN_API)),
    }
