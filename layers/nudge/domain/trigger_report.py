"""The triggers report (`GET /v1/reports/triggers?days=N`): per trigger, what fired, what
was sent and what it did, from one SQL query over the archive's `events` view (the
outcome events of nudge.domain.outcomes, the exposures, the users' own events), and a
daily series with anomaly flags (nudge.domain.anomalies). Definitions in
docs/measurement.md ("Trigger KPIs"):

- `fired`: actions (episodes with an action) whose first outcome falls in the period,
  whatever their status; `sent`: actions whose `sent` outcome falls in it.
- `response_rate`: sent messages with a response linked to them by `action_id` (an
  `Email Opened`, `Email Link Clicked`, `Message Read` or `Push Notification Tapped`)
  within the trigger's window after the send, over `sent`.
- `conversion_rate`: users sent a message in the period who did the trigger's goal (its
  experiment's goal event, else `Order Completed`) within the window after a send (not
  at the same instant), over the users sent a message.
- `engagement_seconds`: per sent message, the user's session time in the window after
  it (the gaps of at most 30 min between their consecutive own events, nudge's own
  events left out), averaged over `sent`.
- `retention_vs_holdout`: the share of users sent a message who were active (any own
  event) in the `RETENTION_DAYS` after their first send, minus the same share of the
  users held out (`holdout` outcome: the experiment's holdout, the control group) after
  their first holdout; null without holdout users (or without users sent).
- The window: the experiment's goal `within`, else `DEFAULT_WINDOW_SECONDS` (72 h).
- `daily`: per UTC day of the period, `fired`, `sent` and `conversions` (users sent a
  message that day who converted after it); `anomaly` when any of the three leaves the
  range of its trailing 28 days (flag_anomalies: robust median / MAD, weekday-aware, on
  the square-root scale). The series start at the archive's first outcome (a new
  deployment has no usual range yet); today, still incomplete, is flagged only for a
  value above its range.

Measured false-alarm rate of `anomaly` (tests/unit/test_trigger_report.py asserts it
stays <= 1 %): 300 simulated stable series of 120 days (fired Poisson with a weekly
shape, Mondays 1.3 and weekends 0.6 of the level, at 0.5 to 2,000 a day; sent binomial
85 % of fired; conversions binomial 8 % of sent) flag 15 of the 31,800 days judged,
0.05 % (about one day in 2,100), against 0.03 % for one series alone.

The SQL is DuckDB's, and transpiles to Athena's with sqlglot (the tests check both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from nudge.constants import SESSION_TIMEOUT_SECONDS
from nudge.domain.anomalies import WINDOW_DAYS, flag_anomalies
from nudge.domain.experiment_report import sql_string
from nudge.domain.outcomes import MESSAGE_OUTCOME, MESSAGE_READ, NUDGE_EVENTS, PUSH_TAPPED

if TYPE_CHECKING:
    from nudge.domain.ports import QueryEngine
    from nudge.domain.triggers.loader import TriggerSet

DEFAULT_DAYS = 28
MAX_DAYS = 365
DEFAULT_GOAL = "Order Completed"
DEFAULT_WINDOW_SECONDS = 72 * 3600
RETENTION_DAYS = 7
RESPONSES = ("Email Opened", "Email Link Clicked", MESSAGE_READ, PUSH_TAPPED)
DAILY_METRICS = ("fired", "sent", "conversions")


@dataclass(frozen=True, slots=True)
class TriggerGoal:
    """A trigger as the report measures it: its goal event and attribution window."""

    trigger_id: str
    goal_event: str
    within_seconds: int


def goals_of(triggers: TriggerSet) -> list[TriggerGoal]:
    """Every loaded trigger, in file order, with its experiment's goal or the default."""
    out = []
    for t in triggers:
        exp = t.experiment
        if exp is not None:
            out.append(TriggerGoal(t.id, exp.goal.event, int(exp.goal.within)))
        else:
            out.append(TriggerGoal(t.id, DEFAULT_GOAL, DEFAULT_WINDOW_SECONDS))
    return out


