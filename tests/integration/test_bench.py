"""`nudge bench` in a tiny configuration: the report's shape, its counts agreeing with
each other, and the DynamoDB item sizing the write and read units rest on."""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

import pytest
from nudge import bench

# ---- DynamoDB item sizes, by the developer guide's rules ("DynamoDB item sizes and formats")


def test_item_size_counts_attribute_names_and_utf8_values() -> None:
    # given strings (name + UTF-8 bytes) and a number (1 byte per 2 significant digits + 1)
    item = {
        "itemType": {"S": "SLOT"},  # 8 + 4
        "id": {"S": "abc1231"},  # 2 + 7
        "hostName": {"S": "Harry Mason"},  # 8 + 11
        "timeSlot": {"S": "February 23, 1999"},  # 8 + 17
        "slotStatus": {"S": "OPEN"},  # 10 + 4
        "createdAt": {"S": "February 1, 1999"},  # 9 + 16
        "updatedAt": {"S": "February 1, 1999"},  # 9 + 16
        "expiresAt": {"N": "2099"},  # 9 + (2 + 1)
    }
    # then
    assert bench.item_size(item) == 141
    assert bench.item_size({"name": {"S": "café"}}) == 4 + 5  # é is 2 bytes in UTF-8


def test_item_size_of_nested_lists_maps_and_scalars() -> None:
    item = {
        "id": {"S": "a"},  # 2 + 1 = 3
        # 1 + map(3 + [x: 1 name + 2 value + 1] + [tags: 4 name + list + 1])
        # list = 3 + (1 + 2 "ab") + (1 + 1 BOOL) = 8  ->  map = 3 + 4 + 13 = 20
        "m": {"M": {"x": {"N": "1"}, "tags": {"L": [{"S": "ab"}, {"BOOL": True}]}}},
        "n": {"NULL": True},  # 1 + 1
        "b": {"B": b"\x00\x01\x02"},  # 1 + 3 raw bytes (not the base64 text)
        "e": {"L": []},  # 1 + 3
    }
    assert bench.item_size(item) == 3 + 21 + 2 + 4 + 4


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("7", 2),
        ("1200", 2),  # trailing zeroes trimmed: "12"
        ("-0.00500", 2),  # leading and trailing zeroes trimmed: "5"
        ("12345", 4),  # 5 significant digits: 3 bytes + 1
        ("100.5", 3),  # "1005"
    ],
)
def test_number_sizes_trim_leading_and_trailing_zeroes(number: str, size: int) -> None:
    assert bench.attribute_value_size({"N": number}) == size


def test_units_round_up_per_item() -> None:
    assert [bench.write_units(s) for s in (0, 1, 1024, 1025, 40_000)] == [1, 1, 1, 2, 40]
    assert bench.read_units(4096, consistent=True) == 1
    assert bench.read_units(4097, consistent=True) == 2
    assert bench.read_units(4097, consistent=False) == 1  # eventually consistent: half
    assert bench.read_units(0, consistent=False) == 0.5  # no item found still costs


def test_lambda_memory_is_read_from_the_constructs() -> None:
    memory = bench.lambda_memory_mb()
    assert memory["ingest"] == 256
    assert {"process", "check", "deliver"} <= set(memory)


