"""`nudge triggers validate [PATH]` and `nudge triggers backtest (--events FILE.jsonl |
--archive)`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from nudge import constants as C
from nudge.domain.archive import event_from_row
from nudge.domain.events import Event, normalize_event
from nudge.domain.fatigue import FatigueConfigError, load_fatigue_config
from nudge.domain.triggers.backtest import backtest
from nudge.domain.triggers.loader import (
    DefinitionError,
    default_triggers_path,
    load_triggers,
    trigger_files,
    validate_path,
)

MAX_WARNINGS = 10


def register(subparsers: Any) -> None:
    """Adds `triggers` and its subcommands to the `nudge` parser."""
    triggers = subparsers.add_parser("triggers", help="validate and backtest trigger definitions")
    sub = triggers.add_subparsers(dest="triggers_command", required=True)

    validate = sub.add_parser(
        "validate",
        help="check trigger definitions and each trigger against its template (its channel "
        "and fallback sections, its variables); exit 1 with file:line: message per error",
    )
    validate.add_argument(
        "path",
        nargs="?",
        default=None,
        help="a file or folder (default: $NUDGE_TRIGGERS_PATH or ./triggers)",
    )
    validate.add_argument(
        "--templates",
        default=None,
        help="templates folder (default: templates/ beside the triggers folder)",
    )
    validate.set_defaults(func=_validate)

    bt = sub.add_parser(
        "backtest", help="replay historical events through the trigger engine (nothing is sent)"
    )
    source = bt.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--events",
        help="JSONL file of Segment-format events (one per line, `type` required)",
    )
    source.add_argument(
        "--archive",
        action="store_true",
        help="the event archive (as `nudge sql` finds it: --url, --stack, $NUDGE_URL, "
        "the local mode at 127.0.0.1:8080, else the deployed stack)",
    )
    where = bt.add_mutually_exclusive_group()
    where.add_argument("--url", default=None, help="with --archive: a local mode's URL")
    where.add_argument("--stack", default=None, help="with --archive: a deployed stack's name")
    bt.add_argument(
        "--since",
        default=None,
        metavar="DURATION",
        help="with --archive: only events received in the last DURATION (7d, 30d, 24h) "
        "or since an ISO date/time",
    )
    bt.add_argument(
        "--config",
        default=None,
        help="folder of fatigue.yaml, whose caps and cooldowns decide `would_send` "
        "(default: $NUDGE_CONFIG_PATH or ./config)",
    )
    bt.add_argument("--trigger", default=None, help="only this trigger id")
    bt.add_argument("--json", action="store_true", help="print the report as JSON")
    bt.add_argument(
        "--triggers",
        default=None,
        help="definitions file or folder (default: $NUDGE_TRIGGERS_PATH or ./triggers)",
    )
    bt.add_argument(
        "--templates",
        default=None,
        help="templates folder (default: templates/ beside the triggers folder)",
    )
    bt.set_defaults(func=_backtest)


def _validate(args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else default_triggers_path()
    templates = Path(args.templates) if args.templates else None
    issues = validate_path(path, templates_dir=templates)
    if issues:
        for issue in issues:
            print(issue)
        print(f"{len(issues)} error{'s' if len(issues) != 1 else ''}", file=sys.stderr)
        return 1
    triggers = load_triggers(path, templates_dir=templates)
    files = trigger_files(path)
    print(
        f"ok: {len(triggers)} trigger{'s' if len(triggers) != 1 else ''} in {len(files)} "
        f"file{'s' if len(files) != 1 else ''} ({', '.join(triggers.ids) or 'none'})"
    )
    return 0


def read_events(
    stream: TextIO, *, label: str = "events", warn: TextIO | None = None
) -> Iterator[Event]:
    """Segment-format events from JSONL, each received at its own timestamp (so no skew
    correction applies). Bad lines are skipped with a warning."""
    bad = 0
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield _event(json.loads(line))
        except (ValueError, TypeError) as err:
            bad += 1
            if warn is not None and bad <= MAX_WARNINGS:
                print(f"{label}:{number}: skipped: {err}", file=warn)
    if warn is not None and bad > MAX_WARNINGS:
        print(f"{label}: {bad} lines skipped in all", file=warn)


def _event(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    if not raw.get("type"):
        raise ValueError("`type` is required")
    stamp = raw.get("timestamp") or raw.get("originalTimestamp")
    if not isinstance(stamp, str):
        raise ValueError("`timestamp` (ISO-8601) is required to replay an event")
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    clean = {k: v for k, v in raw.items() if k != "sentAt"}
    return normalize_event(clean, kind=None, received_at=at, historical=False)


def default_config_path() -> Path:
    return Path(os.environ.get(C.ENV_CONFIG_PATH) or "config")


def archived_events(args: argparse.Namespace) -> list[Event]:
    """The archive's events (the view `events`: each message_id once), as received."""
    from nudge.cli_sql import parse_since, resolve_engine

    engine = resolve_engine(argparse.Namespace(url=args.url, stack=args.stack, engine=None))
    since = parse_since(args.since) if args.since else None
    result = engine.query(
        'select * from events order by received_at, "timestamp", message_id', since=since
    )
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    if since is not None:
        rows = [r for r in rows if _utc(r["received_at"]) >= since]
    return [event_from_row(r) for r in rows]


def _utc(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _backtest(args: argparse.Namespace) -> int:
    path = Path(args.triggers) if args.triggers else default_triggers_path()
    templates = Path(args.templates) if args.templates else None
    try:
        triggers = load_triggers(path, templates_dir=templates)
    except DefinitionError as err:
        for issue in err.errors:
            print(issue, file=sys.stderr)
        return 1
    if args.trigger is not None and args.trigger not in triggers:
        print(
            f"unknown trigger {args.trigger!r}; known: {', '.join(triggers.ids)}", file=sys.stderr
        )
        return 2
    try:
        fatigue = load_fatigue_config(Path(args.config or default_config_path()) / "fatigue.yaml")
    except FatigueConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.archive:
        try:
            events = archived_events(args)
        except Exception as err:  # one line, never a traceback
            from nudge.cli_sql import one_line

            message = getattr(err, "message", None) or str(err)
            print(f"error: {one_line(message)}", file=sys.stderr)
            return 2
    else:
        if args.url or args.stack or args.since:
            print("error: --url, --stack and --since go with --archive", file=sys.stderr)
            return 2
        try:
            with open(args.events, encoding="utf-8") as stream:
                events = list(read_events(stream, label=args.events, warn=sys.stderr))
        except OSError as err:
            print(f"cannot read {args.events}: {err.strerror or err}", file=sys.stderr)
            return 2
    result = backtest(events, triggers, args.trigger, fatigue=fatigue)
    text = json.dumps(result.to_dict(), indent=2) if args.json else result.table()
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
