"""`nudge openapi`: writes the OpenAPI document (docs/openapi.json) from the route tables
of the functions behind the HTTP API, or checks that the committed one is current."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nudge import constants as C

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


def _run(args: argparse.Namespace) -> int:
    path = Path(args.output) if args.output else default_path()
    text = generated()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            print(f"{path} is out of date with the handlers' routes: run {REGENERATE}")
            return 1
        print(f"{path} is up to date")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("openapi", help="write docs/openapi.json from the handlers' routes")
    p.add_argument("--output", "-o", default=None, help="where (default: docs/openapi.json)")
    p.add_argument("--check", action="store_true", help="exit 1 if the file differs from the code")
    p.set_defaults(func=_run)
