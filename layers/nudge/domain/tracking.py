"""The tracking plan: what each event's properties (and identify's traits) must look like,
checked at ingest, as Segment Protocols does.

A plan is YAML in `tracking-plan/` (docs/tracking-plan.md):

    mode: report            # report (accept and count) | block (refuse with 400)
    unplanned: allow        # an event the plan does not name: allow | report | block
    events:
      Order Completed:
        mode: block         # per event, overrides the plan's mode
        properties:         # a JSON Schema (draft 2020-12) of the event's properties
          type: object
          required: [order_id, revenue]
          properties:
            revenue: {type: number, minimum: 0}
      Page Viewed: {}       # planned, anything goes
    identify:
      traits: {type: object, properties: {email: {type: string, format: email}}}

Every violation, blocked or not, becomes one Segment `Violation Generated` event (the
names of Segment's forwarded violations) that ingest archives, so the violations are
counted per event and rule with SQL over the archive (`GET /v1/reports/tracking`). A
blocked event is refused at the door with the rule in the 400's details; a reported one
is accepted as sent.

The schemas are checked with `jsonschema` (the reference implementation of JSON Schema
for Python) once, at load; each event is then checked by the compiled validators."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaViolation

from nudge.domain.archive import iso_ms
from nudge.domain.events import Event
from nudge.domain.ports import QueryEngine

Mode = Literal["report", "block"]
Unplanned = Literal["allow", "report", "block"]
MODES: tuple[str, ...] = ("report", "block")
UNPLANNED: tuple[str, ...] = ("allow", "report", "block")
VIOLATION_GENERATED = "Violation Generated"  # Segment Protocols' forwarded violations
IDENTIFY = "identify"  # the plan's section for identify calls (their traits)
MAX_VIOLATIONS_PER_EVENT = 10  # reported per event (the rest are counted as one "more")
MAX_VALUE_CHARS = 200  # of the offending value, kept in the violation's sample


class TrackingPlanError(ValueError):
    """A plan that cannot be used: the file, and the line when YAML knows it."""


@dataclass(frozen=True)
class Violation:
    """One rule an event broke: `rule` is the JSON Schema keyword (`required`, `type`,
    `minimum`, ...) or `unplanned`; `field` the dotted path (`properties.revenue`)."""

    event: str
    rule: str
    field: str
    message: str
    value: str | None = None

    def describe(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"tracking plan: {self.event}: {where}{self.message} ({self.rule})"


@dataclass(frozen=True)
class EventRules:
    mode: Mode
    properties: Draft202012Validator | None = None
    traits: Draft202012Validator | None = None


@dataclass(frozen=True)
class TrackingPlan:
    mode: Mode = "report"
    unplanned: Unplanned = "allow"
    events: Mapping[str, EventRules] = field(default_factory=dict)
    identify: EventRules | None = None

    # ---- checking ----------------------------------------------------------------------
    def _rules(self, event: Event) -> EventRules | None:
        if event.type == "identify":
            return self.identify
        if event.event is None:  # group, alias: nothing to plan
            return None
        return self.events.get(event.event)

    def _planned_name(self, event: Event) -> str | None:
        """The name the plan would list the event under (None: not subject to the plan)."""
        if event.type == "identify":
            return IDENTIFY if self.identify is not None else None
        return event.event

    def check(self, event: Event) -> list[Violation]:
        name = self._planned_name(event)
        if name is None:
            return []
        rules = self._rules(event)
        if rules is None:
            if self.unplanned == "allow" or event.type == "identify":
                return []
            return [Violation(name, "unplanned", "", "the tracking plan does not name this event")]
        out: list[Violation] = []
        for section, validator, value in (
            ("properties", rules.properties, event.properties),
            ("traits", rules.traits, event.traits),
        ):
            if validator is None:
                continue
            for err in sorted(validator.iter_errors(value), key=_error_key):
                out.append(_violation(name, section, err))
                if len(out) >= MAX_VIOLATIONS_PER_EVENT:
                    return out
        return out

    def blocks(self, event: Event, violations: Iterable[Violation]) -> bool:
        """Whether these violations of the event refuse it."""
        found = list(violations)
        if not found:
            return False
        if found[0].rule == "unplanned":
            return self.unplanned == "block"
        rules = self._rules(event)
        return (rules.mode if rules is not None else self.mode) == "block"


def _error_key(err: SchemaViolation) -> tuple[str, str]:
    return (".".join(str(p) for p in err.absolute_path), str(err.validator))


def _required_name(message: str) -> str | None:
    text = message.removesuffix(" is a required property")
    try:
        name = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return name if isinstance(name, str) else None


def _violation(event: str, section: str, err: SchemaViolation) -> Violation:
    path = [str(p) for p in err.absolute_path]
    value: Any = err.instance
    if err.validator == "required":
        # the missing name is in the message only: jsonschema writes
        # f"{name!r} is a required property", one error per missing name
        missing = _required_name(err.message)
        if missing is not None:
            path.append(str(missing))
        value = None
    shown = None if value is None or isinstance(value, (dict, list)) else str(value)
    return Violation(
        event=event,
        rule=str(err.validator),
        field=".".join([section, *path]),
        message=err.message[:MAX_VALUE_CHARS],
        value=shown[:MAX_VALUE_CHARS] if shown is not None else None,
    )


# ---- the violations as events -----------------------------------------------------------
def violation_events(
    event: Event, violations: Iterable[Violation], *, blocked: bool, received_at: datetime
) -> list[Event]:
    """Segment's `Violation Generated` track calls for an event's violations: the event's
    ids, name and time in `event*` properties, the rule in `violation*`. The messageId is
    derived from the event's and the rule's, so a retried request archives each once.
    They go to the archive only, with no `user_id` of their own (the event's ids are in
    `eventUserId` / `eventAnonymousId`): they are no activity of the user, and a report
    that counts users never counts them."""
    out: list[Event] = []
    for v in violations:
        digest = hashlib.blake2b(
            f"{event.message_id}\x00{v.rule}\x00{v.field}".encode(), digest_size=12
        ).hexdigest()
        out.append(
            Event(
                type="track",
                message_id=f"violation-{digest}",
                event=VIOLATION_GENERATED,
                properties={
                    "eventMessageID": event.message_id,
                    "eventUserId": event.user_id,
                    "eventAnonymousId": event.anonymous_id,
                    "eventName": v.event,
                    "eventType": event.type,
                    "violationType": v.rule,
                    "violationField": v.field,
                    "violationDescription": v.message,
                    "violationValue": v.value,
                    "blocked": blocked,
                },
                context={"library": {"name": "nudge", "version": "tracking-plan"}},
                timestamp=event.timestamp,
                received_at=received_at,
            )
        )
    return out


# ---- loading ----------------------------------------------------------------------------
def _validator(schema: Any, where: str) -> Draft202012Validator:
    if not isinstance(schema, dict):
        raise TrackingPlanError(f"{where}: a JSON Schema must be a mapping")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        path = ".".join(str(p) for p in err.absolute_path)
        raise TrackingPlanError(f"{where}{'.' + path if path else ''}: {err.message}") from None
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _mode(value: Any, allowed: tuple[str, ...], where: str, default: str) -> Any:
    if value is None:
        return default
    if value not in allowed:
        raise TrackingPlanError(f"{where}: must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _rules(spec: Any, mode: Mode, where: str) -> EventRules:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise TrackingPlanError(f"{where}: must be a mapping")
    unknown = set(spec) - {"mode", "properties", "traits", "description"}
    if unknown:
        raise TrackingPlanError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    return EventRules(
        mode=_mode(spec.get("mode"), MODES, f"{where}.mode", mode),
        properties=(
            _validator(spec["properties"], f"{where}.properties") if "properties" in spec else None
        ),
        traits=_validator(spec["traits"], f"{where}.traits") if "traits" in spec else None,
    )


def plan_from_document(doc: Any, where: str = "tracking plan") -> TrackingPlan:
    if not isinstance(doc, dict):
        raise TrackingPlanError(f"{where}: must be a mapping with `events`")
    unknown = set(doc) - {"mode", "unplanned", "events", "identify"}
    if unknown:
        raise TrackingPlanError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    mode: Mode = _mode(doc.get("mode"), MODES, f"{where}: mode", "report")
    events = doc.get("events") or {}
    if not isinstance(events, dict):
        raise TrackingPlanError(f"{where}: events must map event names to rules")
    return TrackingPlan(
        mode=mode,
        unplanned=_mode(doc.get("unplanned"), UNPLANNED, f"{where}: unplanned", "allow"),
        events={
            str(name): _rules(spec, mode, f"{where}: events.{name}")
            for name, spec in events.items()
        },
        identify=_rules(doc["identify"], mode, f"{where}: identify") if "identify" in doc else None,
    )


def load_plan(path: str | Path) -> TrackingPlan | None:
    """The plan of a YAML file or of a folder's `*.yaml`/`*.yml` files (merged: an event
    named twice is an error); None when there is none (no plan: nothing is checked)."""
    root = Path(path)
    if not root.exists():
        return None
    files = sorted([*root.glob("*.yaml"), *root.glob("*.yml")]) if root.is_dir() else [root]
    if not files:
        return None
    merged: dict[str, Any] = {}
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise TrackingPlanError(f"{f.name}{line}: not valid YAML: {err}") from None
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise TrackingPlanError(f"{f.name}: must be a mapping with `events`")
        for key in ("mode", "unplanned"):
            if key in doc and key in merged and merged[key] != doc[key]:
                raise TrackingPlanError(f"{f.name}: {key} differs from another file's")
        for name in (doc.get("events") or {}) if isinstance(doc.get("events"), dict) else {}:
            if name in merged.get("events", {}):
                raise TrackingPlanError(f"{f.name}: event {name!r} is planned in two files")
        plan_from_document(doc, f.name)  # each file's errors name the file
        merged.update({k: v for k, v in doc.items() if k != "events"})
        merged.setdefault("events", {}).update(doc.get("events") or {})
    return plan_from_document(merged) if merged else None


# ---- the report: violations per event and rule, SQL over the archive --------------------
MAX_REPORT_DAYS = 365
MAX_REPORT_ROWS = 500


def violations_sql(since: datetime) -> str:
    """DuckDB SQL over `events` (Athena gets it transpiled): one row per (event, rule,
    field) violated since `since`, with counts and the latest occurrence as the sample."""
    stamp = since.strftime("%Y-%m-%d %H:%M:%S")

    def prop(name: str) -> str:
        return f"json_extract_string(properties, '$.{name}')"

    return f"""
