"""Applying the trigger engine's decisions: actions onto the actions queue, timers into
the wake-up index. Both are idempotent (deterministic action ids; index items keyed by
bucket, user, trigger and key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nudge.adapters.queues import SqsActionQueue
from nudge.adapters.scheduler import WakeUps
from nudge.domain.clock import iso
from nudge.domain.triggers.contract import Decisions, Fire


def action_message(user_id: str, fire: Fire, now: datetime) -> dict[str, Any]:
    """What delivery needs to act on one fired episode."""
    return {"user_id": user_id, **fire.to_dict(), "enqueued_at": iso(now)}


class TriggerEffects:
    def __init__(self, *, actions: SqsActionQueue, wakeups: WakeUps, now: datetime) -> None:
        self.actions = actions
        self.wakeups = wakeups
        self.now = now
        self.sent_actions = 0
        self.armed = 0

    def apply(self, user_id: str, decisions: Decisions) -> None:
        if decisions.fires:
            self.actions.send([action_message(user_id, f, self.now) for f in decisions.fires])
            self.sent_actions += len(decisions.fires)
        # a timer no longer needed is not deleted: it is re-checked and changes nothing
        if decisions.arm:
            self.wakeups.arm(user_id, decisions.arm, now=self.now)
            self.armed += len(decisions.arm)
