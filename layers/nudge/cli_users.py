"""`nudge users export USER_ID`: everything nudge holds of a user as one JSON document
(GDPR's right of access), through the HTTP API of a running nudge (`--url`, with the admin
key): `GET /v1/users/{userId}/export`, its pages of archived events followed and joined,
so that the document is whole (`events_next` null)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from nudge.cli_output import (
    DEFAULT_URL,
    AdminKey,
    EndpointUrl,
    api_json,
    fail,
    new_app,
    note,
    print_json,
)

MAX_PAGES = 10_000  # 10 million events: a cursor that never ends is a bug, not a user

USERS_EPILOG = """\
The document: `user_id`, `exported_at`, `ids` (the user's and those merged into it),
`profile` (as `GET /v1/users/{userId}` shows it), `stored_profile` (the document as kept),
`inbox`, `deliveries` (with the address, subject and body kept), `devices`,
`suppressed_addresses` and `events` (every archived event of the ids, oldest first).
Exit status: 0; 2 no admin key, no server at --url, an unknown user.
"""


def register(app: typer.Typer) -> None:
    """Adds `users` and its subcommands to the `nudge` app."""
    users = new_app("users", "A user's data: export it (GDPR access).")
    users.command("export", epilog=USERS_EPILOG)(export_command)
    app.add_typer(users)


def export_document(url: str, admin_key: str | None, user_id: str) -> dict[str, Any]:
    """The export of `user_id`, every page of its events joined."""
    base = f"{url.rstrip('/')}/v1/users/{quote(user_id, safe='')}/export"
    doc: dict[str, Any] = api_json(base, admin_key)
    pages = 1
    while doc.get("events_next"):
        if pages >= MAX_PAGES:
            fail(f"{base}: more than {MAX_PAGES} pages of events")
        page = api_json(f"{base}?after={quote(str(doc['events_next']), safe='')}", admin_key)
        doc["events"].extend(page["events"])
        doc["events_next"] = page["events_next"]
        pages += 1
    return doc


def export_command(
    user_id: Annotated[str, typer.Argument(metavar="USER_ID", help="the user's id (any of them)")],
    url: EndpointUrl = DEFAULT_URL,
    admin_key: AdminKey = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write the document to this file, not stdout"),
    ] = None,
) -> None:
    """Print everything nudge holds of a user as one JSON document."""
    doc = export_document(url, admin_key, user_id)
    if output is None:
        print_json(doc, indent=2)
        return
    output.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    note(f"{output}: {len(doc['ids'])} ids, {len(doc['events'])} archived events")