def _ts(at: datetime) -> str:
    at = at.astimezone(UTC).replace(tzinfo=None)
    return f"TIMESTAMP '{at.isoformat(sep=' ', timespec='microseconds')}'"


def _names(names: Iterable[str]) -> str:
    return ", ".join(sql_string(n) for n in names)


def report_sql(
    goals: Sequence[TriggerGoal], *, start: datetime, history_start: datetime, now: datetime
) -> str:
    """DuckDB SQL over `events`: rows (trigger_id, day, metric, value). `day` set: the
    daily series from `history_start` (metrics fired, sent, conversions); `day` null:
    the period's totals from `start` (fired, sent, sent_users, responded, converted_users,
    engaged_seconds, treated_users, treated_active, holdout_users, holdout_active)."""
    if not goals:
        raise ValueError("no trigger to report on")
    values = ", ".join(
        f"({sql_string(g.trigger_id)}, {sql_string(g.goal_event)}, {int(g.within_seconds)})"
        for g in goals
    )
    s, h, n = _ts(start), _ts(history_start), _ts(now)
    own = f"(e.event IS NULL OR e.event NOT IN ({_names(NUDGE_EVENTS)}))"
    return f"""
WITH goals (trigger_id, goal_event, within_s) AS (VALUES {values}),
outcomes AS (
    SELECT e.user_id,
           json_extract_string(e.properties, '$.trigger_id') AS trigger_id,
           json_extract_string(e.properties, '$.action_id') AS action_id,
           json_extract_string(e.properties, '$.status') AS status,
           e."timestamp" AS occurred
    FROM events AS e
    WHERE e.type = 'track' AND e.event = {sql_string(MESSAGE_OUTCOME)}
      AND e."timestamp" >= {h} AND e."timestamp" <= {n}
),
actions AS (
    SELECT o.trigger_id, o.action_id, min(o.user_id) AS user_id, min(o.occurred) AS fired_at,
           min(CASE WHEN o.status = 'sent' THEN o.occurred END) AS sent_at,
           min(CASE WHEN o.status = 'holdout' THEN o.occurred END) AS held_at,
           min(g.goal_event) AS goal_event, min(g.within_s) AS within_s
    FROM outcomes AS o
    JOIN goals AS g ON g.trigger_id = o.trigger_id
    WHERE o.action_id IS NOT NULL
    GROUP BY o.trigger_id, o.action_id
),
sends AS (SELECT * FROM actions WHERE sent_at IS NOT NULL),
responded AS (
    SELECT DISTINCT a.action_id
    FROM sends AS a
    JOIN events AS e ON json_extract_string(e.properties, '$.action_id') = a.action_id
    WHERE e.type = 'track' AND e.event IN ({_names(RESPONSES)})
      AND e."timestamp" >= {h}
      AND epoch(e."timestamp") - epoch(a.sent_at) <= a.within_s
),
converted AS (
    SELECT DISTINCT a.action_id
    FROM sends AS a
    JOIN events AS e ON e.user_id = a.user_id AND e.event = a.goal_event
    WHERE e.type = 'track' AND e."timestamp" > a.sent_at AND e."timestamp" >= {h}
      AND epoch(e."timestamp") - epoch(a.sent_at) <= a.within_s
),
activity AS (
    SELECT e.user_id, e."timestamp" AS occurred
    FROM events AS e
    WHERE e.type IN ('track', 'page', 'screen') AND NOT e.historical AND {own}
      AND e."timestamp" >= {s}
      AND e.user_id IN (SELECT user_id FROM actions WHERE fired_at >= {s})
),
steps AS (
    SELECT a.action_id, v.occurred AS occurred,
           lag(v.occurred) OVER (PARTITION BY a.action_id ORDER BY v.occurred) AS prev
    FROM sends AS a
    JOIN activity AS v ON v.user_id = a.user_id AND v.occurred > a.sent_at
    WHERE a.sent_at >= {s} AND epoch(v.occurred) - epoch(a.sent_at) <= a.within_s
),
engaged AS (
    SELECT action_id,
           sum(CASE WHEN prev IS NOT NULL
                     AND epoch(occurred) - epoch(prev) <= {SESSION_TIMEOUT_SECONDS}
                    THEN epoch(occurred) - epoch(prev) ELSE 0 END) AS seconds
    FROM steps
    GROUP BY action_id
),
exposed AS (
    SELECT trigger_id, user_id, 'treated' AS arm, min(sent_at) AS occurred
    FROM sends WHERE sent_at >= {s} GROUP BY trigger_id, user_id
    UNION ALL
    SELECT trigger_id, user_id, 'holdout' AS arm, min(held_at) AS occurred
    FROM actions WHERE held_at >= {s} GROUP BY trigger_id, user_id
),
retained AS (
    SELECT x.trigger_id, x.arm, x.user_id,
           max(CASE WHEN v.occurred > x.occurred
                     AND epoch(v.occurred) - epoch(x.occurred) <= {RETENTION_DAYS * 86400}
                    THEN 1 ELSE 0 END) AS active
    FROM exposed AS x
    LEFT JOIN activity AS v ON v.user_id = x.user_id
    GROUP BY x.trigger_id, x.arm, x.user_id
)
SELECT trigger_id, CAST(fired_at AS DATE) AS day, 'fired' AS metric,
       CAST(count(*) AS DOUBLE) AS value
FROM actions GROUP BY trigger_id, CAST(fired_at AS DATE)
UNION ALL
SELECT trigger_id, CAST(sent_at AS DATE), 'sent', CAST(count(*) AS DOUBLE)
FROM sends GROUP BY trigger_id, CAST(sent_at AS DATE)
UNION ALL
SELECT a.trigger_id, CAST(a.sent_at AS DATE), 'conversions',
       CAST(count(DISTINCT a.user_id) AS DOUBLE)
FROM sends AS a JOIN converted AS c ON c.action_id = a.action_id
GROUP BY a.trigger_id, CAST(a.sent_at AS DATE)
UNION ALL
SELECT trigger_id, CAST(NULL AS DATE), 'fired', CAST(count(*) AS DOUBLE)
FROM actions WHERE fired_at >= {s} GROUP BY trigger_id
UNION ALL
SELECT a.trigger_id, CAST(NULL AS DATE), m.metric,
       CAST(CASE m.metric
                WHEN 'sent' THEN count(*)
                WHEN 'sent_users' THEN count(DISTINCT a.user_id)
                WHEN 'responded' THEN count(r.action_id)
                ELSE count(DISTINCT CASE WHEN c.action_id IS NOT NULL THEN a.user_id END)
            END AS DOUBLE)
FROM sends AS a
CROSS JOIN (VALUES ('sent'), ('sent_users'), ('responded'), ('converted_users')) AS m (metric)
LEFT JOIN responded AS r ON r.action_id = a.action_id
LEFT JOIN converted AS c ON c.action_id = a.action_id
WHERE a.sent_at >= {s}
GROUP BY a.trigger_id, m.metric
UNION ALL
SELECT trigger_id, CAST(NULL AS DATE), 'engaged_seconds', CAST(sum(seconds) AS DOUBLE)
FROM sends AS a JOIN engaged AS g ON g.action_id = a.action_id
WHERE a.sent_at >= {s}
GROUP BY trigger_id
UNION ALL
SELECT trigger_id, CAST(NULL AS DATE), arm || '_users', CAST(count(*) AS DOUBLE)
FROM retained GROUP BY trigger_id, arm
UNION ALL
SELECT trigger_id, CAST(NULL AS DATE), arm || '_active', CAST(sum(active) AS DOUBLE)
FROM retained GROUP BY trigger_id, arm
"""


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def daily_rows(
    days: Sequence[date],
    series: Mapping[str, Mapping[date, float]],
    *,
    report_from: date,
    today: date,
    history_from: date | None = None,
) -> list[dict[str, Any]]:
    """The `daily` list for the days from `report_from` on: each metric of
    DAILY_METRICS's count and `anomaly` (any metric outside its range; `today`, still
    incomplete, only above it). `days` is the whole span, history included; the series
    start at `history_from` (the archive's first outcome), none flagged before."""
    first = history_from or days[0]
    span = [d for d in days if d >= first]
    flags: dict[date, bool] = {d: False for d in days}
    for metric in DAILY_METRICS:
        values = series.get(metric) or {}
        for day in flag_anomalies((d, values.get(d, 0.0)) for d in span):
            if not day.anomaly:
                continue
            if day.date == today and day.high is not None and day.value <= day.high:
                continue  # a low count on a day not over yet
            flags[day.date] = True
    return [
        {
            "date": d.isoformat(),
            **{m: int((series.get(m) or {}).get(d, 0)) for m in DAILY_METRICS},
            "anomaly": flags[d],
        }
        for d in days
        if d >= report_from
    ]


