"""Cohort retention (`GET /v1/reports/cohorts`) and ordered funnels (`GET
/v1/reports/funnel`): SQL over the archive's view `events` (DuckDB's dialect, the same
text transpiled for Athena by nudge.adapters.query_athena), run by the QueryEngine port;
the small aggregates it returns are shaped into the report in plain Python.

Definitions (docs/measurement.md, "Cohorts" and "Funnels"; D31):

Cohorts. A user is an archived `user_id`. Their activity is every archived event but
those nudge writes about its own sending (`SYSTEM_EVENTS`: exposures, deliveries,
bounces). Their cohort is the period (UTC ISO week, Monday first, labelled `2026-W03`;
or calendar month, `2026-01`) of their first activity in event time, `/v1/import`
history included. `retention[0]` is 1.0 (the cohort period itself); `retention[k]`, k >=
1, is the share of the cohort with activity (with an event named NAME when `event` is
given) in period cohort + k; the list runs to the current period (the clock's), so an
older cohort has a longer list, and its last value is of a period still under way.

Funnels. A user's events named in the steps are put in one order: event time, then the
position of the name in the steps (events at the same instant count in step order), then
messageId. A funnel is a subsequence of that order: step 1 is an occurrence of the first
name, each later step the next name at a later position, and every step within `within`
of step 1's time (inclusive). From each occurrence of step 1 the earliest matching event
is taken for each next step (greedy; no other choice gets further before the deadline);
a user reaches the furthest step any of their step-1 occurrences leads to (the first
such occurrence is theirs). `users` at step k counts the users who reached it;
`conversion` = users(k) / users(1); `drop_off` = 1 - users(k) / users(k - 1), the share
of the previous step's users who did not reach this one (null for step 1, and where the
previous step has no user).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from nudge.domain.clock import utc
from nudge.domain.errors import ValidationFailedError
from nudge.domain.experiment_report import sql_string
from nudge.domain.outcomes import NUDGE_EVENTS
from nudge.domain.tracking import VIOLATION_GENERATED
from nudge.domain.triggers.durations import DurationError, format_duration, parse_duration

if TYPE_CHECKING:
    from nudge.domain.ports import ProfileStore, QueryEngine

Period = Literal["week", "month"]
PERIODS: tuple[Period, ...] = ("week", "month")
GROUPINGS = ("segment", "variant")
EXPERIMENT_VIEWED = "Experiment Viewed"
# What nudge archives about its own sending (nudge.domain.outcomes) and the tracking
# plan's violations: no user did it, so it starts no cohort and retains no one (unless
# asked for by name with `event`).
SYSTEM_EVENTS: tuple[str, ...] = (*NUDGE_EVENTS, VIOLATION_GENERATED)
MAX_STEPS = 10
MAX_NAME_CHARS = 256  # an event name, as ingest bounds them
NO_GROUP = "none"  # the group of a user without a segment, or never exposed
LOOKUP_CHUNK = 1000  # user ids per call of the segment lookup

SegmentLookup = Callable[[Sequence[str]], Mapping[str, str | None]]


def _problem(parameter: str, message: str) -> dict[str, str]:
    return {"parameter": parameter, "message": message}


def _refuse(problems: list[dict[str, str]]) -> None:
    if problems:
        raise ValidationFailedError(
            "; ".join(f"{p['parameter']}: {p['message']}" for p in problems), problems
        )


def _event_name(value: str, parameter: str, problems: list[dict[str, str]]) -> str:
    name = value.strip()
    if not name:
        problems.append(_problem(parameter, "an event name cannot be empty"))
    elif len(name) > MAX_NAME_CHARS or "\x00" in name:
        problems.append(_problem(parameter, f"not an event name (at most {MAX_NAME_CHARS} chars)"))
    return name


# ---- cohorts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortQuery:
    period: Period = "week"
    event: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str] | None) -> CohortQuery:
        """The query string's `period` (week | month, default week) and `event`;
        ValidationFailedError (400) naming each bad parameter."""
        params = params or {}
        problems: list[dict[str, str]] = []
        period = params.get("period", "week").strip().lower()
        if period not in PERIODS:
            problems.append(_problem("period", f"{period!r} is not week or month"))
        event = None
        if "event" in params:
            event = _event_name(params["event"], "event", problems)
        _refuse(problems)
        return cls("month" if period == "month" else "week", event)


def period_start(at: date | datetime, period: Period) -> date:
    """The first day of the (UTC) ISO week or month holding `at`."""
    day = utc(at).date() if isinstance(at, datetime) else at
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_label(start: date, period: Period) -> str:
    """`2026-W03` (ISO week-numbering year and week) or `2026-01`."""
    if period == "week":
        iso = start.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    return f"{start.year:04d}-{start.month:02d}"


def periods_between(first: date, later: date, period: Period) -> int:
    """How many periods `later` (a period start) is after `first` (one too)."""
    if period == "week":
        return (later - first).days // 7
    return (later.year - first.year) * 12 + later.month - first.month


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def cohorts_sql(period: Period, event: str | None = None) -> str:
    """DuckDB SQL over `events`: rows (cohort start, NULL, size) per cohort, and (cohort
    start, period start, users active in it) per cohort and later period with activity."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    system = ", ".join(sql_string(e) for e in SYSTEM_EVENTS)
    if event is None:
        active_source = "SELECT user_id, event_at FROM activity"
    else:
        active_source = (
            'SELECT user_id, "timestamp" AS event_at FROM events '
            f'WHERE user_id IS NOT NULL AND "timestamp" IS NOT NULL AND event = {sql_string(event)}'
        )
    return f"""
WITH activity AS (
    SELECT user_id, "timestamp" AS event_at
    FROM events
    WHERE user_id IS NOT NULL AND "timestamp" IS NOT NULL
      AND (event IS NULL OR event NOT IN ({system}))
),
firsts AS (
    SELECT user_id, CAST(date_trunc('{period}', min(event_at)) AS DATE) AS cohort
    FROM activity
    GROUP BY user_id
),
active AS (
    SELECT DISTINCT user_id, CAST(date_trunc('{period}', event_at) AS DATE) AS period
    FROM ({active_source}) AS source
)
SELECT f.cohort AS cohort, CAST(NULL AS DATE) AS period, count(*) AS users
FROM firsts AS f
GROUP BY f.cohort
UNION ALL
SELECT f.cohort AS cohort, a.period AS period, count(*) AS users
FROM firsts AS f
JOIN active AS a ON a.user_id = f.user_id
WHERE a.period >= f.cohort
GROUP BY f.cohort, a.period
"""


