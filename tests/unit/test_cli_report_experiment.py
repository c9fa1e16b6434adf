"""`nudge report experiment`'s table of the sequential test, the metrics (Holm) and CUPED,
printed from a report built as the api builds it."""

from __future__ import annotations

import pytest
from nudge.cli_report import print_experiment
from nudge.domain.experiment_report import METRICS, DayAggregate, VariantAggregate, build_report
from nudge.domain.report_stats import Moments


def _arm(name: str, weight: float, holdout: bool, n: int, scale: float) -> VariantAggregate:
    # three days of n users; per user Y and X correlated (X = Y / scale + noise, in sums)
    daily = []
    for d in range(3):
        conversions = int(n * 0.08 * scale) + d
        moments = {
            "conversion": Moments(n, conversions, conversions, 2.0 * n, 6.0 * n, 1.5 * conversions),
            "revenue": Moments(n, 9.0 * n * scale, 900.0 * n, 20.0 * n, 1600.0 * n, 800.0 * n),
            "engagement": Moments(
                n, 4.0 * n * scale, 30.0 * n * scale**2, 30.0 * n, 1000.0 * n, 130.0 * n * scale
            ),
        }
        daily.append(DayAggregate(f"2026-03-0{d + 1}", moments))
    users = 3 * n
    return VariantAggregate(name, weight, holdout, users, sum(int(x["conversion"].sum_y) for x in (m.moments for m in daily)), tuple(daily))  # fmt: skip


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str]) -> tuple[dict, list[str]]:
    report = build_report(
        "cart_abandonment_holdout",
        {"event": "Order Completed", "within_seconds": 72 * 3600},
        [_arm("holdout", 0.1, True, 300, 1.0), _arm("reminder", 0.9, False, 2700, 1.8)],
        minimum_detectable_effect=0.02,
    )
    print_experiment(report)
    return report, capsys.readouterr().out.splitlines()


def test_the_variant_row_shows_the_sequential_p_value_and_verdict(printed) -> None:
    report, lines = printed
    header = next(line for line in lines if line.split()[:2] == ["variant", "users"])
    assert header.split()[-4:] == ["p", "seq.", "p", "verdict"]
    reminder = next(line for line in lines if line.startswith("reminder"))
    seq = report["variants"][1]["sequential"]
    assert reminder.split()[-1] == seq["verdict"] == "variant_better"
    assert reminder.split()[-2] == f"{seq['p_value']:.4g}"
    holdout = next(line for line in lines if line.startswith("holdout"))
    assert holdout.split()[-2:] == ["-", "-"]


def test_each_metric_has_its_holm_p_value_and_verdict_and_a_cuped_line(printed) -> None:
    report, lines = printed
    for metric in METRICS:
        row = report["metrics"][metric]["variants"][1]
        line = next(line for line in lines if line.startswith(f"{metric} ") and "reminder" in line)
        cells = line.split()
        assert cells[-1] == row["sequential"]["verdict"]
        assert cells[-2] == f"{row['sequential']['p_value']:.4g}"
        assert cells[-3] == f"{row['p_value_holm']:.4g}"
        cuped = next(
            line for line in lines if line.startswith(f"{metric} ") and line.endswith(f"x{row['cuped']['variance_ratio']:.2f}")
        )  # fmt: skip
        assert "reminder" in cuped
    conversion = next(line for line in lines if line.startswith("conversion "))
    assert "pts" in conversion  # rates differ in percentage points
    assert any("28 days before exposure" in line for line in lines)


def test_an_old_report_without_metrics_prints_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    report = build_report(
        "e",
        {"event": "Order Completed", "within_seconds": 3600},
        [
            VariantAggregate("holdout", 1, True, 100, 5),
            VariantAggregate("reminder", 1, False, 100, 9),
        ],
        minimum_detectable_effect=0.02,
    )
    for metric in METRICS:
        report["metrics"].pop(metric, None)
    for v in report["variants"]:
        v.pop("sequential")
    print_experiment(report)
    out = capsys.readouterr().out
    assert "reminder" in out and "CUPED" not in out and "Holm" not in out
