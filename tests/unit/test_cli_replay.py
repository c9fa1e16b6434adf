"""`nudge replay`: a user's mistake (no file, a bad line, no key, no server) is one line
and exit status 2; against a server (a fake /v1/batch here) it sends in batches, prints a
summary or one JSON object, reports rejections, and shows a progress bar on a terminal."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nudge import cli, cli_output
from rich.console import Console


class FakeIngest(BaseHTTPRequestHandler):
    """/v1/batch and /v1/import: events without userId are rejected by index."""

    batches: list[list[dict[str, Any]]]
    status = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.batches.append(body["batch"])
        if self.status != 200:
            self._answer(self.status, {"error": "x", "message": "no", "details": []})
            return
        details = [
            {"index": i, "message": "userId or anonymousId is required"}
            for i, e in enumerate(body["batch"])
            if "userId" not in e
        ]
        self._answer(200, {"success": True, **({"details": details} if details else {})})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[FakeIngest]]]:
    handler = type("Handler", (FakeIngest,), {"batches": [], "status": 200})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def events_file(tmp_path: Path, n: int, *, without_user: int = 0) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [{"type": "track", "userId": f"u{i % 7}", "event": "A"} for i in range(n)]
    lines += [{"type": "track", "event": "A"} for _ in range(without_user)]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    return path


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- the user's mistakes ------------------------------------------------------------------
def test_a_missing_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run("replay", str(tmp_path / "nope.jsonl"), "--write-key", "k", capsys=capsys)
    assert (code, out) == (2, "")
    assert err == f"error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory\n"


def test_a_stopped_server_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    path = events_file(tmp_path, 3)
    code, out, err = run("replay", str(path), "--url", url, "--write-key", "k", capsys=capsys)
    assert (code, out) == (2, "")
    assert err == f"error: cannot reach {url}: connection refused; is `nudge dev` running?\n"
    assert "Traceback" not in err


def test_a_line_that_is_not_json_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "track", "userId": "u", "event": "A"}\n\n{"type": \n[1]\n')
    code, _, err = run("replay", str(path), "--write-key", "k", capsys=capsys)
    assert code == 2
    assert err.startswith(f"error: {path}:3: not JSON: ") and err.count("\n") == 1


def test_no_write_key_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUDGE_WRITE_KEY", raising=False)
    code, _, err = run("replay", str(events_file(tmp_path, 1)), capsys=capsys)
    assert code == 2
    assert err == "error: a write key is needed (--write-key or NUDGE_WRITE_KEY)\n"


def test_a_refused_write_key_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: tuple[str, type[FakeIngest]]
) -> None:
    url, handler = server
    handler.status = 401
    code, out, err = run(
        "replay", str(events_file(tmp_path, 3)), "--url", url, "--write-key", "k", capsys=capsys
    )
    assert (code, out) == (2, "")
    assert err == f"error: {url}/v1/batch refused the write key (401)\n"


# ---- sending -------------------------------------------------------------------------------
def test_json_output_is_one_object_and_batches_hold_100(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: tuple[str, type[FakeIngest]]
) -> None:
    url, handler = server
    path = events_file(tmp_path, 250)
    code, out, err = run(
        "replay", str(path), "--url", url, "--write-key", "k", "--json", capsys=capsys
    )
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == {"sent", "rejected", "seconds"}
    assert (summary["sent"], summary["rejected"]) == (250, 0)
    assert out.count("\n") == 1
    assert [len(b) for b in handler.batches] == [100, 100, 50]


def test_rejections_are_reported_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: tuple[str, type[FakeIngest]]
) -> None:
    url, _ = server
    path = events_file(tmp_path, 120, without_user=2)
    code, out, err = run("replay", str(path), "--url", url, "--write-key", "k", capsys=capsys)
    assert code == 1
    assert out == f"sent 122 events to {url}/v1/batch in " + out.split(" in ")[1]
    assert out.rstrip().endswith(", 2 rejected")
    assert err.splitlines() == [
        "rejected (event 121 of the file): userId or anonymousId is required",
        "rejected (event 122 of the file): userId or anonymousId is required",
    ]


def test_import_goes_to_v1_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: tuple[str, type[FakeIngest]]
) -> None:
    url, _ = server
    code, out, _ = run(
        "replay",
        str(events_file(tmp_path, 2)),
        "--url",
        url,
        "--write-key",
        "k",
        "--import",
        capsys=capsys,
    )
    assert code == 0
    assert f"{url}/v1/import" in out


def test_a_progress_bar_on_a_terminal(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    server: tuple[str, type[FakeIngest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = server
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    monkeypatch.setattr(cli_output, "err_console", lambda: terminal)
    code, out, _ = run(
        "replay", str(events_file(tmp_path, 150)), "--url", url, "--write-key", "k", capsys=capsys
    )
    assert code == 0
    assert "sending to" in screen.getvalue() and "150/150" in screen.getvalue()
    assert "sending to" not in out  # stdout holds the summary alone