def build_cohorts(
    rows: Iterable[Sequence[Any]], query: CohortQuery, now: datetime
) -> dict[str, Any]:
    """The report from `cohorts_sql`'s rows, its lists running to the period of `now`."""
    sizes: dict[date, int] = {}
    active: dict[date, dict[int, int]] = defaultdict(dict)
    for cohort_value, period_value, users in rows:
        cohort = _as_date(cohort_value)
        if period_value is None:
            sizes[cohort] = int(users)
        else:
            k = periods_between(cohort, _as_date(period_value), query.period)
            active[cohort][k] = int(users)
    current = period_start(now, query.period)
    cohorts = []
    for cohort in sorted(sizes):
        size = sizes[cohort]
        length = max(0, periods_between(cohort, current, query.period)) + 1
        retained = [size] + [active[cohort].get(k, 0) for k in range(1, length)]
        entry: dict[str, Any] = {
            "cohort": period_label(cohort, query.period),
            "size": size,
            "retention": [1.0] + [n / size for n in retained[1:]],
            "retained": retained,
            "start": cohort.isoformat(),
        }
        if query.event is not None:
            entry["event_users_in_cohort_period"] = active[cohort].get(0, 0)
        cohorts.append(entry)
    return {
        "period": query.period,
        "event": query.event,
        "current": period_label(current, query.period),
        "cohorts": cohorts,
    }


def cohort_report(query: CohortQuery, engine: QueryEngine, *, now: datetime) -> dict[str, Any]:
    """`{"period", "cohorts": [{"cohort", "size", "retention"}], ...}` from the archive."""
    result = engine.query(cohorts_sql(query.period, query.event))
    return build_cohorts(result.rows, query, now)


def profile_segments(store: ProfileStore) -> SegmentLookup:
    """The segment lookup of `funnel_report` over the profile store: each id's profile's
    `segment`, through one merge pointer (an archived id an alias merged later)."""

    def lookup(user_ids: Sequence[str]) -> dict[str, str | None]:
        found = store.get_many(user_ids)
        out: dict[str, str | None] = {}
        pointers: dict[str, str] = {}
        for user, stored in found.items():
            if stored.profile.merged_into:
                pointers[user] = stored.profile.merged_into
            else:
                out[user] = stored.profile.segment
        if pointers:
            targets = store.get_many(sorted(set(pointers.values())))
            for user, target in pointers.items():
                out[user] = targets[target].profile.segment if target in targets else None
        return out

    return lookup


