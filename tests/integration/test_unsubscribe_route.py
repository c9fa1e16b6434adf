"""Unsubscribe under moto (docs/delivery.md): opening an email's link shows a confirmation
page and changes nothing — mail scanners and previews follow links — and the page's
button, or a mail client's RFC 8058 one-click POST, unsubscribes. A forged token: 403."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

from tests.integration.conftest import body_of, http
from tests.integration.delivery_support import Delivery, dx_fixture, headers_of  # noqa: F401


def unsubscribe_link(dx: Delivery, user_id: str) -> str:
    dx.run([dx.action(user_id, "cart_abandonment")])
    return str(headers_of(dx.ses_requests[-1])["List-Unsubscribe"][1:-1])


def call(
    dx: Delivery, method: str, url: str, *, headers: dict[str, str] | None = None, raw: bytes = b""
) -> dict[str, Any]:
    parts = urlsplit(url)
    return dx.api(http(method, parts.path, headers=headers or {}, raw=raw, query=parts.query))


def test_opening_the_link_shows_a_page_with_a_button_and_unsubscribes_nothing(
    dx: Delivery,
) -> None:
    dx.seed("u1")
    link = unsubscribe_link(dx, "u1")
    # when a scanner, a preview or the person opens the link, as often as it likes
    for _ in range(3):
        resp = call(dx, "GET", link, headers={"accept": "text/html"})
        assert resp["statusCode"] == 200
        assert resp["headers"]["Content-Type"].startswith("text/html")
    # then the user is still subscribed
    assert "opt_out" not in dx.profile("u1").extra
    # and the page's form posts the one-click body to the link itself
    page = resp["body"]
    form = re.search(r'<form method=post action="([^"]+)">(.*?)</form>', page, re.S)
    assert form is not None
    assert urljoin(link, html.unescape(form.group(1))) == link
    assert "name=List-Unsubscribe value=One-Click" in form.group(2)
    assert "Unsubscribe from emails?" in page


def test_the_pages_button_unsubscribes_and_answers_a_page(dx: Delivery) -> None:
    dx.seed("u1")
    link = unsubscribe_link(dx, "u1")
    resp = call(
        dx,
        "POST",
        link,
        headers={
            "accept": "text/html,application/xhtml+xml",
            "content-type": "application/x-www-form-urlencoded",
        },
        raw=b"List-Unsubscribe=One-Click",
    )
    assert resp["statusCode"] == 200 and "You are unsubscribed" in resp["body"]
    assert dx.profile("u1").extra["opt_out"] == ["email"]


def test_a_mail_clients_one_click_post_unsubscribes(dx: Delivery) -> None:
    # RFC 8058: a POST to the List-Unsubscribe URL with this form body, no cookies
    dx.seed("u1")
    link = unsubscribe_link(dx, "u1")
    resp = call(
        dx,
        "POST",
        link,
        headers={"content-type": "application/x-www-form-urlencoded"},
        raw=b"List-Unsubscribe=One-Click",
    )
    assert (resp["statusCode"], body_of(resp)) == (200, {"unsubscribed": True, "channel": "email"})
    assert dx.profile("u1").extra["opt_out"] == ["email"]


def test_a_forged_token_is_403_by_get_and_by_post(dx: Delivery) -> None:
    dx.seed("u1")
    token = parse_qs(urlsplit(unsubscribe_link(dx, "u1")).query)["token"][0]
    payload, _, sig = token.partition(".")
    forged = f"{payload}.{'A' * len(sig)}"
    for method in ("GET", "POST"):
        resp = call(dx, method, f"/v1/unsubscribe?token={quote(forged)}")
        assert resp["statusCode"] == 403
        assert body_of(resp)["error"] == "forbidden"
    assert "opt_out" not in dx.profile("u1").extra
