"""`nudge sql "QUERY"`: SQL over the event archive, from a terminal."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import typer

from nudge import constants as C
from nudge.cli_output import CONTEXT, DEFAULT_URL, USER_ERROR, UserError, error, out_console
from nudge.domain.clock import SystemClock, utc
from nudge.domain.errors import NudgeError, QueryForbiddenError, QuerySyntaxError
from nudge.domain.ports import QueryEngine
from nudge.domain.query import QueryResult, json_safe

DEFAULT_STACK = "Nudge"  # infra/app.py STACK_NAME
ENV_URL = "NUDGE_URL"
MAX_TABLE_ROWS = 1000  # the table for people; --json prints every row
LOCAL_TIMEOUT_S = 2.0

EngineFactory = Callable[[argparse.Namespace], QueryEngine]

DESCRIPTION = """\
Runs one SQL query (DuckDB's dialect) over the view `events` of the event archive:
  message_id, type, event, user_id, anonymous_id, timestamp, received_at (TIMESTAMP,
  UTC), properties, traits, context (JSON), historical, previous_id, group_id
one row per message_id. Nothing can be written, and no file of this machine read.

  nudge sql "select event, count(*) from events group by 1 order by 2 desc"
  nudge sql --since 24h --json "select user_id, count(*) n from events group by 1"
"""

EPILOG = f"""\
where the archive is (the first that applies):
  1. --url URL: the local mode there (`nudge dev`); its /_local/aws names the
     archive bucket and the moto endpoint. It must answer.
  2. --stack NAME: that deployed stack's outputs (CloudFormation, with your AWS
     credentials and region).
  3. ${ENV_URL}: as --url.
  4. none of these: the local mode at {DEFAULT_URL} if it answers, else the
     deployed stack {DEFAULT_STACK}.
engine: DuckDB in local mode. For a deployed stack, --engine, else
  ${C.ENV_QUERY_ENGINE}, else duckdb: DuckDB copies the archive's objects into
  $XDG_CACHE_HOME/nudge/archive/<bucket> (~/.cache/... by default; kept, so only new
  objects are downloaded next time; hours older than 3 h are not listed again for a
  day, see --refresh); athena runs the query in the stack's Athena
  workgroup (billed by the data it scans; --since limits the partitions read).
exit status: 0 done; 2 the query is invalid or not allowed, or no archive was found;
  1 the query failed (the archive unreadable, a timeout).
"""


class TargetError(Exception):
    """No archive could be found where the command looked (one line for the user)."""


def _since(text: str) -> datetime:
    try:
        return parse_since(text)
    except argparse.ArgumentTypeError as err:
        raise typer.BadParameter(str(err)) from None


def sql(
    query: Annotated[str, typer.Argument(help='the SQL statement ("-": read it from stdin)')],
    url: Annotated[
        str | None,
        typer.Option(help=f"a local mode (default: ${ENV_URL})", show_default=False),
    ] = None,
    stack: Annotated[
        str | None, typer.Option(help="a deployed stack's name", show_default=False)
    ] = None,
    engine: Annotated[
        Literal["duckdb", "athena"] | None,
        typer.Option(
            help=f"for a deployed stack (default: ${C.ENV_QUERY_ENGINE} or duckdb)",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help='print {"columns": [...], "rows": [...]}')
    ] = False,
    since: Annotated[
        datetime | None,
        typer.Option(
            parser=_since,
            metavar="DURATION",
            help="only events received in the last DURATION (30m, 24h, 7d, 1h30m) or since "
            "an ISO date/time (UTC unless it says)",
            show_default=False,
        ),
    ] = None,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="list the whole archive again (the cache trusts hours older than 3 h for a day)",
        ),
    ] = False,
) -> None:
    """SQL over the event archive (DuckDB locally, or Athena)."""
    args = sql_args(
        query=query,
        url=url,
        stack=stack,
        engine=engine,
        json_output=json_output,
        since=since,
        refresh=refresh,
    )
    raise typer.Exit(sql_command(args))


def sql_args(
    *,
    query: str,
    url: str | None = None,
    stack: str | None = None,
    engine: str | None = None,
    json_output: bool = False,
    since: datetime | None = None,
    refresh: bool = False,
) -> argparse.Namespace:
    """The options as sql_command takes them; --url and --stack exclude each other."""
    if url and stack:
        raise UserError("--url and --stack exclude each other: give one")
    return argparse.Namespace(
        query=query,
        url=url,
        stack=stack,
        engine=engine,
        json=json_output,
        since=since,
        refresh=refresh,
    )


def register(app: typer.Typer) -> None:
    """Adds `sql` to the `nudge` app."""
    app.command("sql", help=f"{sql.__doc__}\n\n{DESCRIPTION}", epilog=EPILOG)(sql)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The options of `nudge sql ARGV...` as sql_command takes them, without running the
    query; a usage error exits as the command does (one line on stderr, status 2)."""
    single = typer.Typer(context_settings=CONTEXT)
    single.command()(sql)
    command = typer.main.get_command(single)
    try:
        with command.make_context("nudge sql", list(argv)) as ctx:
            return sql_args(**ctx.params)
    except UserError as err:
        error(err.message)
        raise SystemExit(err.code) from None
    except Exception as err:
        from nudge.cli import is_click_error, usage_line

        if not is_click_error(err, "UsageError"):
            raise
        error(usage_line(err))
        raise SystemExit(USER_ERROR) from None


