"""`nudge report`: the reports of the HTTP API (docs/measurement.md) as terminal tables or
JSON. `nudge report experiment ID` reads `GET /v1/experiments/{id}` with the admin key."""

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
    out_console,
    plain_table,
    print_json,
)

TIMEOUT_S = 60.0

EXPERIMENT_EPILOG = """\
Output: one row per variant (users, conversions, rate with its 95 % Wilson interval, lift
and p-value against the control), then the sample-ratio-mismatch p-value and the users
still needed for the experiment's minimum detectable effect. With --json the API's
document `{"experiment", "goal", "variants": [...], "srm_p_value", "metrics"}`.
Exit status: 0; 2 no admin key, no server at --url, or an unknown experiment.
"""


def register(app: typer.Typer) -> None:
    """Adds `report` and its subcommands to the `nudge` app."""
    report = new_app("report", "Experiment and engagement reports (admin key).")
    report.command("experiment", epilog=EXPERIMENT_EPILOG)(experiment_command)
    report.command("triggers", epilog=TRIGGERS_EPILOG)(triggers_command)
    app.add_typer(report)


def get_json(url: str, admin_key: str) -> Any:
    """GET with the admin key; a refusal or no answer is the user's to fix (exit 2)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {admin_key}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            body = json.loads(err.read())
            message = body.get("message") or body.get("error") or str(err)
        except ValueError:
            message = str(err)
        fail(f"{url}: {err.code} {message}")
    except (OSError, ValueError) as err:
        fail(f"no nudge answers at {url}: {err}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_experiment(report: dict[str, Any]) -> None:
    """The report as a table, with its SRM check and sample size below."""
    console = out_console()
    goal = report.get("goal") or {}
    hours = (goal.get("within_seconds") or 0) / 3600
    console.print(
        f"{report['experiment']}: goal {goal.get('event')} within {hours:g} h", markup=False
    )
    table = plain_table(
        "variant", "users", "conversions", "rate", "95 % CI", "lift", "p", right=(1, 2, 3, 5, 6)
    )
    for v in report["variants"]:
        ci = "-" if v["ci_low"] is None else f"{_pct(v['ci_low'])} - {_pct(v['ci_high'])}"
        table.add_row(
            v["name"],
            str(v["users"]),
            str(v["conversions"]),
            _pct(v["conversion_rate"]),
            ci,
            _pct(v["lift"]),
            _p(v["p_value"]),
        )
    console.print(table)
    metrics = report.get("metrics") or {}
    srm = report.get("srm_p_value")
    flag = "  (below 0.001: the split is broken)" if srm is not None and srm < 0.001 else ""
    console.print(f"control: {metrics.get('control')}; SRM p-value: {_p(srm)}{flag}", markup=False)
    size = metrics.get("sample_size")
    if size:
        console.print(
            f"to detect {size['minimum_detectable_effect']:g} absolute at alpha 0.05, power 0.8:"
            f" {size['remaining_exposures']} more exposures ("
            + ", ".join(f"{k} {n}" for k, n in size["still_needed"].items())
            + " still needed)",
            markup=False,
        )


def experiment_command(
    experiment_id: Annotated[str, typer.Argument(metavar="ID", help="the experiment's id")],
    url: EndpointUrl = DEFAULT_URL,
    admin_key: Annotated[
        str | None,
        typer.Option(
            envvar="NUDGE_ADMIN_KEY",
            help="the admin key (`nudge dev` prints it)",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """An experiment's report: users, conversions, lift and tests per variant."""
    if not admin_key:
        fail("no admin key: pass --admin-key or set NUDGE_ADMIN_KEY")
    report = get_json(
        f"{url.rstrip('/')}/v1/experiments/{quote(experiment_id, safe='')}", admin_key
    )
    if json_output:
        print_json(report)
    else:
        print_experiment(report)


TRIGGERS_EPILOG = """\
Output: one row per trigger over the last N UTC days (today included): fired (episodes
with an action), sent, response rate (opened, clicked, read or tapped), conversion rate
(the goal within the window after a send), engagement seconds after a send, retention
versus holdout, and the days flagged as anomalies. With --json the API's document
`{"triggers": [{"id", "fired", "sent", "response_rate", "conversion_rate",
"engagement_seconds", "retention_vs_holdout", "daily": [...]}]}`.
Exit status: 0; 2 no admin key, no server at --url, or days outside 1 to 365.
"""


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _points(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.2f} pp"


def print_triggers(report: dict[str, Any]) -> None:
    """The report as a table, one row per trigger, its anomalous days after it."""
    console = out_console()
    table = plain_table(
        "trigger",
        "fired",
        "sent",
        "response",
        "conversion",
        "engagement",
        "retention vs holdout",
        "anomalies",
        right=(1, 2, 3, 4, 5, 6),
    )
    for t in report["triggers"]:
        flagged = [d["date"] for d in t.get("daily") or [] if d.get("anomaly")]
        table.add_row(
            t["id"],
            str(t["fired"]),
            str(t["sent"]),
            _pct(t["response_rate"]),
            _pct(t["conversion_rate"]),
            _seconds(t["engagement_seconds"]),
            _points(t["retention_vs_holdout"]),
            ", ".join(flagged) or "-",
        )
    console.print(table)


def triggers_command(
    days: Annotated[
        int,
        typer.Option(min=1, max=365, help="the UTC days reported, ending today"),
    ] = 28,
    url: EndpointUrl = DEFAULT_URL,
    admin_key: Annotated[
        str | None,
        typer.Option(
            envvar="NUDGE_ADMIN_KEY",
            help="the admin key (`nudge dev` prints it)",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """Per trigger: fired, sent, response, conversion, engagement, retention vs holdout."""
    if not admin_key:
        fail("no admin key: pass --admin-key or set NUDGE_ADMIN_KEY")
    report = get_json(f"{url.rstrip('/')}/v1/reports/triggers?days={days}", admin_key)
    if json_output:
        print_json(report)
    else:
        print_triggers(report)
