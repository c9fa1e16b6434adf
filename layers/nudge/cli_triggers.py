"""`nudge triggers validate [PATH]` and `nudge triggers backtest (--events FILE.jsonl |
--archive)`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from nudge import constants as C
from nudge.cli_output import (
    fail,
    new_app,
    note,
    out_console,
    plain_table,
    print_json,
    print_problems,
    progress,
)
from nudge.domain.archive import event_from_row
from nudge.domain.clock import utc
from nudge.domain.events import Event, normalize_event
from nudge.domain.fatigue import FatigueConfigError, load_fatigue_config
from nudge.domain.triggers.backtest import TABLE_COLUMNS, BacktestReport, backtest
from nudge.domain.triggers.loader import (
    DefinitionError,
    default_triggers_path,
    load_triggers,
    trigger_files,
    validate_path,
)

MAX_WARNINGS = 10
# When an event of a file happened, in the order Segment dates a call (see _event_time)
TIME_FIELDS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")
NO_TIME = "no time: none of " + ", ".join(TIME_FIELDS)

BACKTEST_EPILOG = """\
--events FILE.jsonl: one Segment call a line (`type` required), replayed in the file's own
time. An event happened at its `timestamp`; without one, as Segment dates a call, at its
`originalTimestamp` (moved by `receivedAt` - `sentAt` when both are there, the client's
clock skew), else at its `receivedAt`, else its `sentAt`. A line that is not an event, or an
event with none of these, is skipped with a warning naming the line; if no event is left,
the exit status is 2. (`nudge replay` sends the same file to a server, which dates an event
without `timestamp` when it receives it.)

--archive: what nudge received, as `nudge sql` finds it: --url, --stack, ${NUDGE_URL}, the
local mode at http://127.0.0.1:8080, else the deployed stack.

Output: a table of the triggers (--json: `{"events", "users", "triggers": [{"trigger_id",
"users_fired", "fires", "would_send", ...}], ...}`); progress and warnings on stderr.
Exit status: 0 done; 1 the definitions do not load; 2 nothing to replay, an unreadable
file or archive, or a wrong option.
"""

REPORT_LEGEND = (
    "episodes: times a condition was met; fires: those with a message (an episode decided "
    "past the trigger's lateness, or found in the past, counts without one); cooldown: fires "
    "within the trigger's cooldown of its previous message to the user; caps: fires over the "
    "caps of the fatigue config (or losing a last slot to priority); send: what would have "
    "gone out (quiet hours defer, they do not drop; the control group receives nothing)."
)

PathArg = Annotated[
    str | None,
    typer.Argument(
        metavar="PATH",
        help="a file or folder (default: $NUDGE_TRIGGERS_PATH or ./triggers)",
        show_default=False,
    ),
]
TemplatesOpt = Annotated[
    str | None,
    typer.Option(
        help="templates folder (default: templates/ beside the triggers folder)",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Adds `triggers` and its subcommands to the `nudge` app."""
    triggers = new_app("triggers", "Validate and backtest trigger definitions.")
    triggers.command("validate")(validate_command)
    triggers.command("backtest", epilog=BACKTEST_EPILOG)(backtest_command)
    app.add_typer(triggers)


def validate_command(path: PathArg = None, templates: TemplatesOpt = None) -> None:
    """Check trigger definitions, and each trigger against its template.

    The YAML against the schema, the structure, and each trigger's template (it exists,
    has a section for the channel and the fallback, uses only template variables). Exit
    status 1 with `file:line: message` per error (piped; a table on a terminal)."""
    where = Path(path) if path else default_triggers_path()
    templates_dir = Path(templates) if templates else None
    if not where.exists():
        fail(f"{where}: no such file or folder")
    issues = validate_path(where, templates_dir=templates_dir)
    if issues:
        print_problems(issues)
        print(f"{len(issues)} error{'s' if len(issues) != 1 else ''}", file=sys.stderr)
        raise typer.Exit(1)
    loaded = load_triggers(where, templates_dir=templates_dir)
    files = trigger_files(where)
    print(
        f"ok: {len(loaded)} trigger{'s' if len(loaded) != 1 else ''} in {len(files)} "
        f"file{'s' if len(files) != 1 else ''} ({', '.join(loaded.ids) or 'none'})"
    )


# ---- reading a file of events -------------------------------------------------------------


@dataclass
class Skipped:
    """The lines read_events left out: how many, by reason, and the first few."""

    lines: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first: list[str] = field(default_factory=list)  # `label:line: skipped: reason`

    def add(self, label: str, number: int, reason: str) -> str:
        self.lines += 1
        self.reasons["not JSON" if reason.startswith("not JSON") else reason] += 1
        warning = f"{label}:{number}: skipped: {reason}"
        if len(self.first) < MAX_WARNINGS:
            self.first.append(warning)
        return warning

    def summary(self) -> str:
        return "; ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())