@contextmanager
def archive_progress() -> Iterator[Callable[[int, int], None] | None]:
    """The download bar of a cold cache, on a terminal's stderr (None elsewhere)."""
    bar = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def sql_command(
    args: argparse.Namespace,
    *,
    engine_factory: EngineFactory | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Runs the command; `engine_factory` is the seam tests (and other front ends) use."""
    out = out or sys.stdout
    err = err or sys.stderr
    progress = _Progress(err) if engine_factory is None and err.isatty() else None
    try:
        sql = sys.stdin.read() if args.query == "-" else args.query
        factory = engine_factory or (lambda a: resolve_engine(a, progress=progress))
        engine = factory(args)
        result = engine.query(sql, since=args.since)
    except (QuerySyntaxError, QueryForbiddenError, TargetError) as e:
        _error(err, e)
        return 2
    except NudgeError as e:
        _error(err, e)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=err)
        return 130
    except Exception as e:  # never a traceback: one line, and the type for a bug report
        print(f"error: {type(e).__name__}: {one_line(str(e))}", file=err)
        return 1
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    else:
        print_table(result, out)
    return 0


def _error(err: TextIO, e: BaseException) -> None:
    message = e.message if isinstance(e, NudgeError) else str(e)
    print(f"error: {one_line(message)}", file=err)


def one_line(message: str) -> str:
    """An engine's message on one line: DuckDB's `LINE 1: ...` and caret lines, which
    only make sense under each other, are left out."""
    kept = []
    for line in message.strip().splitlines():
        text = line.strip()
        if not text or text.startswith("LINE ") or set(text) <= {"^", " "}:
            continue
        kept.append(text)
    return " ".join(kept) or message.strip()


# ---- --since --------------------------------------------------------------------------

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`30m`, `24h`, `7d`, `2w`, `1h30m`, `90s`."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION_RE.sub("", compact):
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 24h, 7d, 1h30m)")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _DURATION_RE.findall(compact)))


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A duration back from now, or an ISO date / date-time (UTC unless it says)."""
    try:
        return (now or SystemClock().now()) - parse_duration(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30m, 24h, 7d, 1h30m) nor an ISO date/time"
        ) from None
    return utc(at)


# ---- where the archive is -------------------------------------------------------------


def resolve_engine(
    args: argparse.Namespace, *, progress: Callable[[int, int], None] | None = None
) -> QueryEngine:
    """The engine for the archive the arguments name (see the command's help)."""
    refresh = bool(getattr(args, "refresh", False))
    if args.stack:
        return _stack_engine(args.stack, args.engine, progress, refresh)
    url = args.url or os.environ.get(ENV_URL)
    if url:
        info = local_info(url)
        if info is None:
            raise TargetError(f"no nudge local mode answers at {url}")
        return _local_engine(url, info, progress, refresh)
    info = local_info(DEFAULT_URL)
    if info is not None:
        return _local_engine(DEFAULT_URL, info, progress, refresh)
    try:
        return _stack_engine(DEFAULT_STACK, args.engine, progress, refresh)
    except TargetError as e:
        raise TargetError(f"no nudge local mode answers at {DEFAULT_URL}, and {e}") from None