# ---- funnels ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelQuery:
    steps: tuple[str, ...]
    within_seconds: int = 7 * 86400
    by: Literal["segment", "variant"] | None = None
    experiment: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str] | None) -> FunnelQuery:
        """`steps=A,B,C` (2 to MAX_STEPS names, repeats allowed), `within` (a duration:
        30m, 48h, 7d; default 7d), `by` (segment | variant), `experiment` (with
        by=variant); ValidationFailedError (400) naming each bad parameter."""
        params = params or {}
        problems: list[dict[str, str]] = []
        raw = params.get("steps", "")
        steps = tuple(_event_name(s, "steps", problems) for s in raw.split(",")) if raw else ()
        if len(steps) < 2:
            problems.append(_problem("steps", "give at least 2 steps: steps=A,B[,C...]"))
        elif len(steps) > MAX_STEPS:
            problems.append(_problem("steps", f"at most {MAX_STEPS} steps"))
        within = 7 * 86400
        if "within" in params:
            try:
                within = parse_duration(params["within"])
            except DurationError as err:
                problems.append(_problem("within", str(err)))
            else:
                if within <= 0:
                    problems.append(_problem("within", "the window must be longer than 0s"))
        by = params.get("by")
        if by is not None and by not in GROUPINGS:
            problems.append(_problem("by", f"{by!r} is not segment or variant"))
        experiment = None
        if "experiment" in params:
            experiment = _event_name(params["experiment"], "experiment", problems)
            if by != "variant":
                problems.append(_problem("experiment", "only with by=variant"))
        _refuse(problems)
        return cls(
            steps,
            within,
            "segment" if by == "segment" else "variant" if by == "variant" else None,
            experiment,
        )


def _funnel_cte(steps: Sequence[str], within_seconds: int) -> str:
    """CTE `reached` (user_id, depth): each user's furthest step (1-based)."""
    within = int(within_seconds)
    if within <= 0 or len(steps) < 2:
        raise ValueError("a funnel has 2 steps or more and a positive window")
    names = list(dict.fromkeys(steps))  # distinct, in first-step order
    rank = " ".join(f"WHEN {sql_string(n)} THEN {i}" for i, n in enumerate(names))
    column = {n: f"next_{i}" for i, n in enumerate(names)}
    later = list(dict.fromkeys(steps[1:]))
    nexts = ",\n           ".join(
        f"min(CASE WHEN event = {sql_string(n)} THEN n END) OVER (PARTITION BY user_id "
        f"ORDER BY n ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS {column[n]}"
        for n in later
    )
    deadline = f"s1.event_at + INTERVAL '{within}' SECOND"
    joins = []
    depth = ["1"]
    for k in range(2, len(steps) + 1):
        joins.append(
            f"LEFT JOIN nexts AS s{k} ON s{k}.user_id = s1.user_id "
            f"AND s{k}.n = s{k - 1}.{column[steps[k - 1]]} AND s{k}.event_at <= {deadline}"
        )
        depth.append(f"CASE WHEN s{k}.n IS NULL THEN 0 ELSE 1 END")
    in_list = ", ".join(sql_string(n) for n in names)
    join_text = "\n    ".join(joins)
    return f"""
step_events AS (
    SELECT user_id, "timestamp" AS event_at, event,
           row_number() OVER (
               PARTITION BY user_id
               ORDER BY "timestamp", CASE event {rank} END, message_id
           ) AS n
    FROM events
    WHERE user_id IS NOT NULL AND "timestamp" IS NOT NULL AND event IN ({in_list})
),
nexts AS (
    SELECT user_id, event_at, event, n,
           {nexts}
    FROM step_events
),
chains AS (
    SELECT s1.user_id AS user_id, {" + ".join(depth)} AS depth
    FROM nexts AS s1
    {join_text}
    WHERE s1.event = {sql_string(steps[0])}
),
reached AS (
    SELECT user_id, max(depth) AS depth FROM chains GROUP BY user_id
)"""


def funnel_sql(steps: Sequence[str], within_seconds: int) -> str:
    """DuckDB SQL over `events`: rows (depth, users), users by the furthest step."""
    return f"""WITH {_funnel_cte(steps, within_seconds).strip()}
SELECT depth, count(*) AS users FROM reached GROUP BY depth ORDER BY depth
"""


def funnel_by_user_sql(steps: Sequence[str], within_seconds: int) -> str:
    """DuckDB SQL over `events`: rows (user_id, depth) for every user who did step 1."""
    return f"""WITH {_funnel_cte(steps, within_seconds).strip()}
SELECT user_id, depth FROM reached ORDER BY user_id
"""


def _variant_expression() -> str:
    return (
        "COALESCE(json_extract_string(properties, '$.variation_name'), "
        "json_extract_string(properties, '$.variation_id'))"
    )


