"""`nudge report`: the reports of the HTTP API (docs/measurement.md) as terminal tables or
JSON. `nudge report experiment ID` reads `GET /v1/experiments/{id}` with the admin key."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import typer

from nudge.cli_output import (
    DEFAULT_URL,
    AdminKey,
    EndpointUrl,
    api_json,
    new_app,
    out_console,
    plain_table,
    print_json,
)

JsonOutput = Annotated[bool, typer.Option("--json", help="print the API's JSON")]

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
    report.command("cohorts", epilog=COHORTS_EPILOG)(cohorts_command)
    report.command("funnel", epilog=FUNNEL_EPILOG)(funnel_command)
    report.command("triggers", epilog=TRIGGERS_EPILOG)(triggers_command)
    app.add_typer(report)


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
    admin_key: AdminKey = None,
    json_output: JsonOutput = False,
) -> None:
    """An experiment's report: users, conversions, lift and tests per variant."""
    report = api_json(
        f"{url.rstrip('/')}/v1/experiments/{quote(experiment_id, safe='')}", admin_key
    )
    if json_output:
        print_json(report)
    else:
        print_experiment(report)


# ---- cohorts and funnels (GET /v1/reports/cohorts, /v1/reports/funnel) -------------------

COHORTS_EPILOG = """\
Output: one row per cohort (the week or month of its users' first event), its size, then
the share of it active in each later period up to the current one (+0 is the cohort
period itself: 100 %), shaded like a heatmap on a terminal. With --json the API's
document `{"period", "cohorts": [{"cohort", "size", "retention"}], ...}`.
Exit status: 0; 2 no admin key, no server at --url, or a bad parameter.
"""

FUNNEL_EPILOG = """\
Output: one row per step (users who reached it in order within --within of the first
step, conversion from step 1, drop-off from the previous step, a bar), then with --by
one row per segment or variant. With --json the API's document `{"steps": [{"event",
"users", "conversion", "drop_off"}], "groups": {...}, ...}`.
Exit status: 0; 2 no admin key, no server at --url, or a bad parameter (fewer than 2
steps, a bad duration, several experiments and no --experiment).
"""


class CohortPeriod(StrEnum):
    week = "week"
    month = "month"


class FunnelBy(StrEnum):
    segment = "segment"
    variant = "variant"


def report_url(url: str, path: str, params: dict[str, str | None]) -> str:
    """`url` + `path` + the query string of the parameters given (spaces as %20)."""
    given = {k: v for k, v in params.items() if v is not None}
    query = urlencode(given, quote_via=quote, safe=",")
    return f"{url.rstrip('/')}{path}" + (f"?{query}" if query else "")


def _shade(value: float) -> str:
    """A heatmap cell's style: darker for a higher share (on a terminal; piped, none)."""
    low, high = (235, 245, 255), (8, 69, 148)  # light to dark blue
    r, g, b = (round(lo + (hi - lo) * value) for lo, hi in zip(low, high, strict=True))
    text = "white" if value > 0.45 else "black"
    return f"{text} on rgb({r},{g},{b})"


def print_cohorts(report: dict[str, Any]) -> None:
    """The cohorts as a retention table, one column per period after the cohort's."""
    from rich.text import Text

    console = out_console()
    cohorts = report.get("cohorts") or []
    what = f"with {report['event']}" if report.get("event") else "active"
    console.print(
        f"cohorts by {report['period']} (share {what} in each later {report['period']},"
        f" up to {report.get('current')})",
        markup=False,
    )
    if not cohorts:
        console.print("no events in the archive", markup=False)
        return
    width = max(len(c["retention"]) for c in cohorts)
    table = plain_table(
        "cohort", "size", *(f"+{k}" for k in range(width)), right=tuple(range(1, width + 2))
    )
    for c in cohorts:
        cells: list[Text | str] = [c["cohort"], str(c["size"])]
        for value in c["retention"]:
            cells.append(Text(f"{100 * value:.1f} %", style=_shade(value)))
        cells += [""] * (width - len(c["retention"]))
        table.add_row(*cells)
    console.print(table)


def _bar(value: float | None, width: int = 30) -> str:
    return "" if value is None else "█" * round(value * width)


def print_funnel(report: dict[str, Any]) -> None:
    """The steps with their conversion bars; then, split by segment or variant, the users
    (and conversion) of each group at each step."""
    console = out_console()
    steps = report["steps"]
    title = f"funnel within {report.get('within')} of the first step"
    if report.get("experiment"):
        title += f" (variants of {report['experiment']})"
    console.print(title, markup=False)
    table = plain_table("step", "event", "users", "conversion", "drop-off", "", right=(2, 3, 4))
    for k, s in enumerate(steps, start=1):
        table.add_row(
            str(k),
            s["event"],
            str(s["users"]),
            _pct(s["conversion"]),
            _pct(s["drop_off"]),
            _bar(s["conversion"]),
        )
    console.print(table)
    groups = report.get("groups") or {}
    if not groups:
        return
    console.print(f"by {report.get('by')}:", markup=False)
    split = plain_table(
        report.get("by") or "group",
        *(f"{k}. {s['event']}" for k, s in enumerate(steps, start=1)),
        right=tuple(range(1, len(steps) + 1)),
    )
    for name, group in groups.items():
        split.add_row(
            name,
            *(
                f"{g['users']} ({_pct(g['conversion'])})" if k else str(g["users"])
                for k, g in enumerate(group["steps"])
            ),
        )
    console.print(split)


def cohorts_command(
    period: Annotated[
        CohortPeriod, typer.Option(help="ISO weeks (2026-W03) or months (2026-01)")
    ] = CohortPeriod.week,
    event: Annotated[
        str | None,
        typer.Option(help="retention counts this event only (default: any activity)"),
    ] = None,
    url: EndpointUrl = DEFAULT_URL,
    admin_key: AdminKey = None,
    json_output: JsonOutput = False,
) -> None:
    """Retention of each cohort of users, by the week or month of their first event."""
    report = api_json(
        report_url(url, "/v1/reports/cohorts", {"period": period.value, "event": event}),
        admin_key,
    )
    if json_output:
        print_json(report)
    else:
        print_cohorts(report)


def funnel_command(
    steps: Annotated[
        str,
        typer.Option(help="the steps' event names, in order, comma-separated: A,B,C"),
    ],
    within: Annotated[
        str, typer.Option(help="each step within this long of the first: 30m, 48h, 7d")
    ] = "7d",
    by: Annotated[
        FunnelBy | None, typer.Option(help="also split by segment or experiment variant")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="with --by variant: the experiment (needed when there are several)"),
    ] = None,
    url: EndpointUrl = DEFAULT_URL,
    admin_key: AdminKey = None,
    json_output: JsonOutput = False,
) -> None:
    """Users who did the steps in order within a window, with drop-off per step."""
    params = {
        "steps": steps,
        "within": within,
        "by": by.value if by else None,
        "experiment": experiment,
    }
    report = api_json(report_url(url, "/v1/reports/funnel", params), admin_key)
    if json_output:
        print_json(report)
    else:
        print_funnel(report)


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
    admin_key: AdminKey = None,
    json_output: JsonOutput = False,
) -> None:
    """Per trigger: fired, sent, response, conversion, engagement, retention vs holdout."""
    report = api_json(f"{url.rstrip('/')}/v1/reports/triggers?days={days}", admin_key)
    if json_output:
        print_json(report)
    else:
        print_triggers(report)