def local_info(url: str) -> dict[str, Any] | None:
    """`GET {url}/_local/aws`, or None when nothing (or not local mode) answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(
            f"{url.rstrip('/')}/_local/aws", timeout=LOCAL_TIMEOUT_S
        ) as resp:
            info = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("endpoint_url") else None


def cache_dir(bucket: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nudge" / "archive" / bucket


def _local_engine(
    url: str,
    info: dict[str, Any],
    progress: Callable[[int, int], None] | None,
    refresh: bool = False,
) -> QueryEngine:
    from nudge.adapters.query_duckdb import DuckDbQueryEngine

    archive = info.get("archive") or {}
    bucket = archive.get("bucket") if isinstance(archive, dict) else None
    if not bucket:
        raise TargetError(f"the local mode at {url} has no event archive (update nudge)")
    endpoint = str(info["endpoint_url"])
    region = str(info.get("region") or "us-east-1")

    def s3() -> Any:
        import boto3

        # moto takes any credentials; the user's real ones never go to a local server
        return boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=region
        ).client("s3", endpoint_url=endpoint)

    from nudge.adapters.erased import S3ErasedIds

    return DuckDbQueryEngine(
        bucket,
        cache_dir=cache_dir(bucket),
        s3_client_factory=s3,
        prefix=str(archive.get("prefix") or C.ARCHIVE_PREFIX),
        progress=progress,
        refresh=refresh,
        erased=S3ErasedIds(bucket, s3=s3()).digests,  # erased users stay out of it
    )


def stack_outputs(name: str) -> tuple[dict[str, str], Any]:
    """The deployed stack's outputs, and the boto3 session (credentials, region) used."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        session = boto3.session.Session()
        if not session.region_name:
            raise TargetError(f"no AWS region is set to look for the stack {name}")
        cfn = session.client("cloudformation")
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except NoCredentialsError:
        raise TargetError(f"no AWS credentials to look for the stack {name}") from None
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "ValidationError":
            raise TargetError(f"no stack {name} in {session.region_name}") from None
        raise TargetError(f"cannot read the stack {name}: {code or e}") from None
    except BotoCoreError as e:
        raise TargetError(f"cannot read the stack {name}: {e}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return outputs, session


def _stack_engine(
    name: str,
    engine: str | None,
    progress: Callable[[int, int], None] | None,
    refresh: bool = False,
) -> QueryEngine:
    from botocore.config import Config

    from nudge.adapters.query import query_engine
    from nudge.settings import QuerySettings

    outputs, session = stack_outputs(name)
    chosen = engine or os.environ.get(C.ENV_QUERY_ENGINE) or "duckdb"

    def output(key: str) -> str:
        if key not in outputs:
            raise TargetError(f"the stack {name} has no {key} output (deploy the event archive)")
        return outputs[key]

    if chosen == "athena":
        settings = QuerySettings.model_validate(
            {
                C.ENV_QUERY_ENGINE: "athena",
                C.ENV_ATHENA_WORKGROUP: output("AthenaWorkGroupName"),
                C.ENV_GLUE_DATABASE: output("GlueDatabaseName"),
            }
        )
        return query_engine(
            settings,
            athena_client=session.client("athena"),
            glue_table=outputs.get("GlueTableName") or C.GLUE_EVENTS_TABLE,
        )
    if chosen != "duckdb":
        raise TargetError(f"{C.ENV_QUERY_ENGINE} is {chosen!r}: use duckdb or athena")
    bucket = output("ArchiveBucketName")
    settings = QuerySettings.model_validate(
        {
            C.ENV_QUERY_ENGINE: "duckdb",
            C.ENV_ARCHIVE_BUCKET: bucket,
            C.ENV_ARCHIVE_CACHE_DIR: str(cache_dir(bucket)),
        }
    )

    def s3() -> Any:
        return session.client("s3", config=Config(max_pool_connections=20))

    return query_engine(settings, s3_client_factory=s3, progress=progress, refresh=refresh)


# ---- output ---------------------------------------------------------------------------


def print_table(result: QueryResult, out: TextIO) -> None:
    """A table for people (at most MAX_TABLE_ROWS rows)."""
    from rich.table import Table
    from rich.text import Text

    console = out_console(out)
    if not result.columns:
        console.print("done (no result)")
        return
    shown = result.rows[:MAX_TABLE_ROWS]
    numeric = [
        all(_is_number(row[i]) for row in shown if row[i] is not None)
        and any(row[i] is not None for row in shown)
        for i in range(len(result.columns))
    ]
    table = Table(show_lines=False, header_style="bold")
    for name, right in zip(result.columns, numeric, strict=True):
        table.add_column(Text(name), justify="right" if right else "left", overflow="fold")
    for row in shown:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    n = len(result.rows)
    more = f" ({n - len(shown)} more not shown; --json prints all)" if n > len(shown) else ""
    console.print(Text(f"{n} row{'s' if n != 1 else ''}{more}", style="dim"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _cell(value: Any) -> Any:
    from rich.text import Text

    if value is None:
        return Text("NULL", style="dim")
    safe = json_safe(value)
    if isinstance(safe, dict | list):
        return Text(json.dumps(safe, ensure_ascii=False, separators=(",", ":")))
    if isinstance(safe, bool):
        return Text("true" if safe else "false")
    return Text(str(safe))


class _Progress:
    """A progress bar on stderr while a cold cache downloads objects."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if total < 20:
                return
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(file=self._err), transient=True)
            self._bar.start()
            self._task = self._bar.add_task("downloading the archive", total=total)
        self._bar.update(self._task, completed=done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