def build_report(
    goals: Sequence[TriggerGoal],
    rows: Iterable[Sequence[Any]],
    *,
    days: int,
    today: date,
) -> dict[str, Any]:
    """`{"triggers": [...]}` from report_sql's rows: every trigger of `goals`, in order,
    zeros (and null rates) when it was quiet."""
    report_from = today - timedelta(days=days - 1)
    span = [
        report_from - timedelta(days=WINDOW_DAYS) + timedelta(days=i)
        for i in range(days + WINDOW_DAYS)
    ]
    daily: dict[str, dict[str, dict[date, float]]] = {}
    totals: dict[str, dict[str, float]] = {}
    first_day: date | None = None
    for trigger_id, day, metric, value in rows:
        if day is None:
            totals.setdefault(trigger_id, {})[metric] = float(value or 0)
            continue
        d = day if isinstance(day, date) else date.fromisoformat(str(day))
        daily.setdefault(trigger_id, {}).setdefault(metric, {})[d] = float(value or 0)
        if metric == "fired":
            first_day = d if first_day is None else min(first_day, d)
    out = []
    for g in goals:
        t = totals.get(g.trigger_id, {})
        sent = t.get("sent", 0.0)
        treated, held = t.get("treated_users", 0.0), t.get("holdout_users", 0.0)
        retention = None
        if treated and held:
            retention = t.get("treated_active", 0.0) / treated - t.get("holdout_active", 0.0) / held
        out.append(
            {
                "id": g.trigger_id,
                "fired": int(t.get("fired", 0)),
                "sent": int(sent),
                "response_rate": _ratio(t.get("responded", 0.0), sent),
                "conversion_rate": _ratio(t.get("converted_users", 0.0), t.get("sent_users", 0.0)),
                "engagement_seconds": _ratio(t.get("engaged_seconds", 0.0), sent),
                "retention_vs_holdout": retention,
                "goal": {"event": g.goal_event, "within_seconds": g.within_seconds},
                "daily": daily_rows(
                    span,
                    daily.get(g.trigger_id, {}),
                    report_from=report_from,
                    today=today,
                    history_from=first_day or today,
                ),
            }
        )
    return {"days": days, "triggers": out}


def period(days: int, now: datetime) -> tuple[datetime, datetime, date]:
    """(start of the period, start of its history, today): the period is the `days` UTC
    days ending today, its history the WINDOW_DAYS before it."""
    today = now.astimezone(UTC).date()
    start = datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=UTC)
    return start, start - timedelta(days=WINDOW_DAYS), today


def triggers_report(
    triggers: TriggerSet, engine: QueryEngine, *, days: int, now: datetime
) -> dict[str, Any]:
    """The report over the `days` days ending today, read from the archive by `engine`."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1 to {MAX_DAYS}")
    goals = goals_of(triggers)
    start, history_start, today = period(days, now)
    if not goals:
        return {"days": days, "triggers": []}
    result = engine.query(
        report_sql(goals, start=start, history_start=history_start, now=now),
        since=history_start,
    )
    return build_report(goals, result.rows, days=days, today=today)
