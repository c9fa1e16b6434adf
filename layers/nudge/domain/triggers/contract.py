"""What the engine promises its callers: the Decisions it returns (Fires to send, Timers
to file in the wake-up index), the identities that make them idempotent, and the time
constants those promises are measured by.

The process use case (`nudge.domain.processing`) applies Decisions; the scheduler adapter
and the backtest file each Timer in the bucket of the minute it falls due
(`nudge.domain.wakeups`, docs/decisions.md D17), keyed by (user, trigger, key): arming
the same (trigger, key) again replaces its timer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NONE_KEY = ""  # the key of a trigger (or behavior) without a key property
DUE_TOLERANCE_MS = 60_000  # a timer firing this close to its due counts as that timer
PASSED_TIMER_MS = 300_000  # a recorded timer this far past its due has fired or was lost:
# it covers nothing (a wake-up that only re-armed leaves it recorded, to save the write)
FORGET_TIMER_AHEAD_MS = 3_600_000  # with nothing pending, a timer this far ahead is forgotten
LATE_FLUSH_MS = 60_000  # a passed deadline found by events waits this long for the rest of
# their flush (decided at the wake-up after); a trait set this soon after an event counts for it
LATE_EVENT_MS = 30_000  # an event received more than this after its timestamp is late: its
# instant episodes wait LATE_FLUSH_MS for the rest of its flush too. 30 s is the default
# flush interval of Segment's mobile SDKs: an event up to one interval old is on time


@dataclass(frozen=True)
class Timer:
    """A wake-up to file: check (trigger, key) of the user again at `due`."""

    trigger_id: str
    key: str | None
    due: datetime


@dataclass(frozen=True)
class Fire:
    """One episode that met its trigger's condition."""

    trigger_id: str
    key: str | None
    at: datetime
    episode: int
    action_id: str  # deterministic per (user, trigger, key, episode)
    action: dict[str, Any]
    priority: int
    cooldown_seconds: int
    context: dict[str, Any]
    # the trigger's experiment: {"id", "name", "variant", "holdout", "strategy"?}
    # (experiments.exposure)
    experiment: dict[str, Any] | None = None
    # what goes on the actions queue: nudge.domain.messages.ActionMessage.of


@dataclass
class Decisions:
    """What one call of the engine decided for one user: the episodes to send and the
    timers to arm. A timer no longer needed is left to fire: its check changes nothing,
    which costs less than a call to delete it (docs/decisions.md D17)."""

    fires: list[Fire] = field(default_factory=list)
    arm: list[Timer] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fires or self.arm)


def digest(*parts: str, size: int) -> str:
    """A short stable hash of the parts (hex, `size` bytes): the same in every process."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


def timer_due(deadline_ms: int) -> int:
    """A timer for a deadline: the first whole second after it. Scheduler's `at()` counts
    whole seconds, and an event stamped exactly at the deadline (an order at 15:00 of a
    15-minute wait, a page left at 5:00 of a 5-minute dwell) is processed before the
    check, live and in the backtest alike; the condition itself still holds from the
    deadline on."""
    return (deadline_ms // 1000 + 1) * 1000


def action_id(user_id: str, trigger_id: str, key: str | None, episode: int) -> str:
    """The id of an episode's action, the same however often the episode is decided
    (a retried batch, a duplicate timer): delivery claims it once."""
    return digest(user_id, trigger_id, key or NONE_KEY, str(episode), size=16)
