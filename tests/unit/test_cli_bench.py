"""`nudge bench`: progress on stderr from its first phase (a line per phase in a log, a
rich display on a terminal), the report on stdout as tables, or with --json one JSON
object and nothing else. The measuring is replaced by a fake run that reports phases as
the real one does (the real run is tests/integration/test_bench.py's)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from nudge import bench, cli


def fake_report() -> dict[str, Any]:
    """A report with every figure the tables read, from the tables' own key paths."""

    def nested(paths: list[tuple[str, ...]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in paths:
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = 1.5
        return out

    workload = nested([path for _, path in bench.TABLE_ROWS])
    workload["aws"]["cost"]["event_path"] = {"lambda_requests": 0.1, "sqs_fifo": 0.67}
    latency = {"p50": 12.0, "p99": 40.0, "max": 51.0}
    return {
        "summary": dict.fromkeys(bench.SUMMARY_KEYS, 2.5),
        "machine": {"cpus_usable": 2, "python": "3.11.7", "machine": "x86_64"},
        "elapsed_s": 1.0,
        "workloads": {name: workload for name in ("sparse", "dense", "heavy")},
        "local": {
            "events": 100,
            "users": 5,
            "client": "segment-analytics-python",
            "accepted_events_per_second": 300.0,
            "end_to_end_events_per_second": 90.0,
            "inapp_latency_ms": latency,
            "inapp_latency_unloaded_ms": latency,
            "inapp_messages_verified_via_api": 3,
            "inapp_messages_expected": 3,
        },
        "anchors": {"workload": "sparse", "json_loads_us_per_event": 2.6},
    }


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[bench.BenchConfig]:
    """bench.run replaced: phases as the real run reports them, and a handler's log line
    on stdout (which must not reach the report's stdout)."""
    configs: list[bench.BenchConfig] = []

    def run(cfg: bench.BenchConfig, *, progress: bench.Progress) -> dict[str, Any]:
        configs.append(cfg)
        progress.note("core sparse: 1,000 events, 2 rounds")
        print('{"level": "INFO", "message": "a handler logs to stdout"}')
        with progress.task("aws sparse", 10) as advance:
            for _ in range(10):
                advance(1)
        progress.note("aws sparse: the clock runs 3 days on (timers fire)")
        return fake_report()

    monkeypatch.setattr(bench, "run", run)
    return configs


def test_quick_reports_progress_on_stderr_and_one_json_object_on_stdout(
    runs: list[bench.BenchConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--quick", "--json"]) == 0
    captured = capsys.readouterr()
    assert runs == [bench.QUICK]
    assert json.loads(captured.out) == fake_report()
    assert captured.out.count("\n") == 1
    phases = [line.split("] ", 1)[1] for line in captured.err.splitlines() if "] " in line]
    assert phases[0] == "core sparse: 1,000 events, 2 rounds"
    assert "aws sparse ..." in phases and "aws sparse: 10/10" in phases
    assert phases[-1] == "aws sparse: the clock runs 3 days on (timers fire)"
    assert "a handler logs to stdout" in captured.err


def test_without_json_the_report_is_tables(
    runs: list[bench.BenchConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--events", "300", "--users", "30", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert (runs[0].events, runs[0].sparse_users, runs[0].core_rounds) == (300, 30, 1)
    for text in (*bench.SUMMARY_KEYS, "per workload", "sparse", "heavy", "p99 40.0"):
        assert text in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_on_a_terminal_the_phases_are_one_rich_display() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = bench.Progress(screen)
    progress.note("core sparse: 1,000 events")
    with progress.task("aws sparse", 4) as advance:
        advance(4)
    progress.note("local end to end: waiting for the queues to drain")
    progress.close()
    shown = screen.getvalue()
    assert "core sparse" in shown and "aws sparse" in shown and "4/4" in shown
    assert "waiting for the queues to drain" in shown
