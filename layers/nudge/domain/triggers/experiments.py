"""Experiments on triggers (docs/measurement.md): deterministic assignment of a user to a
variant, and what a variant changes in the action.

A user's variant is drawn once, the first time an episode of the trigger fires for them,
from a hash of the experiment's id and the user's id (so every process, the backtest and
local mode draw the same), and kept in the trigger's state: changing the weights of a
running experiment moves no one who was already assigned.
"""

from __future__ import annotations

import hashlib
from typing import Any

from nudge.domain.triggers.model import Experiment, Variant


def draw(experiment: Experiment, user_id: str) -> Variant:
    """The variant the user's hash falls in, by the variants' weights."""
    digest = hashlib.blake2b(
        f"{experiment.id}\x1f{user_id}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    u = int.from_bytes(digest, "big") / 2**64  # uniform in [0, 1)
    total = sum(v.weight for v in experiment.variants)
    edge = 0.0
    for v in experiment.variants:
        edge += v.weight / total
        if u < edge:
            return v
    return experiment.variants[-1]


def variant_named(experiment: Experiment, name: str | None) -> Variant | None:
    return next((v for v in experiment.variants if v.name == name), None)


def exposure(experiment: Experiment, variant: Variant) -> dict[str, Any]:
    """What the action carries about the experiment (nudge.domain.messages.ExperimentArm;
    the exposure record archives its id, name and variant): `strategy`, the variant's
    recommendation strategy, when it names one (the delivery draws the template's
    recommendations by it)."""
    arm: dict[str, Any] = {
        "id": experiment.id,
        "name": experiment.name or experiment.id,
        "variant": variant.name,
        "holdout": variant.holdout,
    }
    if variant.recommendations is not None:
        arm["strategy"] = variant.recommendations
    return arm


def apply_variant(action: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """The action as the variant sends it (its channel and template, if it changes them;
    its recommendation strategy rides on the exposure)."""
    out = dict(action)
    if variant.channel is not None:
        out["channel"] = variant.channel
    if variant.template is not None:
        out["template"] = variant.template
    return out
