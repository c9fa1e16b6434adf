"""`nudge sql`: arguments, output, exit codes (with a fake engine through the command's
engine-factory seam), and where it finds the archive (a local mode's /_local/aws, a
deployed stack's outputs under moto)."""

from __future__ import annotations

import argparse
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from nudge import cli, cli_sql
from nudge.adapters.query_athena import AthenaQueryEngine
from nudge.adapters.query_duckdb import DuckDbQueryEngine
from nudge.domain.archive import COLUMN_NAMES, archive_line
from nudge.domain.errors import QueryError, QuerySyntaxError
from nudge.domain.query import QueryResult

from tests.integration.conftest import free_port

DUCKDB_SYNTAX_ERROR = (
    'Parser Error: syntax error at or near "selec"\n\nLINE 1: selec 1\n        ^^^^^'
)


class FakeEngine:
    def __init__(self, result: QueryResult | None = None, error: Exception | None = None) -> None:
        self.result = result or QueryResult(columns=[], rows=[])
        self.error = error
        self.calls: list[tuple[str, datetime | None]] = []

    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        self.calls.append((sql, since))
        if self.error:
            raise self.error
        return self.result


def parse(*argv: str) -> argparse.Namespace:
    return cli_sql.parse_args(argv)


def run(engine: FakeEngine, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_sql.sql_command(parse(*argv), engine_factory=lambda _: engine, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


RESULT = QueryResult(
    columns=["event", "n", "first", "total", "props"],
    rows=[
        ["Product Added", 3, datetime(2026, 3, 2, 12, 0, 1, 123000), Decimal("12.50"), {"a": 1}],
        [None, 1, None, Decimal("2"), None],
    ],
    types=["VARCHAR", "BIGINT", "TIMESTAMP", "DECIMAL(10,2)", "JSON"],
)


# ---- arguments ------------------------------------------------------------------------


def test_arguments_parse() -> None:
    args = parse("select 1", "--json", "--since", "24h", "--url", "http://127.0.0.1:9")

    assert args.query == "select 1"
    assert args.json is True
    assert args.url == "http://127.0.0.1:9"
    assert args.stack is None
    assert args.refresh is False
    assert datetime.now(UTC) - args.since == pytest.approx(
        timedelta(hours=24), abs=timedelta(seconds=5)
    )


def test_url_and_stack_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse("select 1", "--url", "http://x", "--stack", "Nudge")
    assert exit_.value.code == 2


def test_a_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse("select 1", "--since", "yesterday")
    assert exit_.value.code == 2
    assert "neither a duration" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_since_durations(text: str, back: timedelta) -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    assert cli_sql.parse_since(text, now=now) == now - back


def test_since_dates() -> None:
    assert cli_sql.parse_since("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert cli_sql.parse_since("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)


# ---- output and exit codes -------------------------------------------------------------


def test_json_output_is_exactly_columns_and_rows() -> None:
    engine = FakeEngine(RESULT)

    code, out, err = run(engine, "select ...", "--json", "--since", "1h")

    assert code == 0
    assert err == ""
    assert json.loads(out) == {
        "columns": ["event", "n", "first", "total", "props"],
        "rows": [
            ["Product Added", 3, "2026-03-02T12:00:01.123Z", 12.5, {"a": 1}],
            [None, 1, None, 2, None],
        ],
    }
    assert out.endswith("}\n") and out.count("\n") == 1
    assert engine.calls[0][0] == "select ..."
    assert engine.calls[0][1] is not None


def test_table_output_for_people() -> None:
    code, out, _ = run(FakeEngine(RESULT), "select ...")

    assert code == 0
    for text in ("event", "Product Added", "2026-03-02T12:00:01.123Z", "NULL", '{"a":1}'):
        assert text in out
    assert "2 rows" in out


def test_a_syntax_error_is_one_line_and_exit_2() -> None:
    code, out, err = run(FakeEngine(error=QuerySyntaxError(DUCKDB_SYNTAX_ERROR)), "selec 1")

    assert code == 2
    assert out == ""
    assert err == 'error: Parser Error: syntax error at or near "selec"\n'


def test_no_archive_found_is_one_line_and_exit_2() -> None:
    def nowhere(_: argparse.Namespace) -> Any:
        raise cli_sql.TargetError("no nudge local mode answers at http://127.0.0.1:9")

    err = io.StringIO()
    code = cli_sql.sql_command(parse("select 1"), engine_factory=nowhere, err=err)

    assert code == 2
    assert err.getvalue() == "error: no nudge local mode answers at http://127.0.0.1:9\n"


def test_a_failed_query_exits_1_and_a_bug_never_prints_a_traceback() -> None:
    code, _, err = run(
        FakeEngine(error=QueryError("cannot list s3://b/events/: AccessDenied")), "q"
    )
    assert (code, err) == (1, "error: cannot list s3://b/events/: AccessDenied\n")

    code, _, err = run(FakeEngine(error=RuntimeError("boom\nline two")), "q")
    assert (code, err) == (1, "error: RuntimeError: boom line two\n")


def test_main_runs_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(RESULT)
    monkeypatch.setattr(cli_sql, "resolve_engine", lambda args, progress=None: engine)

    code = cli.main(["sql", "--json", "select 1"])

    assert code == 0
    assert json.loads(capsys.readouterr().out)["columns"][0] == "event"


def test_main_syntax_error_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(error=QuerySyntaxError(DUCKDB_SYNTAX_ERROR))
    monkeypatch.setattr(cli_sql, "resolve_engine", lambda args, progress=None: engine)

    assert cli.main(["sql", "selec 1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ['error: Parser Error: syntax error at or near "selec"']


# ---- where the archive is ------------------------------------------------------------


@pytest.fixture
def local_mode() -> Iterator[tuple[str, dict[str, Any]]]:
    """A stand-in for local mode's /_local/aws (the test sets what it answers)."""
    answer: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200 if self.path == "/_local/aws" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answer
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("NUDGE_URL", raising=False)
    monkeypatch.delenv("NUDGE_QUERY_ENGINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cli_sql, "DEFAULT_URL", f"http://127.0.0.1:{free_port()}")
    return tmp_path


def test_a_url_that_does_not_answer_is_a_clear_error(env: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(cli_sql.TargetError, match=f"no nudge local mode answers at {url}"):
        cli_sql.resolve_engine(parse("select 1", "--url", url))


def test_local_mode_names_the_bucket_and_endpoint(
    env: Path, local_mode: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, answer = local_mode
    answer.update(
        endpoint_url="http://127.0.0.1:1",
        region="eu-west-1",
        archive={"bucket": "nudge-archive-123456789012", "stream": "nudge-archive"},
    )
    monkeypatch.setenv("NUDGE_URL", url)

    engine = cli_sql.resolve_engine(parse("select 1", "--refresh"))

    assert isinstance(engine, DuckDbQueryEngine)
    assert engine.refresh is True
    assert engine.bucket == "nudge-archive-123456789012"
    assert engine.root == env / "nudge" / "archive" / "nudge-archive-123456789012" / "v1" / "events"
    client = engine._client()
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    assert client.meta.region_name == "eu-west-1"


def test_a_local_mode_without_archive_says_so(
    env: Path, local_mode: tuple[str, dict[str, Any]]
) -> None:
    url, answer = local_mode
    answer.update(endpoint_url="http://127.0.0.1:1", region="us-east-1")

    with pytest.raises(cli_sql.TargetError, match="has no event archive"):
        cli_sql.resolve_engine(parse("select 1", "--url", url))


STACK_TEMPLATE = {
    "Resources": {"Archive": {"Type": "AWS::S3::Bucket"}},
    "Outputs": {
        "ArchiveBucketName": {"Value": {"Ref": "Archive"}},
        "AthenaWorkGroupName": {"Value": "nudge"},
        "GlueDatabaseName": {"Value": "nudge"},
        "GlueTableName": {"Value": "archived_events"},
    },
}


def test_without_local_mode_the_deployed_stack_is_read(env: Path) -> None:
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="Nudge", TemplateBody=json.dumps(STACK_TEMPLATE)
        )
        bucket = boto3.client("cloudformation").describe_stacks(StackName="Nudge")["Stacks"][0][
            "Outputs"
        ]
        bucket_name = next(
            o["OutputValue"] for o in bucket if o["OutputKey"] == "ArchiveBucketName"
        )
        row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
        row.update(
            v=1,
            message_id="m1",
            type="track",
            event="A",
            user_id="u1",
            timestamp="2026-03-02T12:00:00.000Z",
            received_at="2026-03-02T12:00:00.000Z",
        )
        boto3.client("s3").put_object(
            Bucket=bucket_name, Key="events/2026/03/02/12/x", Body=archive_line(row)
        )
        out = io.StringIO()

        code = cli_sql.sql_command(
            parse("--json", "select event, count(*) n from events group by 1"), out=out
        )

        assert code == 0
        assert json.loads(out.getvalue()) == {"columns": ["event", "n"], "rows": [["A", 1]]}
        athena = cli_sql.resolve_engine(parse("select 1", "--stack", "Nudge", "--engine", "athena"))
        assert isinstance(athena, AthenaQueryEngine)
        assert (athena.workgroup, athena.database, athena.table) == (
            "nudge",
            "nudge",
            "archived_events",
        )


def test_no_local_mode_and_no_stack_is_one_clear_line(env: Path) -> None:
    with mock_aws():
        err = io.StringIO()

        code = cli_sql.sql_command(parse("select 1"), err=err)

    assert code == 2
    assert err.getvalue() == (
        f"error: no nudge local mode answers at {cli_sql.DEFAULT_URL}, and no stack Nudge in "
        "us-east-1\n"
    )
