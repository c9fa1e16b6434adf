"""`nudge report triggers` against a small HTTP server answering as the api does: the
JSON document as it is, the table, the days passed on, and refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from nudge.cli import build_app
from nudge.domain.trigger_report import TriggerGoal, build_report
from typer.testing import CliRunner

GOALS = [
    TriggerGoal("cart_abandonment", "Order Completed", 72 * 3600),
    TriggerGoal("inactivity_winback", "Order Completed", 72 * 3600),
]
REPORT = build_report(
    GOALS,
    [
        ("cart_abandonment", None, "fired", 12.0),
        ("cart_abandonment", None, "sent", 10.0),
        ("cart_abandonment", None, "sent_users", 10.0),
        ("cart_abandonment", None, "responded", 4.0),
        ("cart_abandonment", None, "converted_users", 1.0),
        ("cart_abandonment", None, "engaged_seconds", 900.0),
        ("cart_abandonment", None, "treated_users", 10.0),
        ("cart_abandonment", None, "treated_active", 6.0),
        ("cart_abandonment", None, "holdout_users", 2.0),
        ("cart_abandonment", None, "holdout_active", 1.0),
        ("cart_abandonment", date(2026, 3, 2), "fired", 12.0),
    ],
    days=3,
    today=date(2026, 3, 2),
)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.path} {self.headers.get('Authorization')}")
            body = json.dumps(REPORT)
            self.send_response(200)
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


def test_json_is_the_apis_document_and_days_go_to_the_route(
    server: tuple[str, list[str]],
) -> None:
    url, seen = server
    result = run("report", "triggers", "--days", "3", "--url", url, "--admin-key", "ak_x", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps(REPORT))
    assert seen == ["/v1/reports/triggers?days=3 Bearer ak_x"]


def test_table_has_one_row_per_trigger(server: tuple[str, list[str]]) -> None:
    url, seen = server
    result = run("report", "triggers", "--url", url, "--admin-key", "ak_x")
    assert result.exit_code == 0, result.output
    assert seen == ["/v1/reports/triggers?days=28 Bearer ak_x"]
    cart = next(line for line in result.stdout.splitlines() if line.startswith("cart_"))
    assert cart.split() == [
        "cart_abandonment",
        "12",
        "10",
        "40.00",
        "%",
        "10.00",
        "%",
        "90",
        "s",
        "+10.00",  # 6/10 active minus 1/2
        "pp",
        "-",
    ]
    quiet = next(line for line in result.stdout.splitlines() if line.startswith("inactivity"))
    assert quiet.split()[1:4] == ["0", "0", "-"]


def test_days_out_of_bounds_and_no_key(server: tuple[str, list[str]]) -> None:
    url, seen = server
    assert run("report", "triggers", "--days", "0", "--url", url, "--admin-key", "k").exit_code == 2
    assert (
        run("report", "triggers", "--days", "366", "--url", url, "--admin-key", "k").exit_code == 2
    )
    result = run("report", "triggers", "--url", url, "--admin-key", "")
    assert result.exit_code == 2 and "admin key" in result.stderr
    assert seen == []
