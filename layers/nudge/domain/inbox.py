"""The in-app inbox as the API shows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nudge.domain.clock import iso, to_ms


def inbox_message_id(fired_at: datetime, action_id: str) -> str:
    """An in-app message's id: the episode's time (the inbox lists newest first) and its
    action, so that every attempt at one action writes the same item."""
    return f"{to_ms(fired_at):013d}-{action_id[:12]}"


@dataclass(frozen=True)
class InboxMessage:
    id: str
    trigger: str
    title: str
    body: str
    cta: str | None
    cta_url: str | None
    created_at: datetime
    read: bool
    action_id: str | None = None  # the action that sent it (not shown in the inbox)

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "trigger": self.trigger,
            "title": self.title,
            "body": self.body,
            "created_at": iso(self.created_at),
            "read": self.read,
        }
        if self.cta:
            out["cta"] = self.cta
        if self.cta_url:
            out["cta_url"] = self.cta_url
        return out


def inbox_view(messages: Sequence[InboxMessage]) -> dict[str, Any]:
    ordered = sorted(messages, key=lambda m: m.id, reverse=True)
    return {"messages": [m.view() for m in ordered]}
