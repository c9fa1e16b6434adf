"""`/_local/outbox`: every message that left through SES or SNS in the emulation.

moto keeps what SES v2 and SNS were asked to send; local mode's moto server answers those
messages alone at GET /_nudge/sent.json (moto_server.py), as /moto-api/data.json shows
them but without the rest of moto's state (every DynamoDB item and SQS message ever made).
For an SES v2 Simple message local mode keeps its headers and text part too
(emulation.py). The delivery log says which user, trigger and variant each provider
message id belongs to: read only when something was sent, and only the rows that hold a
provider id, with the four attributes used.
Each message has `headers` (an email's as sent; `{}` for SMS and push) and `text` (an
email's plain-text part; the body for SMS and push)."""

from __future__ import annotations

import json
from email import policy
from email.parser import Parser
from functools import partial
from typing import Any, TypedDict

import requests

from nudge.adapters.tables import DeliveryRow, bind_tables
from nudge.domain.clock import from_ms, iso
from nudge.local.moto_server import SENT_PATH


def _log_by_provider_id() -> dict[str, DeliveryRow]:
    bind_tables()
    rows = DeliveryRow.scan(
        DeliveryRow.provider_id.exists(),
        attributes_to_get=["provider_id", "user_id", "trigger_id", "variant", "at"],
    )
    return {r.provider_id: r for r in rows if r.provider_id}


class OutboxMessage(TypedDict):
    """One message of `/_local/outbox` (docs/api.md)."""

    channel: str  # email | sms | push
    to: str
    user_id: str | None  # None: no delivery log entry has its provider id
    trigger: str | None
    variant: str | None
    subject: str | None
    body: str
    headers: dict[str, str]
    text: str
    sent_at: str | None
    id: str  # the provider's message id


def read_outbox(endpoint_url: str) -> list[OutboxMessage]:
    # moto's sent messages as its state dump shows them, untyped JSON: read with .get()
    data: dict[str, Any] = requests.get(f"{endpoint_url}{SENT_PATH}", timeout=10).json()
    ses, sns = data.get("ses") or {}, data.get("sns") or {}
    anything = (
        ses.get("Message")
        or ses.get("RawMessage")
        or sns.get("SMS")
        or any(ep.get("messages") for ep in sns.get("PlatformEndpoint", []))
    )
    log = _log_by_provider_id() if anything else {}
    entry = partial(_message, log)
    out: list[OutboxMessage] = []
    for m in ses.get("Message", []):
        to = ", ".join((m.get("destinations") or {}).get("ToAddresses") or [])
        headers = {"From": m.get("source") or "", "To": to, "Subject": m.get("subject") or ""}
        headers.update(m.get("headers") or {})
        body = m.get("body") or ""
        text = m.get("text") or ""
        out.append(
            entry("email", m.get("id", ""), to, m.get("subject"), body, headers=headers, text=text)
        )
    for m in ses.get("RawMessage", []):
        out.append(_raw_email(entry, m))
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


def _message(
    log: dict[str, DeliveryRow],
    channel: str,
    provider_id: str,
    to: str,
    subject: str | None,
    body: str,
    *,
    headers: dict[str, str] | None = None,
    text: str | None = None,
) -> OutboxMessage:
    """One message sent, with what its delivery log entry (by provider id) says."""
    row = log.get(provider_id)
    return {
        "channel": channel,
        "to": to,
        "user_id": row.user_id if row else None,
        "trigger": row.trigger_id if row else None,
        "variant": row.variant if row else None,
        "subject": subject,
        "body": body,
        "headers": headers or {},
        "text": body if text is None else text,
        "sent_at": iso(from_ms(row.at)) if row else None,
        "id": provider_id,
    }


def _raw_email(entry: partial[OutboxMessage], m: dict[str, Any]) -> OutboxMessage:
    """An SES v2 Raw message: the MIME message as sent, read back."""
    msg = Parser(policy=policy.default).parsestr(m.get("raw_data") or "")
    headers = {k: str(v) for k, v in msg.items()}
    text_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    text = text_part.get_content() if text_part is not None else ""
    html = html_part.get_content() if html_part is not None else None
    to = headers.get("To") or ", ".join(m.get("destinations") or [])
    subject = headers.get("Subject")
    return entry("email", m.get("id", ""), to, subject, html or text, headers=headers, text=text)
