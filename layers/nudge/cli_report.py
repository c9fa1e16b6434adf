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
and p-value against the control, the sequential test's always-valid p-value and verdict:
continue, variant_better, variant_worse or inconsistent), then the sample-ratio-mismatch
p-value and the users still needed for the experiment's minimum detectable effect; then
per metric (conversion, revenue, engagement) and variant the difference with its 95 %
interval, p-value, Holm-adjusted p-value and sequential verdict, and CUPED's adjusted
difference with the variance it leaves (docs/measurement.md). With --json the API's
document `{"experiment", "goal", "variants": [...], "srm_p_value", "metrics"}`.
Exit status: 0; 2 no admin key, no server at --url, or an unknown experiment.
"""


def register(app: typer.Typer) -> None:
    """Adds `report` and its subcommands to the `nudge` app."""
    report = new_app("report", "Experiment and engagement reports (admin key).")
    report.command("experiment", epilog=EXPERIMENT_EPILOG)(experiment_command)
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


def _diff(metric: str, value: float | None) -> str:
    """A difference: of rates in percentage points, of other metrics as it is."""
    if value is None:
        return "-"
    return f"{100 * value:+.2f} pts" if metric == "conversion" else f"{value:+.4g}"


def _interval(metric: str, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{_diff(metric, low)} to {_diff(metric, high)}"


def _mean(metric: str, value: float | None) -> str:
    return _pct(value) if metric == "conversion" else ("-" if value is None else f"{value:.4g}")


def print_metrics(metrics: dict[str, Any]) -> None:
    """Each metric's comparisons (fixed-horizon, Holm, sequential), then CUPED's."""
    console = out_console()
    names = [m for m in ("conversion", "revenue", "engagement") if isinstance(metrics.get(m), dict)]
    if not names:
        return
    control = metrics.get("control")
    tests = plain_table(
        "metric", "variant", "mean", "control", "difference", "95 % CI", "p", "Holm p",
        "seq. p", "verdict", right=(2, 3, 4, 6, 7, 8),
    )  # fmt: skip
    cuped = plain_table(
        "CUPED", "variant", "difference", "95 % CI", "p", "variance", right=(2, 4, 5)
    )
    for name in names:
        rows = metrics[name].get("variants") or []
        base = next((r for r in rows if r.get("name") == control), None)
        for row in rows:
            if row.get("name") == control:
                continue
            seq = row.get("sequential") or {}
            tests.add_row(
                name,
                row["name"],
                _mean(name, row.get("mean")),
                _mean(name, base.get("mean") if base else None),
                _diff(name, row.get("difference")),
                _interval(name, row.get("ci_low"), row.get("ci_high")),
                _p(row.get("p_value")),
                _p(row.get("p_value_holm")),
                _p(seq.get("p_value")),
                seq.get("verdict") or "-",
            )
            c = row.get("cuped")
            if c:
                ratio = c.get("variance_ratio")
                cuped.add_row(
                    name,
                    row["name"],
                    _diff(name, c.get("difference")),
                    _interval(name, c.get("ci_low"), c.get("ci_high")),
                    _p(c.get("p_value")),
                    "-" if ratio is None else f"x{ratio:.2f}",
                )
    console.print(tests)
    if cuped.row_count:
        days = (metrics.get("methods") or {}).get("cuped_pre_exposure_days")
        console.print(cuped)
        console.print(
            f"CUPED: adjusted by each user's same metric in the {days} days before exposure;"
            " variance: of the adjusted difference, as a share of the plain one's",
            markup=False,
        )


def print_experiment(report: dict[str, Any]) -> None:
    """The report as a table, with its SRM check, sample size and metrics below."""
    console = out_console()
    goal = report.get("goal") or {}
    hours = (goal.get("within_seconds") or 0) / 3600
    console.print(
        f"{report['experiment']}: goal {goal.get('event')} within {hours:g} h", markup=False
    )
    table = plain_table(
        "variant", "users", "conversions", "rate", "95 % CI", "lift", "p", "seq. p", "verdict",
        right=(1, 2, 3, 5, 6, 7),
    )  # fmt: skip
    for v in report["variants"]:
        ci = "-" if v["ci_low"] is None else f"{_pct(v['ci_low'])} - {_pct(v['ci_high'])}"
        seq = v.get("sequential") or {}
        table.add_row(
            v["name"],
            str(v["users"]),
            str(v["conversions"]),
            _pct(v["conversion_rate"]),
            ci,
            _pct(v["lift"]),
            _p(v["p_value"]),
            _p(seq.get("p_value")),
            seq.get("verdict") or "-",
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
    print_metrics(metrics)


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
