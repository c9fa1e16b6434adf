"""`nudge triggers backtest --events FILE.jsonl`: when an event of a file happened
(`timestamp`, else as Segment dates a call), what happens to the events that have no time
(skipped, counted; none left is exit status 2 with one line), the table and the JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nudge import cli
from nudge.cli_triggers import _event_time

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "events.jsonl"
TRIGGERS = ["--triggers", str(ROOT / "triggers"), "--config", str(ROOT / "config")]


def sample(change: Any = None) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    return [change(dict(e)) if change else e for e in events]


def write(tmp_path: Path, events: list[dict[str, Any]], name: str = "events.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def backtest(path: Path, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["triggers", "backtest", "--events", str(path), *TRIGGERS, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fires(report: dict[str, Any]) -> dict[str, int]:
    return {t["trigger_id"]: t["fires"] for t in report["triggers"]}


def renamed(old: str, new: str) -> Any:
    def change(e: dict[str, Any]) -> dict[str, Any]:
        e[new] = e.pop(old)
        return e

    return change


# ---- when an event happened ---------------------------------------------------------------
T = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp": iso(T), "receivedAt": iso(T + timedelta(hours=1))}, T),
        ({"originalTimestamp": iso(T)}, T),
        # the client's clock 10 minutes slow: received 10:00, sent by its clock at 9:50
        (
            {
                "originalTimestamp": iso(T),
                "sentAt": iso(T + timedelta(minutes=50)),
                "receivedAt": iso(T + timedelta(hours=1)),
            },
            T + timedelta(minutes=10),
        ),
        ({"receivedAt": iso(T), "sentAt": iso(T - timedelta(seconds=3))}, T),
        ({"sentAt": iso(T)}, T),
        ({"timestamp": "2026-11-16T09:00:00"}, T),  # no zone: UTC
        ({}, None),
    ],
)
def test_an_event_happened_when_segment_would_date_it(
    fields: dict[str, str], expected: datetime | None
) -> None:
    assert _event_time({"type": "track", **fields}) == expected


def test_events_dated_by_received_at_fire_as_with_their_timestamp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = backtest(SAMPLE, "--json", capsys=capsys)
    assert code == 0
    as_stamped = json.loads(out)
    path = write(tmp_path, sample(renamed("timestamp", "receivedAt")))
    code, out, err = backtest(path, "--json", capsys=capsys)
    assert code == 0, err
    assert err == ""
    as_received = json.loads(out)
    assert as_received["events"] == as_stamped["events"] == len(sample())
    assert fires(as_received) == fires(as_stamped)
    assert all(n > 0 for n in fires(as_received).values())


# ---- events without a time ------------------------------------------------------------------
def test_a_file_of_events_without_a_time_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def untimed(e: dict[str, Any]) -> dict[str, Any]:
        del e["timestamp"]
        return e

    path = write(tmp_path, sample(untimed))
    code, out, err = backtest(path, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"error: {path}: no event to replay, all {len(sample())} lines skipped")
    assert "none of timestamp, originalTimestamp, receivedAt, sentAt" in err
    assert f"the first: {path}:1" in err


def test_events_without_a_time_are_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = sample()
    for i in (0, 10, 20):
        del events[i]["timestamp"]
    path = write(tmp_path, events)
    code, out, err = backtest(path, "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out)["events"] == len(events) - 3
    lines = err.splitlines()
    assert lines[:3] == [
        f"{path}:{n}: skipped: no time: none of timestamp, originalTimestamp, receivedAt, sentAt"
        for n in (1, 11, 21)
    ]
    assert lines[3].startswith(f"{path}: 3 lines skipped (3 no time: ")
    assert lines[3].endswith(f"{len(events) - 3} events replayed")


def test_an_empty_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    code, _, err = backtest(path, capsys=capsys)
    assert (code, err) == (2, f"error: {path}: no events\n")


def test_a_missing_file_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = backtest(tmp_path / "nope.jsonl", capsys=capsys)
    assert code == 2
    assert err == f"error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give one of --events FILE.jsonl and --archive"),
        (["--events", "x.jsonl", "--archive"], "give one of --events FILE.jsonl and --archive"),
        (["--events", "x.jsonl", "--since", "7d"], "--url, --stack and --since go with --archive"),
        (["--archive", "--url", "http://x", "--stack", "S"], "give --url or --stack, not both"),
    ],
)
def test_the_source_options_exclude_each_other(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["triggers", "backtest", *argv]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


# ---- output ---------------------------------------------------------------------------------
def test_the_table_has_a_row_per_trigger_split_by_whitespace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = backtest(SAMPLE, capsys=capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"{len(sample())} events, ")
    header = lines[2].split()
    assert header[:4] == ["trigger", "users", "episodes", "fires"]
    rows = {line.split()[0]: line.split() for line in lines[4:] if line.strip()}
    code, out, _ = backtest(SAMPLE, "--json", capsys=capsys)
    for trigger_id, n in fires(json.loads(out)).items():
        assert int(rows[trigger_id][3]) == n
