"""The tracking plan (nudge.domain.tracking): loading with errors that name the file and
place, violations per JSON Schema keyword, report and block modes at ingest, the
`Violation Generated` events and the report's SQL on DuckDB (and transpiled for Athena)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from nudge.domain.archive import EVENTS_VIEW_SQL, ArchiveRecord
from nudge.domain.errors import ValidationFailedError
from nudge.domain.events import normalize_event
from nudge.domain.ingest import parse_request
from nudge.domain.tracking import (
    VIOLATION_GENERATED,
    TrackingPlan,
    TrackingPlanError,
    load_plan,
    plan_from_document,
    violation_events,
    violations_report,
    violations_sql,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

PLAN = {
    "mode": "report",
    "unplanned": "report",
    "events": {
        "Order Completed": {
            "mode": "block",
            "properties": {
                "type": "object",
                "required": ["order_id", "revenue"],
                "properties": {"revenue": {"type": "number", "minimum": 0}},
            },
        },
        "Product Viewed": {
            "properties": {
                "type": "object",
                "required": ["product_id"],
                "properties": {"price": {"type": "number"}},
            }
        },
        "Page Viewed": {},
    },
    "identify": {"traits": {"type": "object", "properties": {"email": {"format": "email"}}}},
}


def plan(**overrides: Any) -> TrackingPlan:
    return plan_from_document({**PLAN, **overrides})


def track(event: str, message_id: str = "m1", **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "u1",
        "event": event,
        "messageId": message_id,
        "properties": props,
        "timestamp": "2026-11-20T11:59:00Z",
    }


def event_of(raw: dict[str, Any]) -> Any:
    return normalize_event(raw, kind=None, received_at=NOW)


# ---- violations -----------------------------------------------------------------------------


def test_each_broken_rule_is_one_violation_with_its_keyword_and_field() -> None:
    found = plan().check(event_of(track("Product Viewed", price="12")))
    assert [(v.rule, v.field) for v in found] == [
        ("required", "properties.product_id"),
        ("type", "properties.price"),
    ]
    assert found[1].value == "12"


def test_two_missing_properties_are_two_violations_each_naming_its_field() -> None:
    found = plan().check(event_of(track("Order Completed")))
    assert sorted(v.field for v in found) == ["properties.order_id", "properties.revenue"]


def test_a_conforming_event_and_a_planned_event_without_schema_have_no_violation() -> None:
    assert plan().check(event_of(track("Product Viewed", product_id="p1", price=3.5))) == []
    page = normalize_event(
        {"type": "page", "userId": "u1", "name": "Home"}, kind=None, received_at=NOW
    )
    assert plan().check(page) == []


def test_unplanned_events_follow_the_plans_unplanned_setting() -> None:
    ev = event_of(track("Coupon Applied"))
    assert [v.rule for v in plan().check(ev)] == ["unplanned"]
    assert plan(unplanned="allow").check(ev) == []
    blocking = plan(unplanned="block")
    assert blocking.blocks(ev, blocking.check(ev))


def test_identify_traits_are_checked_against_the_identify_section() -> None:
    ev = normalize_event(
        {"type": "identify", "userId": "u1", "traits": {"email": "not-an-address"}},
        kind=None,
        received_at=NOW,
    )
    assert [(v.event, v.rule, v.field) for v in plan().check(ev)] == [
        ("identify", "format", "traits.email")
    ]


# ---- modes at ingest ------------------------------------------------------------------------


def test_a_batch_accepts_reported_events_refuses_blocked_ones_and_keeps_every_violation() -> None:
    payload = {
        "batch": [
            track("Product Viewed", "a"),  # report: accepted with its violation
            track("Order Completed", "b", revenue=-5),  # block: refused
            track("Order Completed", "c", order_id="o1", revenue=10),  # fine
        ]
    }
    result = parse_request("batch", payload, received_at=NOW, plan=plan())
    assert [e.message_id for e in result.accepted] == ["a", "c"]
    assert [r.index for r in result.rejected] == [1]
    assert "properties.order_id" in result.rejected[0].message
    assert "(minimum)" in result.rejected[0].message
    blocked = {v.properties["eventMessageID"]: v.properties["blocked"] for v in result.violations}
    assert blocked == {"a": False, "b": True}
    assert len(result.violations) == 3  # a: required; b: required + minimum


def test_a_blocked_single_event_is_a_400_that_names_the_rule() -> None:
    with pytest.raises(ValidationFailedError) as err:
        parse_request(
            "track", track("Order Completed", revenue="ten"), received_at=NOW, plan=plan()
        )
    assert err.value.details[0]["index"] == 0
    assert "properties.revenue" in err.value.details[0]["message"]


def test_without_a_plan_nothing_is_checked() -> None:
    result = parse_request("track", track("Order Completed"), received_at=NOW, plan=None)
    assert len(result.accepted) == 1 and result.violations == []


def test_violation_events_follow_segments_names_and_keep_ids_stable_across_retries() -> None:
    ev = event_of(track("Product Viewed", "m9"))
    first = violation_events(ev, plan().check(ev), blocked=False, received_at=NOW)
    again = violation_events(ev, plan().check(ev), blocked=False, received_at=NOW)
    assert [v.message_id for v in first] == [v.message_id for v in again]
    (v,) = first
    assert v.event == VIOLATION_GENERATED and v.user_id is None  # no activity of u1
    assert v.properties["eventUserId"] == "u1"
    assert v.properties["eventName"] == "Product Viewed"
    assert v.properties["violationType"] == "required"
    assert v.properties["violationField"] == "properties.product_id"


# ---- loading --------------------------------------------------------------------------------


def test_the_shipped_plan_loads_and_reports_without_blocking() -> None:
    shipped = load_plan(ROOT / "tracking-plan")
    assert shipped is not None and shipped.mode == "report"
    ev = event_of(track("Product Added", price=-1))
    found = shipped.check(ev)
    assert {v.rule for v in found} == {"required", "minimum"}
    assert not shipped.blocks(ev, found)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"mode": "strict"}, "mode: must be one of report, block"),
        ({"events": {"A": {"properties": {"type": "objekt"}}}}, "events.A.properties"),
        ({"events": {"A": {"colour": 1}}}, "unknown keys colour"),
        ({"events": ["A"]}, "events must map"),
    ],
)
def test_a_bad_plan_is_refused_with_where_and_why(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(TrackingPlanError, match=message):
        plan_from_document(doc)


def test_files_of_a_folder_merge_and_an_event_planned_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("events:\n  A: {}\n")
    (tmp_path / "b.yaml").write_text("events:\n  B: {}\n")
    merged = load_plan(tmp_path)
    assert merged is not None and set(merged.events) == {"A", "B"}
    (tmp_path / "c.yaml").write_text("events:\n  A: {}\n")
    with pytest.raises(TrackingPlanError, match=r"c\.yaml: event 'A' is planned in two files"):
        load_plan(tmp_path)


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text("events:\n  A: {\n  B: [\n")
    with pytest.raises(TrackingPlanError, match=r"plan.yaml:\d+: not valid YAML"):
        load_plan(tmp_path)


def test_no_folder_means_no_plan(tmp_path: Path) -> None:
    assert load_plan(tmp_path / "missing") is None


# ---- the report -----------------------------------------------------------------------------


def _archive(rows: list[bytes]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE archive_raw (v INTEGER, message_id VARCHAR, type VARCHAR, event VARCHAR,"
        " user_id VARCHAR, anonymous_id VARCHAR, timestamp VARCHAR, received_at VARCHAR,"
        " properties JSON, traits JSON, context JSON, historical BOOLEAN,"
        " previous_id VARCHAR, group_id VARCHAR)"
    )
    for line in rows:
        r = json.loads(line)
        con.execute(
            "INSERT INTO archive_raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r["v"],
                r["message_id"],
                r["type"],
                r["event"],
                r["user_id"],
                r["anonymous_id"],
                r["timestamp"],
                r["received_at"],
                json.dumps(r["properties"]),
                json.dumps(r["traits"]),
                json.dumps(r["context"]),
                r["historical"],
                r["previous_id"],
                r["group_id"],
            ],
        )
    con.execute(f"CREATE VIEW events AS {EVENTS_VIEW_SQL}")
    return con


def test_the_report_counts_per_event_and_rule_once_per_message_with_the_latest_sample() -> None:
    p = plan()
    lines: list[bytes] = []
    for i in range(3):  # three events missing product_id, one also with a bad price
        raw = track("Product Viewed", f"pv{i}", **({"price": "x"} if i == 2 else {}))
        raw["timestamp"] = (NOW - timedelta(hours=3 - i)).isoformat()
        ev = event_of(raw)
        for v in violation_events(ev, p.check(ev), blocked=False, received_at=NOW):
            lines.append(ArchiveRecord.of(v, None).line())
    blocked = event_of(track("Order Completed", "oc1", order_id="o", revenue=-1))
    for v in violation_events(blocked, p.check(blocked), blocked=True, received_at=NOW):
        lines.append(ArchiveRecord.of(v, None).line())
    old = event_of({**track("Product Viewed", "old"), "timestamp": "2026-10-01T00:00:00Z"})
    for v in violation_events(old, p.check(old), blocked=False, received_at=NOW):
        lines.append(ArchiveRecord.of(v, None).line())
    con = _archive([*lines, lines[0]])  # an archived twice record counts once
    rows = con.execute(violations_sql(NOW - timedelta(days=7))).fetchall()
    report = violations_report(rows, days=7)
    got = {(r["event"], r["rule"], r["field"]): r for r in report["violations"]}
    assert set(got) == {
        ("Product Viewed", "required", "properties.product_id"),
        ("Product Viewed", "type", "properties.price"),
        ("Order Completed", "minimum", "properties.revenue"),
    }
    missing = got[("Product Viewed", "required", "properties.product_id")]
    assert (missing["violations"], missing["events"], missing["blocked"]) == (3, 3, 0)
    assert missing["sample"]["message_id"] == "pv2"  # the latest
    assert missing["last_seen"] == "2026-11-20T11:00:00.000Z"  # UTC, as every nudge time
    assert got[("Order Completed", "minimum", "properties.revenue")]["blocked"] == 1
    assert report["violations"][0] == missing  # most violated first


def test_the_report_sql_transpiles_for_athena() -> None:
    sql = violations_sql(NOW - timedelta(days=7))
    (athena,) = sqlglot.transpile(sql, read="duckdb", write="athena")
    assert "MAX_BY" in athena.upper()
    sqlglot.parse_one(athena, read="athena")


# ---- nudge tracking validate ----------------------------------------------------------------


def test_nudge_tracking_validate_passes_the_shipped_plan_and_fails_a_broken_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nudge.cli import main

    assert main(["tracking", "validate", str(ROOT / "tracking-plan")]) == 0
    assert "mode report" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("events:\n  A: {properties: {type: objekt}}\n")
    assert main(["tracking", "validate", str(tmp_path)]) == 1
    assert "bad.yaml: events.A.properties" in capsys.readouterr().err
