"""`nudge keys create --kind write|admin` / `list` / `revoke ID`: API keys.

Through the HTTP API of a running nudge (`--url`, with the admin key), or, with `--table`,
straight in the stack's keys table with your AWS credentials: how the first admin key of
a new deployment is made, when there is no admin key to call the API with yet."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any
from urllib.parse import quote

import typer

from nudge.cli_output import (
    DEFAULT_URL,
    EndpointUrl,
    fail,
    new_app,
    note,
    out_console,
    plain_table,
    print_json,
)

TIMEOUT_S = 30.0

AdminKey = Annotated[
    str | None,
    typer.Option(
        envvar="NUDGE_ADMIN_KEY",
        help="the admin key the API is called with (`nudge dev` prints it)",
        show_default=False,
    ),
]
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


def call(method: str, url: str, admin_key: str | None, body: Any = None) -> Any:
    """One API call with the admin key; a refusal or no answer is the user's to fix."""
    if not admin_key:
        fail("no admin key: pass --admin-key or set NUDGE_ADMIN_KEY (or use --table)")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {admin_key}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            answer = json.loads(err.read())
            message = answer.get("message") or answer.get("error") or str(err)
        except ValueError:
            message = str(err)
        fail(f"{url}: {err.code} {message}")
    except (OSError, ValueError) as err:
        fail(f"no nudge answers at {url}: {err}")


def _direct(table: str) -> Any:
    from nudge.adapters.keys import DynamoKeyAdmin

    return DynamoKeyAdmin(table=table)


def _table_error(err: Exception) -> None:
    from nudge.domain.errors import NudgeError

    if isinstance(err, NudgeError):
        fail(str(err))
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
        try:
            key, info = _direct(table).create(kind, label)
        except Exception as err:
            _table_error(err)
        created = {**info.view(), "key": key}
    else:
        created = call(
            "POST", f"{url.rstrip('/')}/v1/keys", admin_key, {"kind": kind, "label": label}
        )
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
        try:
            keys = [k.view() for k in _direct(table).list()]
        except Exception as err:
            _table_error(err)
    else:
        keys = call("GET", f"{url.rstrip('/')}/v1/keys", admin_key)["keys"]
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
        try:
            revoked = _direct(table).revoke(key_id).view()
        except Exception as err:
            _table_error(err)
    else:
        revoked = call("DELETE", f"{url.rstrip('/')}/v1/keys/{quote(key_id, safe='')}", admin_key)
    if json_output:
        print_json(revoked)
        return
    note(f"{revoked['kind']} key {revoked['id']} revoked (refused everywhere within a minute)")
