"""Signed unsubscribe tokens: the token is the credential of `/v1/unsubscribe`, so it is
an HMAC-SHA256 over (user, channel) with a secret only the stack knows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
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


def _what(channel: str) -> str:
    if channel == ALL_CHANNELS:
        return "messages"
    return {
        "email": "emails",
        "sms": "text messages",
        "push": "push notifications",
        "inapp": "in-app messages",
    }[channel]


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<meta name=robots content=noindex>"
        f"<title>{title}</title>"
        "<body style='font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;"
        f"padding:0 1rem'>{body}</body></html>"
    )


def confirmation_page(channel: str, token: str) -> str:
    """What the link of an email shows (GET): a question and a button that posts it.
    Opening the link changes nothing: mail scanners and previews follow links, and RFC
    8058 keeps the unsubscribe itself for a POST. The form posts what a one-click mail
    client posts, to the same URL (relative, so any path prefix of the API works)."""
    action = html.escape(f"unsubscribe?token={quote(token, safe='')}", quote=True)
    return _page(
        "Unsubscribe",
        f"<h1>Unsubscribe from {_what(channel)}?</h1>"
        f"<p>Press the button and we will not send you these {_what(channel)} any more.</p>"
        f'<form method=post action="{action}">'
        "<input type=hidden name=List-Unsubscribe value=One-Click>"
        "<button type=submit style='font-size:1rem;padding:.5rem 1rem'>Unsubscribe</button>"
        "</form>",
    )


def unsubscribed_page(channel: str) -> str:
    """What a browser sees once the form was posted."""
    return _page(
        "Unsubscribed",
        f"<h1>You are unsubscribed</h1><p>You will not receive these {_what(channel)} "
        "from us any more.</p>",
    )
