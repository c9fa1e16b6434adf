"""Alarms on every dead-letter queue, every function's errors, the work queues' oldest
message, SES reputation and each trigger's fires; all notify one encrypted SNS topic; one
dashboard shows ingest, lag, queues, errors, sends per channel and fires per trigger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nudge import constants as C
from nudge.domain.channels import CHANNELS
from nudge.domain.triggers.loader import load_triggers

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


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
        if p.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert p["Threshold"] == 0
            assert p["ComparisonOperator"] == "GreaterThanThreshold"
            (dim,) = p["Dimensions"]
            watched.add(dim["Value"]["Fn::GetAtt"][0])
    assert watched == {synth.logical_id(q) for q in dlqs}


def test_every_function_alarms_on_errors(synth):
    watched = set()
    for alarm in _alarms(synth):
        p = alarm["Properties"]
        if p.get("MetricName") == "Errors" and p["Namespace"] == "AWS/Lambda":
            assert p["Threshold"] == 0
            (dim,) = p["Dimensions"]
            watched.add(dim["Value"]["Ref"])
    assert watched == {synth.logical_id(f) for f in synth.stack.functions.values()}


def test_each_work_queue_alarms_when_its_oldest_message_waits_too_long(synth):
    s = synth.stack
    watched = {}
    for alarm in _alarms(synth):
        p = alarm["Properties"]
        if p.get("MetricName") == "ApproximateAgeOfOldestMessage":
            assert p["ComparisonOperator"] == "GreaterThanThreshold"
            assert p["Statistic"] == "Maximum"
            (dim,) = p["Dimensions"]
            watched[dim["Value"]["Fn::GetAtt"][0]] = p["Threshold"]
    assert set(watched) == {
        synth.logical_id(s.ingest.events_queue),
        synth.logical_id(s.delivery.actions_queue),
    }
    assert 0 < watched[synth.logical_id(s.ingest.events_queue)] <= 900  # before 15-min triggers


def test_ses_bounce_and_complaint_rates_alarm_before_the_suspension_thresholds(synth):
    rates = {}
    for alarm in _alarms(synth):
        p = alarm["Properties"]
        if p.get("Namespace") == "AWS/SES":
            assert p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            rates[p["MetricName"]] = p["Threshold"]
    # SES reviews at 5 % bounces and 0.1 % complaints, may pause at 10 % and 0.5 %
    assert 0 < rates["Reputation.BounceRate"] < 0.10
    assert 0 < rates["Reputation.ComplaintRate"] < 0.005


def test_a_recommender_kept_out_of_service_by_its_validation_alarms(synth):
    found = [a["Properties"] for a in _alarms(synth) if C.RECS_REJECTED in json.dumps(a)]
    assert found, [a["Properties"].get("AlarmDescription") for a in _alarms(synth)]
    (alarm,) = found
    assert C.METRICS_NAMESPACE in json.dumps(alarm) and alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_each_shipped_trigger_has_an_anomaly_alarm_on_its_fires(synth):
    found: dict[str, Any] = {}
    for alarm in _alarms(synth):
        p = alarm["Properties"]
        if "ThresholdMetricId" not in p:
            continue
        assert p["ComparisonOperator"] == "LessThanLowerOrGreaterThanUpperThreshold"
        by_id = {m["Id"]: m for m in p["Metrics"]}
        band = by_id[p["ThresholdMetricId"]]
        assert band["Expression"].startswith("ANOMALY_DETECTION_BAND(")
        stats = [m["MetricStat"] for m in p["Metrics"] if "MetricStat" in m]
        (stat,) = stats
        metric = stat["Metric"]
        assert metric["Namespace"] == C.METRICS_NAMESPACE
        assert metric["MetricName"] == C.TRIGGER_FIRED
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert set(dims) == {"service", C.DIM_TRIGGER}  # bounded: no per-user dimension
        assert any("FILL(" in m.get("Expression", "") for m in p["Metrics"])  # 0, not missing
        found[dims[C.DIM_TRIGGER]] = p
    assert set(found) == set(load_triggers(ROOT / "triggers").ids)


def test_every_alarm_notifies_the_encrypted_alarm_topic(synth):
    topic_id = synth.logical_id(synth.stack.monitoring.topic)
    alarms = _alarms(synth)
    assert len(alarms) == len(synth.stack.monitoring.alarms)
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}], alarm
    topic = synth.template_json["Resources"][topic_id]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = synth.template_json["Resources"][key_id]["Properties"]["KeyPolicy"]
    cloudwatch = [
        st
        for st in key_policy["Statement"]
        if st.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


def _dashboard_body(synth: Any) -> dict[str, Any]:
    (dash,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    parts = dash["Properties"]["DashboardBody"]["Fn::Join"][1]
    # the tokens (queue names, function names) are Refs: render them as placeholders
    text = "".join(p if isinstance(p, str) else '"REF"' for p in parts)
    text = text.replace('""REF""', '"REF"')
    return json.loads(text)


def test_the_dashboard_shows_what_the_operator_watches(synth):
    body = _dashboard_body(synth)
    widgets = {w["properties"].get("title"): w["properties"] for w in body["widgets"]}
    for title in (
        "Alarms",
        "Ingest rate (per 5 min)",
        "Processing lag: age of the oldest message (s)",
        "Queue depth",
        "Dead-letter queue sizes",
        "Errors and throttles",
        "Sends per channel (per 5 min)",
        "Fired per trigger (per 5 min)",
    ):
        assert title in widgets, title

    def metric_dims(props: dict[str, Any]) -> list[dict[str, str]]:
        out = []
        for m in props["metrics"]:
            if len(m) > 2 and m[0] == C.METRICS_NAMESPACE:
                pairs = [x for x in m[2:] if isinstance(x, str)]
                out.append(dict(zip(pairs[::2], pairs[1::2], strict=False)))
        return out

    sends = metric_dims(widgets["Sends per channel (per 5 min)"])
    assert {d[C.DIM_CHANNEL] for d in sends if d.get(C.DIM_STATUS) == "sent"} == set(CHANNELS)
    fired = metric_dims(widgets["Fired per trigger (per 5 min)"])
    assert {d[C.DIM_TRIGGER] for d in fired} == set(load_triggers(ROOT / "triggers").ids)


def test_the_stack_outputs_the_alarm_topic(synth):
    outputs = synth.template_json["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {
        "Ref": synth.logical_id(synth.stack.monitoring.topic)
    }
