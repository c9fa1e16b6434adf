"""`/_local/outbox`: every message that left through SES or SNS in the emulation.

moto keeps what SES v2 and SNS were asked to send (GET /moto-api/data.json); the
delivery log says which user, trigger and variant each provider message id belongs to."""

from __future__ import annotations

import json
from typing import Any

import requests

from nudge.adapters.tables import DeliveryRow, bind_tables
from nudge.domain.clock import from_ms, iso


def _log_by_provider_id() -> dict[str, DeliveryRow]:
    bind_tables()
    return {r.provider_id: r for r in DeliveryRow.scan() if r.provider_id}


def read_outbox(endpoint_url: str) -> list[dict[str, Any]]:
    data = requests.get(f"{endpoint_url}/moto-api/data.json", timeout=10).json()
    log = _log_by_provider_id()
    out: list[dict[str, Any]] = []

    def entry(
        channel: str, provider_id: str, to: str, subject: str | None, body: str
    ) -> dict[str, Any]:
        row = log.get(provider_id)
        return {
            "channel": channel,
            "to": to,
            "user_id": row.user_id if row else None,
            "trigger": row.trigger_id if row else None,
            "variant": row.variant if row else None,
            "subject": subject,
            "body": body,
            "sent_at": iso(from_ms(row.at)) if row else None,
            "id": provider_id,
        }

    for m in (data.get("ses") or {}).get("Message", []):
        destinations = m.get("destinations") or {}
        to = ", ".join(destinations.get("ToAddresses") or [])
        out.append(entry("email", m.get("id", ""), to, m.get("subject"), m.get("body") or ""))
    sns = data.get("sns") or {}
    for m in sns.get("SMS", []):
        out.append(
            entry(
                "sms",
                m.get("message_id", ""),
                m.get("phone_number", ""),
                None,
                m.get("message", ""),
            )
        )
    for ep in sns.get("PlatformEndpoint", []):
        for message_id, raw in (ep.get("messages") or {}).items():
            title, body = None, raw
            try:
                payload = json.loads(raw)
                body = payload.get("default", raw)
                apns = json.loads(payload.get("APNS") or payload.get("APNS_SANDBOX") or "{}")
                alert = (apns.get("aps") or {}).get("alert") or {}
                title, body = alert.get("title"), alert.get("body", body)
            except (ValueError, AttributeError):
                pass
            out.append(entry("push", message_id, ep.get("arn", ""), title, body))
    out.sort(key=lambda m: m["sent_at"] or "")
    return out
