"""Alarms on every dead-letter queue and on every function's errors; one dashboard."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.infra


def _alarms(synth):  # type: ignore[no-untyped-def]
    return list(synth.resources("AWS::CloudWatch::Alarm").values())


def test_every_dead_letter_queue_alarms_when_it_holds_a_message(synth):
    s = synth.stack
    dlqs = {
        s.ingest.events_dlq,
        s.delivery.actions_dlq,
        s.scheduling.dlq,
        s.scheduling.check_failures,
        s.training.failures,
    }
    watched = set()
    for alarm in _alarms(synth):
        p = alarm["Properties"]
        if p["MetricName"] == "ApproximateNumberOfMessagesVisible":
            assert p["Threshold"] == 0
            assert p["ComparisonOperator"] == "GreaterThanThreshold"
            (dim,) = p["Dimensions"]
            watched.add(dim["Value"]["Fn::GetAtt"][0])
    assert watched == {synth.logical_id(q) for q in dlqs}


def test_every_function_alarms_on_errors(synth):
    watched = set()
    for alarm in _alarms(synth):
        p = alarm["Properties"]
        if p["MetricName"] == "Errors" and p["Namespace"] == "AWS/Lambda":
            assert p["Threshold"] == 0
            (dim,) = p["Dimensions"]
            watched.add(dim["Value"]["Ref"])
    assert watched == {synth.logical_id(f) for f in synth.stack.functions.values()}


def test_there_is_a_dashboard(synth):
    synth.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
