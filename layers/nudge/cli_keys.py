"""`nudge keys create --kind write|admin` / `list` / `revoke ID`: API keys.

Through the HTTP API of a running nudge (`--url`, with the admin key), or, with `--table`,
straight in the stack's keys table with your AWS credentials: how the first admin key of
a new deployment is made, when there is no admin key to call the API with yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
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
    out_console,
    plain_table,
    print_json,
)

T = TypeVar("T")

Table = Annotated[
    str | None,
    typer.Option(
        envvar="NUDGE_KEYS_TABLE",
        help="the stack's keys table (its KeysTableName output): work on it directly with "
        "your AWS credentials instead of calling --url",
        show_default=False,
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="print JSON")]

KEYS_EPILOG = """\
Keys are stored only as SHA-256 digests: `create` prints the key once. A revoked key stops
working within a minute (the functions' key cache). The last admin key cannot be revoked.
Exit status: 0; 2 no admin key, no server at --url, an unknown key id, the last admin key.
"""


def register(app: typer.Typer) -> None:
    """Adds `keys` and its subcommands to the `nudge` app."""
    keys = new_app("keys", "Create, list and revoke API keys.")
    keys.command("create", epilog=KEYS_EPILOG)(create_command)
    keys.command("list", epilog=KEYS_EPILOG)(list_command)
    keys.command("revoke", epilog=KEYS_EPILOG)(revoke_command)
    app.add_typer(keys)


def on_table(table: str, do: Callable[[Any], T]) -> T:
    """`do` on the keys table itself (a DynamoKeyAdmin), with your AWS credentials; its
    refusal (an unknown key, the last admin key) or no table is the user's to fix."""
    from nudge.adapters.keys import DynamoKeyAdmin
    from nudge.domain.errors import NudgeError

    try:
        return do(DynamoKeyAdmin(table=table))
    except NudgeError as err:
        fail(str(err))
    except Exception as err:  # any failure of the table is the user's to see
        fail(f"the keys table could not be reached: {err}")


def create_command(
    kind: Annotated[str, typer.Option(help="write (ingest only) or admin (read and manage)")],
    label: Annotated[str, typer.Option(help="what the key is for")] = "",
    url: EndpointUrl = DEFAULT_URL,
    admin_key: AdminKey = None,
    table: Table = None,
    json_output: JsonOutput = False,
) -> None:
    """Create a key and print it (once: only its digest is kept)."""
    if kind not in ("write", "admin"):
        fail(f"--kind must be write or admin, not {kind!r}")
    if table:
        key, info = on_table(table, lambda keys: keys.create(kind, label))
        created = {**info.view(), "key": key}
    else:
        body = {"kind": kind, "label": label}
        created = api_json(f"{url.rstrip('/')}/v1/keys", admin_key, method="POST", body=body)
    if json_output:
        print_json(created)
        return
    out_console().print(created["key"], markup=False, highlight=False)
    note(f"{created['kind']} key {created['id']} created: keep it now, nudge cannot show it again")


def list_command(
    url: EndpointUrl = DEFAULT_URL,
    admin_key: AdminKey = None,
    table: Table = None,
    json_output: JsonOutput = False,
) -> None:
    """List the keys (id, kind, label, created), never the keys themselves."""
    if table:
        keys = [k.view() for k in on_table(table, lambda admin: admin.list())]
    else:
        keys = api_json(f"{url.rstrip('/')}/v1/keys", admin_key)["keys"]
    if json_output:
        print_json({"keys": keys})
        return
    table_out = plain_table("id", "kind", "label", "created")
    for k in keys:
        table_out.add_row(k["id"], k["kind"], k["label"], k["created_at"] or "-")
    out_console().print(table_out)


def revoke_command(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="the key's id (`nudge keys list`)")],
    url: EndpointUrl = DEFAULT_URL,
    admin_key: AdminKey = None,
    table: Table = None,
    json_output: JsonOutput = False,
) -> None:
    """Revoke a key: it stops working within a minute."""
    if table:
        revoked = on_table(table, lambda admin: admin.revoke(key_id)).view()
    else:
        target = f"{url.rstrip('/')}/v1/keys/{quote(key_id, safe='')}"
        revoked = api_json(target, admin_key, method="DELETE")
    if json_output:
        print_json(revoked)
        return
    note(f"{revoked['kind']} key {revoked['id']} revoked (refused everywhere within a minute)")
