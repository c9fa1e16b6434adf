"""`nudge templates render TEMPLATE --user FILE.json` and `nudge templates validate [PATH]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nudge import constants as C
from nudge.cli_output import error, fail, new_app, print_json, print_problems
from nudge.domain.channels import Channel
from nudge.domain.templates import (
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


TemplatesOpt = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        help="templates folder (default: $NUDGE_TEMPLATES_PATH or ./templates)",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Adds `templates` and its subcommands to the `nudge` app."""
    templates = new_app("templates", "Preview and check message templates.")
    templates.command("render", epilog=RENDER_HELP)(render_command)
    templates.command("validate")(validate_command)
    app.add_typer(templates)


def render_command(
    template: Annotated[
        str, typer.Argument(metavar="TEMPLATE", help="template name (templates/NAME.yaml)")
    ],
    user: Annotated[
        str,
        typer.Option(metavar="FILE.json", help="the variables (see below); - for stdin"),
    ],
    channel: Annotated[
        Channel | None,
        typer.Option(
            help="only this channel (default: every channel the template defines)",
            show_default=False,
        ),
    ] = None,
    templates: TemplatesOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help='print {"template", "channels": {channel: {part: text}}}')
    ] = False,
) -> None:
    """Render a template for a user, as delivery would (nothing is sent).

    TEMPLATE with the variables in FILE.json: every part of every channel it defines."""
    args = argparse.Namespace(
        template=template, user=user, channel=channel, templates=templates, json=json_output
    )
    raise typer.Exit(_render(args))


def validate_command(
    path: Annotated[
        str | None,
        typer.Argument(
            metavar="PATH",
            help="a folder or one template file (default: $NUDGE_TEMPLATES_PATH or ./templates)",
            show_default=False,
        ),
    ] = None,
    triggers: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            help="also check that every trigger's template has its action and fallback "
            "channels (default: ./triggers or $NUDGE_TRIGGERS_PATH when it exists; 'none' "
            "to skip)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check templates: syntax, sections, variables.

    Exit status 1 with `file:line: message` per problem (piped; a table on a terminal)."""
    raise typer.Exit(_validate(argparse.Namespace(path=path, triggers=triggers)))


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
        fail(f"cannot read {args.user}: {err.strerror or err}")
    except ValueError as err:  # json.JSONDecodeError included
        fail(f"{args.user}: {err}")
    try:
        channels = [args.channel] if args.channel else list(store.channels(args.template))
        rendered = {ch: store.render(args.template, ch, variables).parts() for ch in channels}
    except TemplateRenderError as err:
        error(f"template error: {err}")
        return 1
    if args.json:
        print_json({"template": args.template, "channels": rendered}, indent=2)
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
        fail(f"{args.triggers}: no such file or folder")
    if not path.exists():
        fail(f"{path}: no such file or folder")
    problems = validate_templates(path, required_channels=required)
    if problems:
        print_problems(problems)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        return 1
    store = TemplateStore(path if path.is_dir() else path.parent)
    names = store.names() if path.is_dir() else [path.stem]
    listing = ", ".join(f"{n} ({' '.join(store.channels(n))})" for n in names)
    print(f"ok: {len(names)} template{'s' if len(names) != 1 else ''}: {listing or 'none'}")
    return 0
