"""`nudge report experiment ID` against a small HTTP server answering as the api does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from nudge.cli import build_app
from nudge.domain.experiment_report import VariantAggregate, build_report
from typer.testing import CliRunner

REPORT = build_report(
    "cart_abandonment_holdout",
    {"event": "Order Completed", "within_seconds": 72 * 3600},
    [
        VariantAggregate("holdout", 0.1, True, 98, 8),
        VariantAggregate("reminder", 0.9, False, 905, 120),
    ],
    minimum_detectable_effect=0.02,
)


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            known = self.path == "/v1/experiments/cart_abandonment_holdout"
            body = json.dumps(REPORT if known else {"error": "not_found", "message": "no such"})
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def run(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def test_json_is_the_apis_document(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = server
    result = run(
        "report",
        "experiment",
        "cart_abandonment_holdout",
        "--url",
        url,
        "--admin-key",
        "ak_x",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(REPORT))
    assert seen == [{"path": "/v1/experiments/cart_abandonment_holdout", "auth": "Bearer ak_x"}]


def test_table(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = server
    result = run(
        "report", "experiment", "cart_abandonment_holdout", "--url", url, "--admin-key", "ak_x"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "cart_abandonment_holdout: goal Order Completed within 72 h"
    reminder = next(line for line in lines if line.startswith("reminder"))
    assert reminder.split()[1:4] == ["905", "120", "13.26"]
    assert "SRM p-value" in result.stdout and "more exposures" in result.stdout


def test_unknown_experiment_and_no_key(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = server
    result = run("report", "experiment", "nope", "--url", url, "--admin-key", "ak_x")
    assert result.exit_code == 2 and "404" in result.stderr
    result = run("report", "experiment", "nope", "--url", url, "--admin-key", "")
    assert result.exit_code == 2 and "admin key" in result.stderr
