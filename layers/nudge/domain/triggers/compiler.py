"""From a trigger definition (the models of `model.py`) to what the engine runs: each
branch's behavior as a Pattern and its filters as predicates on a Moment.

REGISTRY maps each behavior's condition model to the Pattern that implements it (or to a
function choosing one). A new behavior is a Pattern class in `behaviors/` and a line
here. Two equal behaviors in a trigger (by definition) share one Pattern and one state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from nudge.domain.events import Event
from nudge.domain.profile import ORDER_COMPLETED
from nudge.domain.triggers.behaviors import (
    AbsencePattern,
    CartAbsencePattern,
    CountPattern,
    DatePattern,
    DwellPattern,
    EventPattern,
    ExitPattern,
    InactivityPattern,
    Moment,
    Pattern,
    SequencePattern,
    TraitChangePattern,
)
from nudge.domain.triggers.model import (
    AbsenceCondition,
    AllCondition,
    AnyCondition,
    BoughtCondition,
    CountCondition,
    DateCondition,
    DwellCondition,
    EventCondition,
    ExitEvents,
    InactivityCondition,
    NotCondition,
    OncePer,
    SegmentCondition,
    SequenceCondition,
    TraitChangeCondition,
    TraitCondition,
    Trigger,
    children,
    split,
)
from nudge.domain.triggers.values import MISSING, compile_filter

Pred = Callable[[Moment], bool]


def _absence(node: AbsenceCondition) -> Pattern:
    """The cart-change absence reads the profile's cart; the other is keyed by events."""
    if node.absence.measured_from == "cart_change":
        return CartAbsencePattern(node)
    return AbsencePattern(node)


REGISTRY: dict[type[BaseModel], Callable[[Any], Pattern]] = {
    EventCondition: EventPattern,
    CountCondition: CountPattern,
    SequenceCondition: SequencePattern,
    AbsenceCondition: _absence,
    InactivityCondition: InactivityPattern,
    DwellCondition: DwellPattern,
    TraitChangeCondition: TraitChangePattern,
    DateCondition: DatePattern,
}


def filters_hold(filters: list[Pred], m: Moment) -> bool:
    return all(f(m) for f in filters)


_SUFFIX = re.compile(r" [0-9]+$")


def segment_family(name: str) -> str:
    """The name a segment filter sees: the archetype's. Training names a second cluster
    of one archetype with a number ("frequent buyers 2", nudge.learn.segments); a filter
    on `frequent buyers` means both (a trigger cannot know how many clusters a run finds)."""
    return _SUFFIX.sub("", name)


class Compiler:
    """Compiles one trigger's conditions; `patterns` collects its behaviors by slot."""

    def __init__(self) -> None:
        self.patterns: dict[str, Pattern] = {}

    def pattern(self, node: BaseModel) -> Pattern:
        for cls in type(node).__mro__:
            make = REGISTRY.get(cls)
            if make is not None:
                made = make(node)
                return self.patterns.setdefault(made.slot, made)
        raise TypeError(f"not a behavior: {type(node).__name__}")

    def predicate(self, node: BaseModel) -> Pred:
        if isinstance(node, AllCondition):
            parts = [self.predicate(c) for c in node.all_]
            return lambda m: all(p(m) for p in parts)
        if isinstance(node, AnyCondition):
            parts = [self.predicate(c) for c in node.any_]
            return lambda m: any(p(m) for p in parts)
        if isinstance(node, NotCondition):
            inner = self.predicate(node.not_)
            return lambda m: not inner(m)
        if isinstance(node, TraitCondition):
            traits = [(name, compile_filter(pf)) for name, pf in node.trait.items()]
            return lambda m: all(pred(m.profile.traits.get(name, MISSING)) for name, pred in traits)
        if isinstance(node, SegmentCondition):
            seg = compile_filter(node.segment)
            return lambda m: seg(
                MISSING if m.profile.segment is None else segment_family(m.profile.segment)
            )
        if isinstance(node, BoughtCondition):
            want = node.bought
            # in event time: bought at or before the moment (an order stamped after the
            # third view does not stop the episode of the third view)
            return lambda m: (
                (m.product is not None and m.profile.bought_by(m.product, m.at)) == want
            )
        return self._behavior_holds(self.pattern(node))

    @staticmethod
    def _behavior_holds(pattern: Pattern) -> Pred:
        """A behavior used as a predicate (under `not`): does it hold at this moment?"""

        def holds(m: Moment) -> bool:
            keys = [m.key]
            if pattern.key_prop is not None and m.event is not None:
                keys = pattern.keys(m.event) or keys
            return any(
                pattern.held(
                    m.states.get(pattern.slot) or {},
                    _moved(Moment(m.profile, m.now, m.event, k, m.states, m.product), m.at),
                )
                for k in keys
            )

        return holds


def _moved(m: Moment, at: int | None) -> Moment:
    m.at = at
    return m


def _filter_nodes(node: BaseModel) -> list[BaseModel]:
    """A filter and every condition nested in it (`model.children`)."""
    return [node, *(n for _, child in children(node) for n in _filter_nodes(child))]


class CompiledTrigger:
    """A trigger ready to evaluate: its branches (a behavior and the filters that must
    hold with it), split into instant and durable ones, and its re-eligibility rule."""

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self.id = trigger.id
        compiler = Compiler()
        branches = split(trigger.when, ("when",))
        self.branches: list[tuple[Pattern, list[Pred]]] = []
        for b in branches:
            if b.pattern is None:
                continue  # refused by the loader; ignored if built by hand
            pattern = compiler.pattern(b.pattern)
            self.branches.append((pattern, [compiler.predicate(f) for f in b.filters]))
        self.exit = ExitPattern(ExitEvents(exit=trigger.exit)) if trigger.exit else None
        if self.exit is not None:
            compiler.patterns.setdefault(self.exit.slot, self.exit)
        self.patterns = compiler.patterns
        self.instant = [(p, fs) for p, fs in self.branches if p.instant]
        self.durable = [(p, fs) for p, fs in self.branches if not p.instant]
        self.durable_keyed = any(p.key_prop is not None for p, _ in self.durable)
        self._unkeyed = [p for p, _ in self.durable if p.key_prop is None]
        self.action = trigger.action.as_dict()
        if trigger.send_window is not None:
            self.action["send_window"] = trigger.send_window.as_dict()
        self.lateness_ms = trigger.lateness * 1000
        self.experiment = trigger.experiment
        nodes = [
            n
            for b in branches
            if b.pattern is not None
            for f in b.filters
            for n in _filter_nodes(f)
        ]
        self.filter_traits = sorted(
            {t for n in nodes if isinstance(n, TraitCondition) for t in n.trait}
        )
        # what an `identify` can change (traits, the segment): an instant episode these stop
        # waits a minute for one
        self.filtered_by_traits = bool(self.filter_traits) or any(
            isinstance(n, SegmentCondition) for n in nodes
        )
        self.priority = trigger.priority
        self.cooldown_seconds = trigger.cooldown_seconds
        self.once = trigger.reeligibility == "once"
        rule = trigger.reeligibility
        self.once_per_ms = rule.once_per * 1000 if isinstance(rule, OncePer) else None
        self.horizon_ms = max((p.horizon_ms for p in self.patterns.values()), default=0)

    def unsettled(self, ev: Event) -> bool:
        """Whether the event may move a keyless durable deadline or change a filter
        (traits, bought), so that the deadline must be evaluated again."""
        return (
            ev.type in ("identify", "group")
            or ev.event == ORDER_COMPLETED
            or any(p.relevant(ev) for p in self._unkeyed)
        )