def read_events(
    stream: TextIO,
    *,
    label: str = "events",
    warn: TextIO | None = None,
    skipped: Skipped | None = None,
) -> Iterator[Event]:
    """Segment-format events from JSONL, each received when it happened (see _event_time;
    so no skew correction applies). Bad lines are skipped, counted in `skipped`, and
    warned of on `warn` (the first MAX_WARNINGS, then a count)."""
    left_out = skipped if skipped is not None else Skipped()
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield _event(json.loads(line))
        except (ValueError, TypeError) as err:
            reason = f"not JSON: {err.msg}" if isinstance(err, json.JSONDecodeError) else str(err)
            warning = left_out.add(label, number, reason)
            if warn is not None and left_out.lines <= MAX_WARNINGS:
                print(warning, file=warn)
    if warn is not None and left_out.lines > MAX_WARNINGS:
        print(f"{label}: {left_out.lines} lines skipped in all ({left_out.summary()})", file=warn)


def _parse_time(raw: dict[str, Any], name: str) -> datetime | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"`{name}` must be an ISO-8601 string")
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"`{name}` is not an ISO-8601 date-time: {value!r}") from None
    return utc(at)


def _event_time(raw: dict[str, Any]) -> datetime | None:
    """When an event of a file happened, as Segment dates a call: its `timestamp`; else
    its `originalTimestamp`, moved by `receivedAt` - `sentAt` (the client's clock skew)
    when both are known; else `receivedAt` (Segment's timestamp for a call that had
    none); else `sentAt`. None when it has none of them."""
    stamps = {name: _parse_time(raw, name) for name in TIME_FIELDS}
    if stamps["timestamp"] is not None:
        return stamps["timestamp"]
    original, received, sent = (
        stamps["originalTimestamp"],
        stamps["receivedAt"],
        stamps["sentAt"],
    )
    if original is not None:
        return original + (received - sent) if received and sent else original
    return received or sent


def _event(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    if not raw.get("type"):
        raise ValueError("`type` is required")
    at = _event_time(raw)
    if at is None:
        raise ValueError(NO_TIME)
    clean = {k: v for k, v in raw.items() if k not in ("sentAt", "originalTimestamp")}
    clean["timestamp"] = at.isoformat()
    return normalize_event(clean, kind=None, received_at=at, historical=False)


def default_config_path() -> Path:
    return Path(os.environ.get(C.ENV_CONFIG_PATH) or "config")


def archived_events(args: argparse.Namespace) -> list[Event]:
    """The archive's events (the view `events`: each message_id once), as received."""
    from nudge.cli_sql import archive_progress, parse_since, resolve_engine
    from nudge.domain.archive import SENT_BY_USERS_SQL

    with archive_progress() as shown:
        engine = resolve_engine(
            argparse.Namespace(url=args.url, stack=args.stack, engine=None), progress=shown
        )
        since = parse_since(args.since) if args.since else None
        # what processing folded live: not the events nudge archives about itself
        result = engine.query(
            f"select * from events where {SENT_BY_USERS_SQL} "
            'order by received_at, "timestamp", message_id',
            since=since,
        )
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    if since is not None:
        rows = [r for r in rows if _received_at(r) >= since]
    return [event_from_row(r) for r in rows]


def _received_at(row: dict[str, Any]) -> datetime:
    value = row["received_at"]
    return utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


# ---- nudge triggers backtest --------------------------------------------------------------


def backtest_command(
    events: Annotated[
        str | None,
        typer.Option(
            metavar="FILE.jsonl",
            help="JSONL file of Segment-format events (one per line, `type` required; dated "
            "as below)",
            show_default=False,
        ),
    ] = None,
    archive: Annotated[
        bool,
        typer.Option(
            "--archive",
            help="the event archive instead of a file (found as `nudge sql` finds it: "
            "--url, --stack, $NUDGE_URL, the local mode at 127.0.0.1:8080, else the "
            "deployed stack)",
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(help="with --archive: a local mode's URL", show_default=False),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(help="with --archive: a deployed stack's name", show_default=False),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="with --archive: only events received in the last DURATION (7d, 30d, 24h) "
            "or since an ISO date/time",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help="folder of fatigue.yaml, whose caps and cooldowns decide `would_send` "
            "(default: $NUDGE_CONFIG_PATH or ./config)",
            show_default=False,
        ),
    ] = None,
    trigger: Annotated[
        str | None, typer.Option(help="only this trigger id", show_default=False)
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="print the report as one JSON object")
    ] = False,
    triggers: Annotated[
        str | None,
        typer.Option(
            help="definitions file or folder (default: $NUDGE_TRIGGERS_PATH or ./triggers)",
            show_default=False,
        ),
    ] = None,
    templates: TemplatesOpt = None,
) -> None:
    """Replay historical events through the trigger engine (nothing is sent).

    A file, or the event archive, through the same code path as live processing: who
    would have fired, when, and how often cooldowns and caps would have cut in."""
    args = argparse.Namespace(
        events=events,
        archive=archive,
        url=url,
        stack=stack,
        since=since,
        config=config,
        trigger=trigger,
        json=json_output,
        triggers=triggers,
        templates=templates,
    )
    raise typer.Exit(run_backtest(args))


