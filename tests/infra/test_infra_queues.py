"""Every queue is encrypted and TLS-only; every work queue is FIFO with a FIFO DLQ."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from nudge import constants as C

pytestmark = pytest.mark.infra


def _work_queues(synth):  # type: ignore[no-untyped-def]
    s = synth.stack
    return {
        C.EVENTS_QUEUE: (s.ingest.events_queue, s.ingest.events_dlq, C.EVENTS_MAX_RECEIVE_COUNT),
        C.ACTIONS_QUEUE: (
            s.delivery.actions_queue,
            s.delivery.actions_dlq,
            C.ACTIONS_MAX_RECEIVE_COUNT,
        ),
    }


@pytest.mark.parametrize("name", [C.EVENTS_QUEUE, C.ACTIONS_QUEUE])
def test_work_queue_is_fifo_with_a_fifo_dlq_redrive(synth, name):
    queue, dlq, max_receive = _work_queues(synth)[name]
    resources = synth.template_json["Resources"]
    props = resources[synth.logical_id(queue)]["Properties"]
    dlq_props = resources[synth.logical_id(dlq)]["Properties"]

    assert props["FifoQueue"] is True
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [synth.logical_id(dlq), "Arn"]},
        "maxReceiveCount": max_receive,
    }
    assert dlq_props["FifoQueue"] is True
    assert dlq_props["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_every_queue_is_encrypted(synth):
    synth.template.all_resources_properties(
        "AWS::SQS::Queue",
        Match.object_like({"SqsManagedSseEnabled": True}),
    )


def test_every_queue_denies_requests_without_tls(synth):
    queues = synth.resources("AWS::SQS::Queue")
    policies = synth.resources("AWS::SQS::QueuePolicy").values()
    denied = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                denied.update(q["Fn::GetAtt"][0] for q in _as_list(statement["Resource"]))
    assert denied == set(queues)


def _as_list(value):  # type: ignore[no-untyped-def]
    return value if isinstance(value, list) else [value]


def test_events_visibility_timeout_is_at_least_six_process_timeouts(synth):
    s = synth.stack
    queue = synth.template_json["Resources"][synth.logical_id(s.ingest.events_queue)]
    process = synth.template_json["Resources"][synth.logical_id(s.processing.function)]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * process["Properties"]["Timeout"]


def test_actions_visibility_timeout_is_at_least_six_deliver_timeouts(synth):
    s = synth.stack
    queue = synth.template_json["Resources"][synth.logical_id(s.delivery.actions_queue)]
    deliver = synth.template_json["Resources"][synth.logical_id(s.sending.function)]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * deliver["Properties"]["Timeout"]


def test_actions_queue_accepts_scheduler_messages_without_a_deduplication_id(synth):
    # EventBridge Scheduler requires content-based deduplication of a FIFO target; the
    # events queue, fed only by ingest (which sets ids), keeps it off.
    s = synth.stack
    resources = synth.template_json["Resources"]
    actions = resources[synth.logical_id(s.delivery.actions_queue)]["Properties"]
    events = resources[synth.logical_id(s.ingest.events_queue)]["Properties"]
    assert actions["ContentBasedDeduplication"] is True
    assert actions["DeduplicationScope"] == "messageGroup"
    assert events["ContentBasedDeduplication"] is False


def test_scheduler_dlq_is_a_standard_queue(synth):
    dlq = synth.template_json["Resources"][synth.logical_id(synth.stack.scheduling.dlq)]
    assert "FifoQueue" not in dlq["Properties"]  # Scheduler target DLQs cannot be FIFO
