"""The behaviors a trigger arms on, one class each: `base` (what they share), `instant`
(event, count, sequence), `absence` (the keyed absence), `cart` (the cart-change
absence), `presence` (inactivity, dwell), `traits` (trait_change, date), `exits` (a
trigger's exit events). `nudge.domain.triggers.compiler.REGISTRY`
maps each condition model to its class."""

from __future__ import annotations

from nudge.domain.triggers.behaviors.absence import AbsencePattern
from nudge.domain.triggers.behaviors.base import NO, Check, Moment, Pattern
from nudge.domain.triggers.behaviors.cart import CartAbsencePattern
from nudge.domain.triggers.behaviors.exits import ExitPattern
from nudge.domain.triggers.behaviors.instant import CountPattern, EventPattern, SequencePattern
from nudge.domain.triggers.behaviors.presence import DwellPattern, InactivityPattern
from nudge.domain.triggers.behaviors.traits import DatePattern, TraitChangePattern

__all__ = [
    "NO",
    "AbsencePattern",
    "CartAbsencePattern",
    "Check",
    "CountPattern",
    "DatePattern",
    "DwellPattern",
    "EventPattern",
    "ExitPattern",
    "InactivityPattern",
    "Moment",
    "Pattern",
    "SequencePattern",
    "TraitChangePattern",
]
