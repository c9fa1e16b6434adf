"""Firing EventBridge Scheduler one-time schedules in local mode (moto stores them but
never fires them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def fire_due(local: Any, target: datetime) -> int:
    return 0
