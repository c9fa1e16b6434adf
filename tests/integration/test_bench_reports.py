"""`python -m nudge.bench_reports` in a tiny configuration: the synthetic archive goes
through moto's S3 and the DuckDB engine, every report is timed, and the experiment
report's counts equal an independent reading of the generated lines."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from nudge.bench_reports import EXPERIMENT, Archive, generate, run


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _expected(archive: Archive) -> dict[str, list[int]]:
    """Users and conversions per variant, from the lines: each message once (the first
    received), each user in the variant of their first exposure, converted by an order
    in (exposure, exposure + window]."""
    kept: dict[str, dict[str, Any]] = {}
    for lines in archive.hours.values():
        for line in lines:
            row = json.loads(line)
            known = kept.get(row["message_id"])
            if known is None or row["received_at"] < known["received_at"]:
                kept[row["message_id"]] = row
    exposures: dict[str, tuple[datetime, str, str]] = {}
    orders: dict[str, list[datetime]] = {}
    for row in kept.values():
        at = _time(row["timestamp"])
        if row["event"] == "Experiment Viewed":
            first = (at, row["message_id"], row["properties"]["variation_id"])
            exposures[row["user_id"]] = min(exposures.get(row["user_id"], first), first)
        elif row["event"] == "Order Completed":
            orders.setdefault(row["user_id"], []).append(at)
    window = timedelta(seconds=EXPERIMENT.goal.within)
    out = {v.name: [0, 0] for v in EXPERIMENT.variants}
    for user, (at, _, variant) in exposures.items():
        out[variant][0] += 1
        out[variant][1] += any(at < t <= at + window for t in orders.get(user, []))
    return out


def test_the_bench_times_each_report_and_counts_the_experiment_as_the_lines_say() -> None:
    # given a small shop's history (its lines, some twice, one S3 object per hour)
    archive = generate(events=3_000, users=150, days=30, seed=3)
    assert 1_500 < archive.events < 4_500 and archive.exposures > 0
    assert sum(len(lines) for lines in archive.hours.values()) >= archive.events

    # when the bench runs once
    result = run(archive, runs=1)

    # then every report was timed
    assert set(result["reports"]) == {
        "count(*) of events",
        "experiment report",
        "cohorts by week",
        "3-step funnel, 7 days",
        "3-step funnel by variant",
    }
    assert all(0 < r["fastest_s"] <= r["median_s"] for r in result["reports"].values())
    assert result["objects"] == len(archive.hours)
    # and the experiment report read the archive as the lines say
    assert result["experiment"] == _expected(archive)
    assert sum(users for users, _ in result["experiment"].values()) > 0