SELECT {prop("eventName")} AS event,
       {prop("violationType")} AS rule,
       {prop("violationField")} AS field,
       count(*) AS violations,
       count(DISTINCT {prop("eventMessageID")}) AS events,
       sum(CASE WHEN {prop("blocked")} = 'true' THEN 1 ELSE 0 END) AS blocked,
       max("timestamp") AS last_seen,
       arg_max({prop("violationDescription")}, "timestamp") AS description,
       arg_max({prop("violationValue")}, "timestamp") AS value,
       arg_max({prop("eventMessageID")}, "timestamp") AS message_id
FROM events
WHERE type = 'track' AND event = '{VIOLATION_GENERATED}'
  AND "timestamp" >= TIMESTAMP '{stamp}'
GROUP BY 1, 2, 3
ORDER BY violations DESC, event, rule, field
LIMIT {MAX_REPORT_ROWS}
"""


def violations_report(rows: Iterable[Iterable[Any]], *, days: int) -> dict[str, Any]:
    """`GET /v1/reports/tracking`'s body from `violations_sql`'s rows."""
    out = []
    for row in rows:
        event, rule, fld, n, events, blocked, last, description, value, message_id = list(row)
        out.append(
            {
                "event": event,
                "rule": rule,
                "field": fld or "",
                "violations": int(n),
                "events": int(events),
                "blocked": int(blocked or 0),
                "last_seen": iso_ms(last) if isinstance(last, datetime) else last,
                "sample": {"message_id": message_id, "description": description, "value": value},
            }
        )
    return {"days": days, "violations": out}


def tracking_report(engine: QueryEngine, *, days: int, now: datetime) -> dict[str, Any]:
    """`GET /v1/reports/tracking`: the violations of the `days` days before `now`.

    The SQL bounds event time; the archive's hours are not bounded (local mode's clock
    may run ahead of the hours its emulated Firehose files objects under)."""
    result = engine.query(violations_sql(now - timedelta(days=days)))
    return violations_report(result.rows, days=days)
