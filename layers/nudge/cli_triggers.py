"""`nudge triggers validate [PATH]` and `nudge triggers backtest --events FILE.jsonl`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from nudge.domain.events import Event, normalize_event
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
        "validate", help="check trigger definitions; exit 1 with file:line: message per error"
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
    bt.add_argument(
        "--events",
        required=True,
        help="JSONL file of Segment-format events (one per line, `type` required)",
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
        with open(args.events, encoding="utf-8") as stream:
            events = list(read_events(stream, label=args.events, warn=sys.stderr))
    except OSError as err:
        print(f"cannot read {args.events}: {err.strerror or err}", file=sys.stderr)
        return 2
    result = backtest(events, triggers, args.trigger)
    text = json.dumps(result.to_dict(), indent=2) if args.json else result.table()
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
