"""SES feedback (bounces and complaints) → addresses to suppress.

Accepts both SES notification formats: identity notifications (`notificationType`) and
configuration-set event publishing (`eventType`). Only permanent bounces suppress; a
transient bounce (mailbox full) does not."""

from __future__ import annotations

from typing import Any


def addresses_to_suppress(notification: dict[str, Any]) -> list[tuple[str, str]]:
    kind = notification.get("notificationType") or notification.get("eventType")
    out: list[tuple[str, str]] = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return []
        for r in bounce.get("bouncedRecipients") or []:
            if isinstance(r, dict) and r.get("emailAddress"):
                out.append(
                    (
                        str(r["emailAddress"]).lower(),
                        f"bounce:{bounce.get('bounceSubType', 'General')}",
                    )
                )
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        for r in complaint.get("complainedRecipients") or []:
            if isinstance(r, dict) and r.get("emailAddress"):
                out.append((str(r["emailAddress"]).lower(), "complaint"))
    return out
