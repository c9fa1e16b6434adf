"""`nudge tracking validate [PATH]`: checks a tracking plan before it is deployed (the
ingest function refuses to start with a plan that does not load)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nudge.cli_output import fail, new_app
from nudge.domain.tracking import TrackingPlanError, load_plan

PlanPath = Annotated[
    str | None,
    typer.Argument(
        help="a tracking-plan YAML file or folder (default: ./tracking-plan)", show_default=False
    ),
]


def validate_command(path: PlanPath = None) -> None:
    """Check a tracking plan: its YAML, modes and JSON Schemas.

    Exit status 1 with `file[:line]: message` on the first error."""
    where = Path(path) if path else Path("tracking-plan")
    if not where.exists():
        fail(f"{where}: no such file or folder")
    try:
        plan = load_plan(where)
    except TrackingPlanError as err:
        fail(str(err), code=1)
    if plan is None:
        fail(f"{where}: no tracking plan (*.yaml) there")
    names = ", ".join(sorted(plan.events)) or "none"
    identify = " and identify" if plan.identify is not None else ""
    print(
        f"ok: {len(plan.events)} event{'s' if len(plan.events) != 1 else ''}{identify} "
        f"planned, mode {plan.mode}, unplanned events {plan.unplanned} ({names})"
    )


def register(app: typer.Typer) -> None:
    """Adds `tracking` and its subcommands to the `nudge` app."""
    tracking = new_app("tracking", "Check the tracking plan that ingest validates events with.")
    tracking.command("validate")(validate_command)
    app.add_typer(tracking)
