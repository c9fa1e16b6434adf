"""Signed unsubscribe tokens: the token is the credential of `/v1/unsubscribe`, so it is
an HMAC-SHA256 over (user, channel) with a secret only the stack knows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import quote

from nudge.domain.channels import ALL_CHANNELS, OPT_OUT_CHANNELS
from nudge.domain.errors import BadRequestError, ForbiddenError

CHANNELS = frozenset(OPT_OUT_CHANNELS)  # what a token may name: a channel, or all of them


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, user_id: str, channel: str) -> str:
    payload = json.dumps([user_id, channel], separators=(",", ":")).encode()
    sig = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(sig)}"


def verify_token(secret: bytes, token: str | None) -> tuple[str, str]:
    """Returns (user_id, channel); a missing token is a 400, a forged one a 403."""
    if not token:
        raise BadRequestError("missing token")
    try:
        payload_part, sig_part = token.split(".", 1)
        payload = _unb64(payload_part)
        sig = _unb64(sig_part)
    except (ValueError, TypeError):
        raise ForbiddenError("invalid unsubscribe token") from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(sig, expected):
        raise ForbiddenError("invalid unsubscribe token")
    try:
        user_id, channel = json.loads(payload)
    except (ValueError, TypeError):
        raise ForbiddenError("invalid unsubscribe token") from None
    if not isinstance(user_id, str) or channel not in CHANNELS:
        raise ForbiddenError("invalid unsubscribe token")
    return user_id, channel


def unsubscribe_url(base_url: str, secret: bytes, user_id: str, channel: str) -> str:
    return (
        f"{base_url.rstrip('/')}/v1/unsubscribe?token={quote(make_token(secret, user_id, channel))}"
    )


def confirmation_page(channel: str) -> str:
    what = (
        "messages"
        if channel == ALL_CHANNELS
        else {
            "email": "emails",
            "sms": "text messages",
            "push": "push notifications",
            "inapp": "in-app messages",
        }[channel]
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'><title>Unsubscribed</title>"
        "<body style='font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem'>"
        f"<h1>You are unsubscribed</h1><p>You will not receive these {what} from us any more.</p>"
        "</body></html>"
    )
