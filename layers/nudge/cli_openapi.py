"""`nudge openapi`: writes the OpenAPI document (docs/openapi.json) from the route tables
of the functions behind the HTTP API, or checks that the committed one is current."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nudge import constants as C
from nudge.cli_output import fail

# The functions the HTTP API routes to (infra/constructs/ingest.py, api.py), in the
# document's order.
HTTP_FUNCTIONS = (C.FN_INGEST, C.FN_API)
REGENERATE = "make openapi  (or: nudge openapi)"


def generated() -> str:
    """The document as the handlers' code describes it now."""
    from nudge.local.lambdas import Function
    from nudge.openapi import document, to_json

    apps = [Function.load_module(name).app for name in HTTP_FUNCTIONS]
    return to_json(document(apps))


def default_path() -> Path:
    from nudge.local.lambdas import repo_root

    return repo_root() / "docs" / "openapi.json"


def openapi(
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="where to write it (default: docs/openapi.json)",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="write nothing; exit 1 if the file differs from the code"),
    ] = False,
) -> None:
    """Write docs/openapi.json from the handlers' routes (or check that it is current)."""
    path = Path(output) if output else default_path()
    text = generated()
    if check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            print(f"{path} is out of date with the handlers' routes: run {REGENERATE}")
            raise typer.Exit(1)
        print(f"{path} is up to date")
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        fail(f"cannot write {path}: {err.strerror or err}")
    print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Adds `openapi` to the `nudge` app."""
    app.command("openapi")(openapi)
