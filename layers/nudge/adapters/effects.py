"""Applying the trigger engine's decisions: actions onto the actions queue, timers onto
EventBridge Scheduler. Both are idempotent (deterministic action ids and schedule names)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nudge.adapters.queues import SqsActionQueue
from nudge.adapters.scheduler import SchedulerTimers
from nudge.domain.clock import iso


def action_message(user_id: str, fire: Any, now: datetime) -> dict[str, Any]:
    """What delivery needs to act on one fired episode."""
    return {"user_id": user_id, **fire.to_dict(), "enqueued_at": iso(now)}


class TriggerEffects:
    def __init__(
        self,
        *,
        actions: SqsActionQueue,
        timers: SchedulerTimers,
        now: datetime,
        fired_schedule: str | None = None,
    ) -> None:
        self.actions = actions
        self.timers = timers
        self.now = now
        self.fired_schedule = fired_schedule
        self.sent_actions = 0
        self.armed = 0

    def apply(self, user_id: str, decisions: Any) -> None:
        if decisions.fires:
            self.actions.send([action_message(user_id, f, self.now) for f in decisions.fires])
            self.sent_actions += len(decisions.fires)
        if decisions.disarm:
            self.timers.disarm(decisions.disarm)
        if decisions.arm:
            self.timers.arm(user_id, decisions.arm, fired_name=self.fired_schedule)
            self.armed += len(decisions.arm)