def run_backtest(args: argparse.Namespace) -> int:
    """`nudge triggers backtest` with its parsed options; its exit status."""
    if args.archive == bool(args.events):
        fail("give one of --events FILE.jsonl and --archive")
    if args.url and args.stack:
        fail("give --url or --stack, not both")
    if not args.archive and (args.url or args.stack or args.since):
        fail("--url, --stack and --since go with --archive")
    path = Path(args.triggers) if args.triggers else default_triggers_path()
    templates = Path(args.templates) if args.templates else None
    try:
        loaded = load_triggers(path, templates_dir=templates)
    except DefinitionError as err:
        for issue in err.errors:
            print(issue, file=sys.stderr)
        return 1
    if args.trigger is not None and args.trigger not in loaded:
        fail(f"unknown trigger {args.trigger!r}; known: {', '.join(loaded.ids)}")
    try:
        fatigue = load_fatigue_config(Path(args.config or default_config_path()) / "fatigue.yaml")
    except FatigueConfigError as err:
        fail(str(err))
    if args.archive:
        try:
            history = archived_events(args)
        except Exception as err:  # one line, never a traceback
            from nudge.cli_sql import one_line

            message = getattr(err, "message", None) or str(err)
            fail(one_line(message))
        if not history:
            fail("the archive has no events" + (f" since {args.since}" if args.since else ""))
    else:
        history = _file_events(args.events)
    chosen = args.trigger or f"{len(loaded)} trigger{'s' if len(loaded) != 1 else ''}"
    with progress(f"replaying through {chosen}", len(history), unit="events") as advance:
        result = backtest(history, loaded, args.trigger, fatigue=fatigue, on_delivered=advance)
    if args.json:
        print_json(result.to_dict(), indent=2)
    else:
        print_report(result)
    return 0


def _file_events(name: str) -> list[Event]:
    """The file's events. Lines skipped are warned of (the first few, by line) when some
    events are left; when none is, the command fails with one line saying why."""
    skipped = Skipped()
    history: list[Event] = []
    try:
        with (
            open(name, encoding="utf-8") as stream,
            progress(f"reading {name}", None, unit="events") as advance,
        ):
            for event in read_events(stream, label=name, skipped=skipped):
                history.append(event)
                advance(1)
    except OSError as err:
        fail(f"cannot read {name}: {err.strerror or err}")
    except UnicodeDecodeError as err:
        fail(f"cannot read {name}: not UTF-8 text ({err.reason})")
    if not history:
        if skipped.lines:
            first = skipped.first[0].split(": skipped: ")[0]
            fail(
                f"{name}: no event to replay, all {skipped.lines:,} lines skipped "
                f"({skipped.summary()}; the first: {first})"
            )
        fail(f"{name}: no events")
    if skipped.lines:
        for warning in skipped.first:
            note(warning)
        note(
            f"{name}: {skipped.lines:,} lines skipped ({skipped.summary()}), "
            f"{len(history):,} events replayed"
        )
    return history


def print_report(result: BacktestReport) -> None:
    """The report as a table for people (one row a trigger; cells split by whitespace)."""
    from rich.text import Text

    from nudge.domain.clock import iso

    table = plain_table(*TABLE_COLUMNS, right=(1, 2, 3, 4, 7, 8, 9))
    tty = sys.stdout.isatty()

    def when(at: datetime | None) -> str:
        """ISO-8601 piped (scripts); to the minute, UTC, on a terminal (people)."""
        if at is None:
            return "-"
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if tty else iso(at) or "-"

    for *cells, send in result.rows(when):
        table.add_row(*cells, Text(send, style="bold"))
    console = out_console()
    console.print(result.summary(), markup=False)
    console.print()
    console.print(table)
    console.print()
    console.print(Text(REPORT_LEGEND, style="dim"), soft_wrap=not sys.stdout.isatty())
