"""The trigger definition format: pydantic models of `triggers/*.yaml`.

A file holds `triggers:`, a list of triggers. A trigger has an `id`, a condition under
`when`, an `action` (channel, template, fallback channel), a `priority`, a `cooldown`
and a `reeligibility` rule. A condition is a mapping with exactly one of these keys:

behaviors (what arms a trigger)
  event       an event, with property filters under `where`
  count       an event seen `at_least` N times `within` a window, optionally `per` property
  absence     an `after` event not followed by a `without` event `within` a time
  inactivity  no event `for` a time
  dwell       `for` a time on a product page without adding that product to the cart
  sequence    `steps` in order, each `within` a time of the previous one
combinators
  all, any, not
filters (about the user now; they never arm anything on their own)
  trait       trait filters, e.g. `trait: {email: {exists: true}}`
  segment     the user's segment, e.g. `segment: {in: [frequent buyers]}`
  bought      whether the trigger's product is in what the user bought

Property filters: a mapping of operator to operand (`eq`, `ne`, `in`, `not_in`, `gt`,
`gte`, `lt`, `lte`, `exists`, `contains`); a bare value means `eq`, a bare list `in`.
Durations read `30s`, `15m`, `48h`, `7d`.

Regenerate the editor schema with `python -m nudge.domain.triggers.model > triggers/schema.json`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from nudge.domain.channels import Channel
from nudge.domain.fatigue import ClockTime, SendWindow
from nudge.domain.triggers.durations import PATTERN as DURATION_PATTERN
from nudge.domain.triggers.durations import parse_duration

# Union members are tagged "~kind": the loader drops these segments from error locations.
TAG = "~"
OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "contains")
BEHAVIORS = (
    "event",
    "count",
    "absence",
    "inactivity",
    "dwell",
    "sequence",
    "trait_change",
    "date",
)
COMBINATORS = ("all", "any", "not")
FILTERS = ("trait", "segment", "bought")
CONDITION_KINDS = BEHAVIORS + COMBINATORS + FILTERS
MAX_BRANCHES = 16
MAX_COUNT = 1000
ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TEMPLATE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")

Scalar = str | int | float | bool | None
# nudge.domain.recommend.STRATEGIES: what a template's `recommendations` are drawn by
RecommendationStrategy = Literal["personal", "popular"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- durations -----------------------------------------------------------------------------
def _duration(value: Any) -> int:
    return parse_duration(value)


def _positive_duration(value: Any) -> int:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(
            f"unreachable condition: a time of {value!r} never passes; use more than 0"
        )
    return seconds


_DURATION_SCHEMA = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "examples": ["30s", "15m", "48h", "7d"],
}
Duration = Annotated[int, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
PositiveDuration = Annotated[
    int, BeforeValidator(_positive_duration), WithJsonSchema(_DURATION_SCHEMA)
]


# ---- names -----------------------------------------------------------------------------------
def _trigger_id(value: str) -> str:
    if not ID_RE.match(value):
        raise ValueError(
            f"id {value!r} must be lowercase snake_case (a-z, 0-9, _), starting with a letter"
        )
    return value


def _template_name(value: str) -> str:
    if not TEMPLATE_RE.match(value):
        raise ValueError(
            f"template {value!r} must be a lowercase file name (a-z, 0-9, _, -) without extension"
        )
    return value


TriggerId = Annotated[
    str, AfterValidator(_trigger_id), WithJsonSchema({"type": "string", "pattern": ID_RE.pattern})
]
TemplateName = Annotated[
    str,
    AfterValidator(_template_name),
    WithJsonSchema({"type": "string", "pattern": TEMPLATE_RE.pattern}),
]
EventName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PropName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


# ---- property filters --------------------------------------------------------------------------
class PropertyFilter(_Strict):
    """Operators on one value; several operators must all hold. A bare value means `eq`,
    a bare list means `in`."""

    eq: Scalar = None
    ne: Scalar = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    gt: float | str | None = None
    gte: float | str | None = None
    lt: float | str | None = None
    lte: float | str | None = None
    exists: bool | None = None
    contains: Scalar = None

    @field_validator("in_")
    @classmethod
    def _in_not_empty(cls, value: list[Scalar] | None) -> list[Scalar] | None:
        if value is not None and not value:
            raise ValueError("unreachable condition: `in: []` matches nothing")
        return value

    @model_validator(mode="after")
    def _has_operator(self) -> PropertyFilter:
        if not self.model_fields_set:
            raise ValueError(f"a property filter needs an operator: one of {', '.join(OPERATORS)}")
        return self

    def operators(self) -> dict[str, Any]:
        """{operator: operand} for the operators written."""
        out = {}
        for name in self.model_fields_set:
            alias = type(self).model_fields[name].alias or name
            out[alias] = getattr(self, name)
        return out


def _filter_shorthand(value: Any) -> Any:
    if isinstance(value, (dict, PropertyFilter)):
        return value
    if isinstance(value, list):
        return {"in": value}
    return {"eq": value}


Filter = Annotated[
    PropertyFilter,
    BeforeValidator(
        _filter_shorthand, json_schema_input_type=Scalar | list[Scalar] | PropertyFilter
    ),
]


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


EventNames = Annotated[
    list[EventName],
    BeforeValidator(_names, json_schema_input_type=EventName | list[EventName]),
    Field(
        description="event name(s): a track event, `Page Viewed`, `Screen Viewed`, or `*` for any"
    ),
]


class EventMatch(_Strict):
    """An event by name, with property filters."""

    event: EventNames
    where: dict[PropName, Filter] = Field(default_factory=dict, description="property filters")

    @field_validator("event")
    @classmethod
    def _some_name(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("unreachable condition: `event: []` matches nothing")
        return value


# ---- behaviors ---------------------------------------------------------------------------------
class EventCondition(EventMatch):
    """Holds at each matching event."""

    kind: ClassVar[str] = "event"


class CountSpec(EventMatch):
    at_least: int = Field(description="how many matching events")
    within: PositiveDuration = Field(description="the window they must fall in")
    per: PropName | None = Field(
        default=None, description="count separately per value of this property"
    )

    @field_validator("at_least")
    @classmethod
    def _reachable(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"unreachable condition: at_least must be 1 or more (got {value})")
        if value > MAX_COUNT:
            raise ValueError(f"at_least over {MAX_COUNT} would need unbounded state")
        return value


class CountCondition(_Strict):
    """Holds at the event that brings the count within the window to `at_least`."""

    kind: ClassVar[str] = "count"
    count: CountSpec


class AbsenceSpec(_Strict):
    after: EventMatch
    without: EventMatch
    within: PositiveDuration
    correlate: PropName | None = Field(
        default=None, description="the `without` event must carry the same value of this property"
    )
    measured_from: Literal["after", "cart_change"] = Field(
        default="after",
        description="`after`: from the last `after` event; `cart_change`: from the last change to a non-empty cart",
    )


class AbsenceCondition(_Strict):
    """Holds once `within` has passed since the last `after` event with no `without` event."""

    kind: ClassVar[str] = "absence"
    absence: AbsenceSpec


class InactivitySpec(_Strict):
    for_: PositiveDuration = Field(alias="for")


def _for_shorthand(value: Any) -> Any:
    return {"for": value} if isinstance(value, str) else value


class InactivityCondition(_Strict):
    """Holds once the user has had no event `for` a time."""

    kind: ClassVar[str] = "inactivity"
    inactivity: Annotated[
        InactivitySpec,
        BeforeValidator(_for_shorthand, json_schema_input_type=PositiveDuration | InactivitySpec),
    ]


class DwellSpec(_Strict):
    for_: PositiveDuration = Field(alias="for")
    unless_added: bool = Field(
        default=True, description="not when the product was added to the cart"
    )
    session_timeout: PositiveDuration = Field(default="30m", validate_default=True)


class DwellCondition(_Strict):
    """Holds once the user has been `for` a time on a product page (entered by
    `Product Viewed`, left by the next `Product Viewed`, page or screen) in a live session."""

    kind: ClassVar[str] = "dwell"
    dwell: Annotated[
        DwellSpec,
        BeforeValidator(_for_shorthand, json_schema_input_type=PositiveDuration | DwellSpec),
    ]


class Step(EventMatch):
    within: PositiveDuration | None = Field(
        default=None, description="time limit from the previous step"
    )


class SequenceSpec(_Strict):
    steps: list[Step] = Field(min_length=2)
    correlate: PropName | None = Field(
        default=None, description="every step carries the same value of this property"
    )


class SequenceCondition(_Strict):
    """Holds at the event that completes the steps in order, each within its limit."""

    kind: ClassVar[str] = "sequence"
    sequence: SequenceSpec


class TraitChangeSpec(_Strict):
    trait: PropName = Field(description="the trait, as `identify` sets it")
    from_: Filter | None = Field(
        default=None, alias="from", description="the value it had (any known value when absent)"
    )
    to: Filter | None = Field(default=None, description="the value it takes (any when absent)")


class TraitChangeCondition(_Strict):
    """Holds at the `identify` that changes a trait from one known value to another
    (`plan` from `pro` to `free`); the first value seen is not a change."""

    kind: ClassVar[str] = "trait_change"
    trait_change: TraitChangeSpec


class DateSpec(_Strict):
    trait: PropName = Field(
        description="a trait holding an ISO date (1990-05-17) or date-time (2026-12-10T12:00:00Z)"
    )
    before: Duration = Field(default="0s", validate_default=True, description="this long before it")
    after: Duration = Field(default="0s", validate_default=True, description="this long after it")
    at: ClockTime = Field(
        default=time(9, 0), description="for a date without a time: the user's local time of day"
    )
    annual: bool = Field(default=False, description="every year on the date's month and day")

    @model_validator(mode="after")
    def _one_offset(self) -> DateSpec:
        if self.before and self.after:
            raise ValueError("give `before` or `after`, not both")
        return self


class DateCondition(_Strict):
    """Holds at a moment read from a trait: `{trait: trial_ends_at, before: 3d}`, or
    `{trait: birthday, annual: true}` (each year at 09:00 in the user's time zone)."""

    kind: ClassVar[str] = "date"
    date: DateSpec


# ---- combinators and filters -----------------------------------------------------------------------
class AllCondition(_Strict):
    kind: ClassVar[str] = "all"
    all_: list[Condition] = Field(alias="all", min_length=1)


class AnyCondition(_Strict):
    kind: ClassVar[str] = "any"
    any_: list[Condition] = Field(alias="any", min_length=1)


class NotCondition(_Strict):
    kind: ClassVar[str] = "not"
    not_: Condition = Field(alias="not")


class TraitCondition(_Strict):
    """Filters on the user's traits, e.g. `trait: {email: {exists: true}}`."""

    kind: ClassVar[str] = "trait"
    trait: dict[PropName, Filter] = Field(min_length=1)


class SegmentCondition(_Strict):
    """A filter on the user's segment, e.g. `segment: {in: [frequent buyers]}`."""

    kind: ClassVar[str] = "segment"
    segment: Filter


class BoughtCondition(_Strict):
    """Whether the trigger's product (its key, the dwelt page, or the event's product_id)
    is among the products the user bought."""

    kind: ClassVar[str] = "bought"
    bought: bool


_KIND_TYPES: dict[str, type[BaseModel]] = {
    "event": EventCondition,
    "count": CountCondition,
    "absence": AbsenceCondition,
    "inactivity": InactivityCondition,
    "dwell": DwellCondition,
    "sequence": SequenceCondition,
    "trait_change": TraitChangeCondition,
    "date": DateCondition,
    "all": AllCondition,
    "any": AnyCondition,
    "not": NotCondition,
    "trait": TraitCondition,
    "segment": SegmentCondition,
    "bought": BoughtCondition,
}


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in CONDITION_KINDS:
            if kind in value:
                return TAG + kind
        return None
    named = getattr(value, "kind", None)
    return TAG + named if isinstance(named, str) and named in _KIND_TYPES else None


CONDITION_ERROR = "a condition is a mapping with one of: " + ", ".join(CONDITION_KINDS)

Condition = Annotated[
    Annotated[EventCondition, Tag(TAG + "event")]
    | Annotated[CountCondition, Tag(TAG + "count")]
    | Annotated[AbsenceCondition, Tag(TAG + "absence")]
    | Annotated[InactivityCondition, Tag(TAG + "inactivity")]
    | Annotated[DwellCondition, Tag(TAG + "dwell")]
    | Annotated[SequenceCondition, Tag(TAG + "sequence")]
    | Annotated[TraitChangeCondition, Tag(TAG + "trait_change")]
    | Annotated[DateCondition, Tag(TAG + "date")]
    | Annotated[AllCondition, Tag(TAG + "all")]
    | Annotated[AnyCondition, Tag(TAG + "any")]
    | Annotated[NotCondition, Tag(TAG + "not")]
    | Annotated[TraitCondition, Tag(TAG + "trait")]
    | Annotated[SegmentCondition, Tag(TAG + "segment")]
    | Annotated[BoughtCondition, Tag(TAG + "bought")],
    Discriminator(
        _condition_kind, custom_error_type="condition", custom_error_message=CONDITION_ERROR
    ),
]
PATTERNS: tuple[type[BaseModel], ...] = (
    EventCondition,
    CountCondition,
    AbsenceCondition,
    InactivityCondition,
    DwellCondition,
    SequenceCondition,
    TraitChangeCondition,
    DateCondition,
)


# ---- the trigger ---------------------------------------------------------------------------------
class Action(_Strict):
    channel: Channel
    template: TemplateName = Field(description="templates/<template>.yaml")
    fallback: Channel | None = Field(
        default=None, description="channel used when the first cannot reach the user"
    )

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "template": self.template, "fallback": self.fallback}


