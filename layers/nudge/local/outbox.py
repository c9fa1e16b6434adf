"""`/_local/outbox`: every message that left through SES or SNS in the emulation."""

from __future__ import annotations

from typing import Any


def read_outbox(endpoint_url: str) -> list[dict[str, Any]]:
    return []
