"""`nudge report cohorts` and `nudge report funnel` against a small HTTP server answering
as the api does: the query string they send, --json printing the document as it came,
the tables, and a 400 of the api as one error line with exit status 2."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from nudge.cli import build_app
from nudge.domain.cohorts import CohortQuery, FunnelQuery, build_cohorts, build_funnel
from typer.testing import CliRunner

NOW = datetime(2026, 1, 21, 12, tzinfo=UTC)  # 2026-W04
COHORTS = build_cohorts(
    [
        (date(2025, 12, 29), None, 40),
        (date(2025, 12, 29), date(2026, 1, 5), 20),
        (date(2025, 12, 29), date(2026, 1, 19), 10),
        (date(2026, 1, 12), None, 8),
        (date(2026, 1, 12), date(2026, 1, 19), 2),
    ],
    CohortQuery("week"),
    NOW,
)
STEPS = ("Product Viewed", "Product Added", "Order Completed")
FUNNEL = build_funnel(
    FunnelQuery(STEPS, 7 * 86400, "segment"),
    {1: 50, 2: 30, 3: 20},
    {"frequent buyers": {1: 10, 3: 20}, "none": {1: 40, 2: 30}},
)


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            seen.append({"path": parts.path, "query": query})
            status, body = (
                200,
                {"cohorts": COHORTS, "funnel": FUNNEL}.get(parts.path.rsplit("/", 1)[-1]),
            )
            if query.get("within") == "7":
                status = 400
                body = {"error": "validation_failed", "message": "within: bad duration '7'"}
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def run(*args: str) -> Any:
    return CliRunner().invoke(build_app(), ["report", *args, "--admin-key", "ak_x"])


def test_cohorts_json_and_query(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = server
    result = run(
        "cohorts", "--period", "month", "--event", "Order Completed", "--url", url, "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == COHORTS
    assert seen == [
        {"path": "/v1/reports/cohorts", "query": {"period": "month", "event": "Order Completed"}}
    ]


def test_cohorts_table(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = server
    result = run("cohorts", "--url", url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cohorts by week")
    header = lines[1].split()
    assert header == ["cohort", "size", "+0", "+1", "+2", "+3"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line.strip()[:4].isdigit()}
    assert rows["2026-W01"] == ["40", "100.0", "%", "50.0", "%", "0.0", "%", "25.0", "%"]
    assert rows["2026-W03"] == ["8", "100.0", "%", "25.0", "%"]


def test_funnel_table_and_query(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = server
    result = run(
        "funnel", "--steps", "Product Viewed,Product Added,Order Completed", "--by", "segment",
        "--within", "48h", "--url", url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen[0]["query"] == {
        "steps": "Product Viewed,Product Added,Order Completed",
        "within": "48h",
        "by": "segment",
    }
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["funnel", "within", "7d", "of", "the", "first", "step"]
    assert rows[3][:7] == ["1", "Product", "Viewed", "100", "100.00", "%", "-"]
    assert rows[5][:8] == ["3", "Order", "Completed", "20", "20.00", "%", "60.00", "%"]
    assert rows[5][8] == "█" * 6  # a bar of 20 % of 30 columns
    assert rows[9][:4] == ["frequent", "buyers", "30", "20"]
    assert rows[10] == ["none", "70", "30", "(42.86", "%)", "0", "(0.00", "%)"]


def test_funnel_json_and_a_refusal(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = server
    result = run("funnel", "--steps", "A,B", "--url", url, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == FUNNEL
    result = run("funnel", "--steps", "A,B", "--within", "7", "--url", url)
    assert result.exit_code == 2
    assert "400 within: bad duration '7'" in result.stderr