class Variant(_Strict):
    """One arm of an experiment: a share of the users, and what it changes."""

    name: TriggerId = Field(description="the variant's id (Segment's variation_id)")
    weight: float = Field(gt=0, description="its share of the users, relative to the others'")
    holdout: bool = Field(default=False, description="sends nothing (the exposure is logged)")
    channel: Channel | None = Field(default=None, description="instead of the action's channel")
    template: TemplateName | None = Field(
        default=None, description="instead of the action's template"
    )
    recommendations: RecommendationStrategy | None = Field(
        default=None,
        description="the strategy of the message's recommendations instead of `personal` "
        "(the user's recent items through the item model); `popular`: the most popular "
        "items, as a control of personalization",
    )


class Goal(_Strict):
    event: str = Field(min_length=1, description="the conversion event, e.g. Order Completed")
    within: PositiveDuration = Field(description="the attribution window after the exposure")


class Experiment(_Strict):
    """An A/B test on a trigger: each user is assigned a variant once, by a hash of the
    experiment's id and the user's id, when an episode of the trigger first fires for
    them; every episode exposes them (holdout users too) and is archived as Segment's
    `Experiment Viewed`."""

    id: TriggerId
    name: str | None = Field(default=None, description="shown in reports (default: the id)")
    variants: list[Variant] = Field(min_length=2, max_length=10)
    goal: Goal
    minimum_detectable_effect: float = Field(
        default=0.02, gt=0, lt=1, description="absolute, for the sample size still needed"
    )

    @model_validator(mode="after")
    def _distinct_variants(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be distinct")
        return self


class OncePer(_Strict):
    once_per: PositiveDuration


def _rule_kind(value: Any) -> str:
    return TAG + "once_per" if isinstance(value, (dict, OncePer)) else TAG + "rule"


Reeligibility = Annotated[
    Annotated[Literal["every_time", "once"], Tag(TAG + "rule")]
    | Annotated[OncePer, Tag(TAG + "once_per")],
    Discriminator(_rule_kind),
    Field(
        description="`every_time` (each episode), `once` (one episode per key, ever) or `{once_per: 7d}`"
    ),
]


class Trigger(_Strict):
    """One behavioral trigger."""

    id: TriggerId
    description: str | None = None
    enabled: bool = True
    when: Condition
    action: Action
    priority: int = Field(default=0, ge=0, le=1000, description="higher wins when triggers compete")
    cooldown: Duration = Field(
        default="24h",
        validate_default=True,
        description="no second message from this trigger within this time",
    )
    reeligibility: Reeligibility = "every_time"
    exit: list[EventMatch] = Field(
        default_factory=list,
        description="events that cancel an episode in flight: one stamped after the episode's "
        "start and by its deadline (absence, inactivity, dwell)",
    )
    lateness: PositiveDuration = Field(
        default="1h",
        validate_default=True,
        description="an episode decided later than this after its moment counts but sends nothing",
    )
    send_window: SendWindow | None = Field(
        default=None,
        description="days (mon..sun) and local hours (start, end) when its messages may go out; "
        "outside, they wait for the next opening in the user's time zone",
    )
    experiment: Experiment | None = Field(
        default=None, description="an A/B test of this trigger's message, with a holdout"
    )

    @property
    def cooldown_seconds(self) -> int:
        return int(self.cooldown)

    @property
    def once_per_seconds(self) -> int | None:
        return self.reeligibility.once_per if isinstance(self.reeligibility, OncePer) else None


class ExitEvents(_Strict):
    """A trigger's exit events as one node (the engine keeps their times as a behavior's
    state, under a slot digested from this)."""

    exit: list[EventMatch]


class TriggerFile(_Strict):
    """A file of trigger definitions (triggers/*.yaml)."""

    triggers: list[Trigger] = Field(default_factory=list)


for _model in (AllCondition, AnyCondition, NotCondition, Trigger, TriggerFile):
    _model.model_rebuild()


# ---- structure: what arms a trigger ---------------------------------------------------------------
Loc = tuple[str | int, ...]


@dataclass
class Branch:
    """One way for a trigger's condition to hold: at most one behavior (the pattern that
    arms it and gives it its key) and the filters that must hold with it."""

    pattern: BaseModel | None
    loc: Loc
    filters: list[BaseModel] = field(default_factory=list)


class StructureError(ValueError):
    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def children(node: BaseModel) -> list[tuple[str | int, BaseModel]]:
    """The direct sub-conditions, with their location step(s)."""
    if isinstance(node, AllCondition):
        return [(i, c) for i, c in enumerate(node.all_)]
    if isinstance(node, AnyCondition):
        return [(i, c) for i, c in enumerate(node.any_)]
    if isinstance(node, NotCondition):
        return [("", node.not_)]
    return []


def has_behavior(node: BaseModel) -> bool:
    """Whether a behavior appears outside any `not`."""
    if isinstance(node, PATTERNS):
        return True
    if isinstance(node, (AllCondition, AnyCondition)):
        return any(has_behavior(c) for _, c in children(node))
    return False


def split(node: BaseModel, loc: Loc) -> list[Branch]:
    """The condition as `any` of branches. Raises StructureError when an `all` joins two
    behaviors (they would have to hold at the same instant; chain them with `sequence`)."""
    if isinstance(node, PATTERNS):
        return [Branch(node, loc)]
    if not has_behavior(node):
        return [Branch(None, loc, [node])]
    if isinstance(node, AnyCondition):
        out: list[Branch] = []
        for i, child in enumerate(node.any_):
            out.extend(split(child, (*loc, "any", i)))
        return out
    assert isinstance(node, AllCondition)
    combined = [Branch(None, loc)]
    for i, child in enumerate(node.all_):
        step = []
        for left in combined:
            for right in split(child, (*loc, "all", i)):
                if left.pattern is not None and right.pattern is not None:
                    raise StructureError(
                        loc,
                        "an `all` can hold one behavior (event, count, absence, inactivity, dwell, "
                        "sequence, trait_change, date) per branch, the rest being filters; chain behaviors with `sequence`",
                    )
                pattern, where = (
                    (left.pattern, left.loc)
                    if left.pattern is not None
                    else (right.pattern, right.loc)
                )
                step.append(Branch(pattern, where, [*left.filters, *right.filters]))
        combined = step
        if len(combined) > MAX_BRANCHES:
            raise StructureError(
                loc, f"the condition is too complex (over {MAX_BRANCHES} alternatives)"
            )
    return combined


def pattern_loc(branch_loc: Loc, node: BaseModel) -> Loc:
    return (*branch_loc, getattr(node, "kind", ""))


def check_structure(trigger: Trigger, base: Loc = ()) -> list[tuple[Loc, str]]:
    """What pydantic cannot see: conditions with nothing to arm on, `all` of two behaviors,
    sequence time limits, cart-change absences with correlation, fallback = channel."""
    when = (*base, "when")
    problems = _branch_problems(trigger.when, when)
    _node_problems(trigger.when, when, problems)
    if trigger.action.fallback is not None and trigger.action.fallback == trigger.action.channel:
        problems.append(
            ((*base, "action", "fallback"), "fallback is the same channel as `channel`")
        )
    return problems


def _branch_problems(node: BaseModel, when: Loc) -> list[tuple[Loc, str]]:
    """Whether the condition splits into branches that each have a behavior to arm on."""
    problems: list[tuple[Loc, str]] = []
    try:
        branches = split(node, when)
    except StructureError as err:
        problems.append((err.loc, err.message))
        branches = []
    if branches and all(b.pattern is None for b in branches):
        problems.append(
            (
                when,
                "unreachable condition: nothing to arm on (only filters or `not`); add an event, count, "
                "absence, inactivity, dwell, sequence, trait_change or date outside the `not`",
            )
        )
    elif len(branches) > MAX_BRANCHES:
        problems.append((when, f"the condition is too complex (over {MAX_BRANCHES} alternatives)"))
    else:
        for b in branches:
            if b.pattern is None:
                problems.append(
                    (
                        b.loc,
                        "unreachable condition: this branch holds only filters or `not`: nothing to arm on",
                    )
                )
    return problems


def _node_problems(node: BaseModel, loc: Loc, problems: list[tuple[Loc, str]]) -> None:
    """The rules of single conditions, for the node and everything under it."""
    if isinstance(node, SequenceCondition):
        for i, step in enumerate(node.sequence.steps):
            step_loc = (*loc, "sequence", "steps", i)
            if i == 0 and step.within is not None:
                problems.append(
                    ((*step_loc, "within"), "the first step has no previous step: remove `within`")
                )
            elif i > 0 and step.within is None:
                problems.append(
                    (step_loc, "missing `within`: the time limit from the previous step")
                )
    elif isinstance(node, AbsenceCondition) and node.absence.measured_from == "cart_change":
        if node.absence.correlate is not None:
            problems.append(
                (
                    (*loc, "absence", "correlate"),
                    "`correlate` does not apply when measured_from is cart_change",
                )
            )
        if node.absence.after.where:
            problems.append(
                (
                    (*loc, "absence", "after", "where"),
                    "`where` does not apply when measured_from is cart_change",
                )
            )
    for where, child in children(node):
        kind = getattr(node, "kind", "")
        _node_problems(child, (*loc, kind) if where == "" else (*loc, kind, where), problems)


def json_schema() -> dict[str, Any]:
    schema = TriggerFile.model_json_schema(by_alias=True)
    schema.update(
        {"title": "nudge trigger definitions", "description": (TriggerFile.__doc__ or "").strip()}
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(schema_text())
