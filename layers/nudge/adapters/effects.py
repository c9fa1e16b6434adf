"""Applying the trigger engine's decisions: actions onto the actions queue, timers into
the wake-up index. Both are idempotent (deterministic action ids; index items keyed by
bucket, user, trigger and key)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from nudge.domain.messages import ActionMessage
from nudge.domain.ports import ActionQueue, WakeUpIndex
from nudge.domain.triggers.contract import Decisions


class TriggerEffects:
    def __init__(self, *, actions: ActionQueue, wakeups: WakeUpIndex, now: datetime) -> None:
        self.actions = actions
        self.wakeups = wakeups
        self.now = now
        self.sent_actions = 0
        self.armed = 0
        self.refiled = 0  # timers filed again: their first write was too late for its sweep
        self.fired: Counter[str] = Counter()  # actions sent, by trigger id

    def apply(self, user_id: str, decisions: Decisions) -> None:
        self.apply_all([(user_id, decisions)])

    def apply_all(self, items: Sequence[tuple[str, Decisions]]) -> None:
        """The decisions of a batch's users in as few requests as the APIs allow: one
        SendMessageBatch per 10 actions, one BatchWriteItem per 25 timers."""
        actions = [ActionMessage.of(u, f, enqueued_at=self.now) for u, d in items for f in d.fires]
        if actions:
            self.actions.send(actions)
            self.sent_actions += len(actions)
            self.fired.update(f.trigger_id for _, d in items for f in d.fires)
        # a timer no longer needed is not deleted: it is re-checked and changes nothing
        timers = [(u, t) for u, d in items for t in d.arm]
        if timers:
            self.refiled += self.wakeups.arm_many(timers, now=self.now)
            self.armed += len(timers)