# ---- the run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench.main(json_output=True, config=bench.TINY) == 0
    text = out.getvalue()
    assert text.count("\n") == 1, "stdout holds the JSON object alone"
    result: dict[str, Any] = json.loads(text)
    return result


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def test_summary_holds_every_key_as_a_number(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert set(summary) == set(bench.SUMMARY_KEYS)
    assert all(_number(v) for v in summary.values()), summary
    assert summary["write_units_per_event"] > 0
    assert summary["read_units_per_event"] > 0
    assert summary["heavy_user_item_bytes"] > 1000
    assert set(report["definitions"]) == set(bench.SUMMARY_KEYS)
    assert report["machine"]["cpu_count"] >= 1
    assert report["anchors"]["json_loads_us_per_event"] > 0


def test_units_and_requests_agree_with_the_calls_made(report: dict[str, Any]) -> None:
    for name, w in report["workloads"].items():
        path = w["aws"]["event_path_per_event"]
        calls: dict[str, float] = {}
        for ops in path["by_payer"].values():
            for op, per_event in ops.items():
                calls[op] = calls.get(op, 0.0) + per_event
        puts = calls.get("dynamodb:PutItem", 0.0)
        assert puts > 0, name
        # every write is at least one unit per item; every read at least half a unit
        assert path["dynamodb_write_units"] >= puts + calls.get("dynamodb:BatchWriteItem", 0), name
        reads = sum(calls.get(f"dynamodb:{op}", 0.0) for op in ("GetItem", "BatchGetItem", "Query"))
        assert path["dynamodb_read_units"] >= reads / 2, name
        sqs_calls = sum(v for op, v in calls.items() if op.startswith("sqs:"))
        assert path["sqs_billed_requests"] >= sqs_calls - 1e-9, name
        # the event source mapping: one receive and one delete per batch handed to process
        esm = path["by_payer"]["esm:events"]
        assert esm["sqs:ReceiveMessage"] == esm["sqs:DeleteMessageBatch"]
        assert esm["sqs:ReceiveMessage"] == w["aws"]["lambda"]["process"]["invocations_per_event"]
        # timers are index writes: no Scheduler call, no Scheduler bill per event (D49)
        assert not any(op.startswith("scheduler:") for op in calls), name
        assert path["scheduler_api_calls"] == path["scheduler_invocations"] == 0, name
        assert w["aws"]["timers"]["wake_ups_fired"] > 0, name
        assert path["firehose_records"] > 0, "the batch's events are archived"
        cost = w["aws"]["cost"]
        assert cost["usd_per_million_events"] == pytest.approx(
            sum(cost["event_path"].values()), abs=0.01
        )
        assert cost["event_path"]["dynamodb_writes"] == pytest.approx(
            path["dynamodb_write_units"] * 0.625, rel=0.01
        )


def test_the_wake_up_sweep_is_a_fixed_monthly_cost(report: dict[str, Any]) -> None:
    """43,200 minutes a month, whatever the traffic: Scheduler, Lambda requests and
    duration, one read unit each; the same for every workload but the duration."""
    check = report["workloads"]["sparse"]["aws"]["lambda"]["check"]
    month = bench.sweep_cost_per_month(check)
    assert month["scheduler"] == pytest.approx(43_200 * 1.00 / 1e6)
    assert month["lambda_requests"] == pytest.approx(43_200 * 0.20 / 1e6)
    assert month["dynamodb_reads"] == pytest.approx(43_200 * 0.125 / 1e6)
    ms = -(-check["duration_ms_p50"] // 1)  # billed by the ms, rounded up
    gb = check["memory_mb"] / 1024
    assert month["lambda_duration"] == pytest.approx(43_200 * ms / 1000 * gb * 0.0000133334)
    cost = report["workloads"]["sparse"]["aws"]["cost"]
    assert cost["fixed_usd_per_month"] == pytest.approx(sum(month.values()), abs=1e-4)
    assert report["summary"]["fixed_usd_per_month"] == cost["fixed_usd_per_month"]
    assert 0.05 < cost["fixed_usd_per_month"] < 0.2
    # and it is not in the per-event figures
    assert cost["event_path"]["scheduler"] == 0


def test_core_is_measured_against_json_loads_in_the_same_run(report: dict[str, Any]) -> None:
    for w in report["workloads"].values():
        for mode in ("one_event_per_call", "sqs_batches_of_10"):
            core = w["core"][mode]
            steps = core["parse_us"] + core["apply_us"] + core["engine_us"] + core["serialize_us"]
            assert core["total_us"] >= steps * 0.95
            assert core["ratio_to_json_loads"] == pytest.approx(
                core["total_us"] / core["json_loads_us"], rel=0.02
            )
    sparse = report["workloads"]["sparse"]["core"]["one_event_per_call"]
    assert report["summary"]["core_ratio_to_json_loads"] == sparse["ratio_to_json_loads"]


def test_every_default_trigger_fires_in_the_sparse_workload(report: dict[str, Any]) -> None:
    fired = report["workloads"]["sparse"]["aws"]["actions"]["by_trigger"]
    assert set(fired) == {
        "cart_abandonment",
        "inactivity_winback",
        "repeat_product_view",
        "product_dwell_upsell",
    }


def test_local_mode_end_to_end_delivers_every_inapp_message(report: dict[str, Any]) -> None:
    local = report["local"]
    assert local["inapp_messages_expected"] > 0
    assert local["inapp_messages_verified_via_api"] == local["inapp_messages_expected"]
    assert local["inapp_latency_ms"]["samples"] == local["inapp_messages_expected"]
    assert local["inapp_latency_ms"]["p50"] <= local["inapp_latency_ms"]["p99"]
    assert local["inapp_latency_unloaded_ms"]["samples"] == bench.TINY.latency_samples
    assert not local["sdk_errors"]


def test_the_table_names_every_summary_figure(report: dict[str, Any]) -> None:
    table = bench.render_table(report)
    assert all(key in table for key in bench.SUMMARY_KEYS)