def funnel_by_variant_sql(steps: Sequence[str], within_seconds: int, experiment: str) -> str:
    """DuckDB SQL over `events`: rows (variant, depth, users); a user's variant is that of
    their first `Experiment Viewed` of the experiment (as the experiment report counts
    them), `none` if never exposed."""
    return f"""WITH {_funnel_cte(steps, within_seconds).strip()},
exposure AS (
    SELECT user_id, {_variant_expression()} AS variant
    FROM events
    WHERE type = 'track' AND event = {sql_string(EXPERIMENT_VIEWED)} AND user_id IS NOT NULL
      AND json_extract_string(properties, '$.experiment_id') = {sql_string(experiment)}
    QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY "timestamp", message_id) = 1
)
SELECT COALESCE(x.variant, {sql_string(NO_GROUP)}) AS variant, r.depth AS depth,
       count(*) AS users
FROM reached AS r
LEFT JOIN exposure AS x ON x.user_id = r.user_id
GROUP BY 1, 2
ORDER BY 1, 2
"""


def experiments_sql() -> str:
    """DuckDB SQL over `events`: the experiment ids of the archived exposures."""
    return f"""
SELECT DISTINCT json_extract_string(properties, '$.experiment_id') AS experiment_id
FROM events
WHERE type = 'track' AND event = {sql_string(EXPERIMENT_VIEWED)}
  AND json_extract_string(properties, '$.experiment_id') IS NOT NULL
ORDER BY 1
"""


def funnel_steps(steps: Sequence[str], depths: Mapping[int, int]) -> list[dict[str, Any]]:
    """The steps from users by furthest step reached (depth 1..len(steps))."""
    out: list[dict[str, Any]] = []
    first: int | None = None
    previous: int | None = None
    for k, name in enumerate(steps, start=1):
        users = sum(n for d, n in depths.items() if d >= k)
        if first is None:
            first = users
        out.append(
            {
                "event": name,
                "users": users,
                "conversion": users / first if first else None,
                "drop_off": None if not previous else 1 - users / previous,
            }
        )
        previous = users
    return out


def build_funnel(
    query: FunnelQuery,
    depths: Mapping[int, int],
    groups: Mapping[str, Mapping[int, int]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """`{"steps": [...], "groups": {name: {"steps": [...]}}, "within", ...}`."""
    return {
        "steps": funnel_steps(query.steps, depths),
        "groups": {
            name: {"steps": funnel_steps(query.steps, by_depth)}
            for name, by_depth in sorted((groups or {}).items())
        },
        "within": format_duration(query.within_seconds),
        "within_seconds": query.within_seconds,
        "by": query.by,
        **extra,
    }


def _totals(groups: Mapping[str, Mapping[int, int]]) -> dict[int, int]:
    total: dict[int, int] = defaultdict(int)
    for by_depth in groups.values():
        for d, n in by_depth.items():
            total[d] += n
    return dict(total)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def funnel_report(
    query: FunnelQuery,
    engine: QueryEngine,
    *,
    segments: SegmentLookup | None = None,
) -> dict[str, Any]:
    """The funnel from the archive. `by=variant` groups by the experiment's variant (the
    only experiment with archived exposures when `experiment` is not given: several are
    a 400 naming them); `by=segment` by `segments(user_ids)` (the profiles' segment),
    `none` for a user without one."""
    if query.by is None:
        rows = engine.query(funnel_sql(query.steps, query.within_seconds)).rows
        return build_funnel(query, {int(d): int(n) for d, n in rows})
    if query.by == "segment":
        if segments is None:
            raise ValueError("by=segment needs a segment lookup")
        reached = [
            (str(u), int(d))
            for u, d in engine.query(funnel_by_user_sql(query.steps, query.within_seconds)).rows
        ]
        segment_of: dict[str, str | None] = {}
        for chunk in _chunks([u for u, _ in reached], LOOKUP_CHUNK):
            segment_of.update(segments(chunk))
        by_segment: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for user, depth in reached:
            by_segment[segment_of.get(user) or NO_GROUP][depth] += 1
        return build_funnel(query, _totals(by_segment), by_segment)
    experiment = query.experiment
    if experiment is None:
        seen = [str(r[0]) for r in engine.query(experiments_sql()).rows]
        if len(seen) > 1:
            raise ValidationFailedError(
                f"by=variant: the archive holds exposures of {len(seen)} experiments; "
                "name one with experiment=ID",
                [_problem("experiment", f"one of: {', '.join(seen)}")],
            )
        experiment = seen[0] if seen else None
    if experiment is None:  # no exposure archived: everyone is in `none`
        rows = engine.query(funnel_sql(query.steps, query.within_seconds)).rows
        depths = {int(d): int(n) for d, n in rows}
        return build_funnel(query, depths, {NO_GROUP: depths} if depths else {}, experiment=None)
    rows = engine.query(funnel_by_variant_sql(query.steps, query.within_seconds, experiment)).rows
    by_variant: dict[str, dict[int, int]] = defaultdict(dict)
    for variant, depth, users in rows:
        by_variant[str(variant)][int(depth)] = int(users)
    return build_funnel(query, _totals(by_variant), by_variant, experiment=experiment)
