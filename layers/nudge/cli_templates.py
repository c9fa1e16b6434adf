"""`nudge templates render TEMPLATE --user FILE.json` and `nudge templates validate [PATH]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from nudge import constants as C
from nudge.domain.templates import (
    CHANNELS,
    TemplateRenderError,
    TemplateStore,
    build_variables,
    validate_templates,
)

PREVIEW_UNSUBSCRIBE_URL = "https://nudge.example/v1/unsubscribe?token=preview"

RENDER_HELP = f"""\
FILE.json (or - for stdin) is one JSON object, either

1. the template variables themselves (an object with "user"):
     user             {{"id", "traits": {{...}}, "segment": str|null}}
     traits           the same as user.traits      (taken from user when absent)
     event            {{"name", "properties": {{...}}}}
     properties       the same as event.properties (taken from event when absent)
     cart             [{{"product_id", "qty", "name"?, "price"?, "currency"?, "url"?, ...}}]
     product          {{"product_id", "name"?, "price"?, "url"?, ...}} or null
     recommendations  [{{"item_id", "score", "name"?, ...}}]
     segment          str or null                  (taken from user when absent)
     unsubscribe_url  str (email; must not be empty there)
     trigger          the trigger id
     variant          str or null
     app_url          base URL of the shop, may be ""
   Anything else missing is an error, as it would be when delivering.

2. a user profile (an object with "user_id", e.g. the output of GET /v1/users/ID):
   user_id, traits, segment and cart are used; event, product, recommendations,
   unsubscribe_url, variant and app_url are taken from the object when present, else
   empty (unsubscribe_url: {PREVIEW_UNSUBSCRIBE_URL}).

Exit status: 0 rendered, 1 template error (the reason names template, part and
variable), 2 unreadable FILE.json.
"""


def default_templates_path() -> Path:
    """NUDGE_TEMPLATES_PATH when set, else ./templates."""
    return Path(os.environ.get(C.ENV_TEMPLATES_PATH) or "templates")


def register(subparsers: Any) -> None:
    """Adds `templates` and its subcommands to the `nudge` parser."""
    templates = subparsers.add_parser("templates", help="preview and check message templates")
    sub = templates.add_subparsers(dest="templates_command", required=True)

    render = sub.add_parser(
        "render",
        help="render a template for a user, as delivery would (nothing is sent)",
        description="Render TEMPLATE with the variables in FILE.json and print every part.",
        epilog=RENDER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render.add_argument("template", metavar="TEMPLATE", help="template name (templates/NAME.yaml)")
    render.add_argument(
        "--user", required=True, metavar="FILE.json", help="the variables (see below); - for stdin"
    )
    render.add_argument(
        "--channel",
        choices=CHANNELS,
        default=None,
        help="only this channel (default: every channel the template defines)",
    )
    render.add_argument(
        "--templates",
        default=None,
        metavar="PATH",
        help="templates folder (default: $NUDGE_TEMPLATES_PATH or ./templates)",
    )
    render.add_argument("--json", action="store_true", help="print {channel: {part: text}} as JSON")
    render.set_defaults(func=_render)

    validate = sub.add_parser(
        "validate",
        help="check templates: syntax, sections, variables; exit 1 with file:line: message each",
    )
    validate.add_argument(
        "path",
        nargs="?",
        default=None,
        help="a folder or one template file (default: $NUDGE_TEMPLATES_PATH or ./templates)",
    )
    validate.add_argument(
        "--triggers",
        default=None,
        metavar="PATH",
        help="also check that every trigger's template has its action and fallback channels "
        "(default: ./triggers or $NUDGE_TRIGGERS_PATH when it exists; 'none' to skip)",
    )
    validate.set_defaults(func=_validate)


def variables_from_json(data: Any, template: str) -> dict[str, Any]:
    """The template variables from FILE.json: the contract itself (with "user") or a
    profile-like object (with "user_id"). ValueError when it is neither."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if isinstance(data.get("user"), dict):
        variables = dict(data)
        user = data["user"]
        if "traits" not in variables and "traits" in user:
            variables["traits"] = user["traits"]
        if "segment" not in variables and "segment" in user:
            variables["segment"] = user["segment"]
        event = data.get("event")
        if "properties" not in variables and isinstance(event, dict) and "properties" in event:
            variables["properties"] = event["properties"]
        return variables
    if "user_id" in data:
        return build_variables(
            user_id=str(data["user_id"]),
            traits=data.get("traits") or {},
            segment=data.get("segment"),
            trigger=str(data.get("trigger") or template),
            event=data.get("event"),
            cart=data.get("cart") or [],
            product=data.get("product"),
            recommendations=data.get("recommendations") or [],
            unsubscribe_url=data.get("unsubscribe_url") or PREVIEW_UNSUBSCRIBE_URL,
            variant=data.get("variant"),
            app_url=data.get("app_url") or "",
        )
    raise ValueError(
        'expected the template variables (an object with "user") or a user profile '
        '(an object with "user_id"); see `nudge templates render --help`'
    )


