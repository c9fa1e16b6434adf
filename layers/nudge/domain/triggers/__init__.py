"""Behavioral triggers as code: the definition format (model), its loader with
line-precise errors, the engine that evaluates triggers against a user's state, and the
backtest that replays history through the same engine.

Modules: `model` (the definition format), `loader` (files to a TriggerSet), `durations`,
`contract` (what the engine returns: Decisions, Fire, Timer, action ids), `values`
(property paths, comparisons, matchers), `behaviors/` (one Pattern class per behavior),
`compiler` (definitions to Patterns and predicates; the behavior REGISTRY), `state` (the
per-trigger state stored in the profile), `engine` (the Engine), `backtest`.

Exports resolve lazily, so that `python -m nudge.domain.triggers.model` (which prints
the editor schema) runs the module once."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nudge.domain.triggers.contract import Decisions, Fire, Timer, action_id
    from nudge.domain.triggers.engine import Engine
    from nudge.domain.triggers.loader import (
        DefinitionError,
        DefinitionIssue,
        TriggerSet,
        default_triggers_path,
        load_triggers,
        parse_text,
        validate_path,
    )
    from nudge.domain.triggers.model import Trigger

_EXPORTS = {
    "Decisions": "contract",
    "Engine": "engine",
    "Fire": "contract",
    "Timer": "contract",
    "action_id": "contract",
    "DefinitionError": "loader",
    "DefinitionIssue": "loader",
    "TriggerSet": "loader",
    "default_triggers_path": "loader",
    "load_triggers": "loader",
    "parse_text": "loader",
    "validate_path": "loader",
    "Trigger": "model",
}
__all__ = [
    "Decisions",
    "DefinitionError",
    "DefinitionIssue",
    "Engine",
    "Fire",
    "Timer",
    "Trigger",
    "TriggerSet",
    "action_id",
    "default_triggers_path",
    "load_triggers",
    "parse_text",
    "validate_path",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
