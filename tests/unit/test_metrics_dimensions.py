"""The per-value CloudWatch metrics (Powertools EMF records on stdout): fired per trigger
from the process function, deliveries per channel and status from the deliver function,
each with bounded dimensions only (docs/dashboard.md). The CloudWatch dashboard and the
per-trigger anomaly alarms read exactly these names and dimensions
(tests/infra/test_infra_monitoring.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest
from nudge.constants import DELIVERIES, METRICS_NAMESPACE, SERVICE, TRIGGER_FIRED
from nudge.domain.messages import timers_messages
from nudge.domain.ports import StoredProfile
from nudge.domain.triggers.engine import Engine
from nudge.local.lambdas import Function
from nudge.observability import count_by

from tests.fakes import NOW, SHOE, FakeDelivery, a_profile, an_action
from tests.unit import test_deliver_handler_unit as deliver_unit
from tests.unit import test_process_handler_unit as process_unit


def emf_records(out: str, name: str) -> list[dict[str, Any]]:
    """The EMF records of metric `name` printed on stdout."""
    found = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        directives = record.get("_aws", {}).get("CloudWatchMetrics", [])
        if any(m["Name"] == name for d in directives for m in d["Metrics"]):
            found.append(record)
    return found


def dims_and_value(record: dict[str, Any], name: str) -> tuple[dict[str, str], float]:
    [directive] = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    [dimension_set] = directive["Dimensions"]
    value = record[name]  # Powertools writes a list of values
    return {d: record[d] for d in dimension_set}, sum(value) if isinstance(value, list) else value


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def test_one_record_per_value_with_the_service_dimension(
    metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    count_by(TRIGGER_FIRED, ("trigger_id",), {("b",): 2, ("a",): 1, ("c",): 0})
    records = emf_records(capsys.readouterr().out, TRIGGER_FIRED)
    assert [dims_and_value(r, TRIGGER_FIRED) for r in records] == [
        ({"service": SERVICE, "trigger_id": "a"}, 1),
        ({"service": SERVICE, "trigger_id": "b"}, 2),
    ]  # a zero is not sent: the dashboard fills gaps with 0


def test_nothing_is_printed_where_metrics_are_disabled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    count_by(TRIGGER_FIRED, ("trigger_id",), {("a",): 1})
    assert capsys.readouterr().out == ""


def test_the_process_function_counts_fires_per_trigger(
    metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    module: ModuleType = Function.load_module("process")
    engine = Engine(process_unit.load_triggers(process_unit.ROOT / "triggers"))
    run = process_unit.Run(module, engine)
    run.track("u1", "Product Added", "e1", **SHOE)
    run.track("u2", "Product Added", "e2", **SHOE)
    run()
    [bucket] = {b for b, *_ in run.wakeups.armed()}
    capsys.readouterr()
    run.queue.send_timers(timers_messages(bucket, run.wakeups.due(bucket)))
    run(at=NOW + timedelta(minutes=16))

    records = emf_records(capsys.readouterr().out, TRIGGER_FIRED)
    assert [dims_and_value(r, TRIGGER_FIRED) for r in records] == [
        ({"service": SERVICE, "trigger_id": "cart_abandonment"}, 2)
    ]


def test_the_deliver_function_counts_deliveries_per_channel_and_status(
    metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    module: ModuleType = Function.load_module("deliver")
    fx = FakeDelivery()
    fx.profiles.save(StoredProfile(a_profile("u1"), None))
    fx.profiles.save(StoredProfile(a_profile("u2", email="bo@example.com"), None))
    run = deliver_unit.Run(module, fx)
    assert run([an_action("u1"), an_action("u2")]) == []

    records = emf_records(capsys.readouterr().out, DELIVERIES)
    assert [dims_and_value(r, DELIVERIES) for r in records] == [
        ({"service": SERVICE, "channel": "email", "status": "sent"}, 2)
    ]