def _read_json(name: str) -> Any:
    if name == "-":
        return json.load(sys.stdin)
    with open(name, encoding="utf-8") as stream:
        return json.load(stream)


def _render(args: argparse.Namespace) -> int:
    store = TemplateStore(Path(args.templates) if args.templates else default_templates_path())
    try:
        variables = variables_from_json(_read_json(args.user), args.template)
    except OSError as err:
        print(f"cannot read {args.user}: {err.strerror or err}", file=sys.stderr)
        return 2
    except ValueError as err:  # json.JSONDecodeError included
        print(f"{args.user}: {err}", file=sys.stderr)
        return 2
    try:
        channels = [args.channel] if args.channel else list(store.channels(args.template))
        rendered = {ch: store.render(args.template, ch, variables).parts() for ch in channels}
    except TemplateRenderError as err:
        print(f"template error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"template": args.template, "channels": rendered}, indent=2))
        return 0
    for number, (channel, parts) in enumerate(rendered.items()):
        if number:
            print()
        print(f"=== {args.template} / {channel} ===")
        for part, text in parts.items():
            if "\n" in text:
                print(f"--- {part} ---\n{text}")
            else:
                print(f"{part}: {text}")
    return 0


def _required_channels(option: str | None, templates: Path) -> dict[str, set[str]] | None:
    """template -> channels the triggers send it on; None when there are no triggers to
    check against (or they do not load: `nudge triggers validate` reports that)."""
    from nudge.domain.triggers.loader import DefinitionError, default_triggers_path, load_triggers

    if option == "none":
        return None
    path = Path(option) if option else default_triggers_path()
    if not path.exists():
        if option:
            raise FileNotFoundError(option)
        return None
    try:
        triggers = load_triggers(path, templates_dir=templates if templates.is_dir() else None)
    except DefinitionError:
        print(f"note: {path} does not load (see `nudge triggers validate`)", file=sys.stderr)
        return None
    required: dict[str, set[str]] = {}
    for trigger in triggers:
        channels = required.setdefault(trigger.action.template, set())
        channels.add(trigger.action.channel)
        if trigger.action.fallback:
            channels.add(trigger.action.fallback)
    return required


def _validate(args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else default_templates_path()
    try:
        required = _required_channels(args.triggers, path if path.is_dir() else path.parent)
    except FileNotFoundError:
        print(f"{args.triggers}: no such file or folder", file=sys.stderr)
        return 2
    problems = validate_templates(path, required_channels=required)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        return 1
    store = TemplateStore(path if path.is_dir() else path.parent)
    names = store.names() if path.is_dir() else [path.stem]
    listing = ", ".join(f"{n} ({' '.join(store.channels(n))})" for n in names)
    print(f"ok: {len(names)} template{'s' if len(names) != 1 else ''}: {listing or 'none'}")
    return 0
