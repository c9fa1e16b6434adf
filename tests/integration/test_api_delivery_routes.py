"""The api function's delivery routes under moto (docs/api.md): unsubscribe, devices, the in-app
inbox and the delivery log, driven together with the deliver function."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

from nudge.domain.unsubscribe import make_token

from tests.integration.conftest import WRITE_KEY
from tests.integration.delivery_support import Delivery, dx_fixture, headers_of  # noqa: F401

# ---- unsubscribe ------------------------------------------------------------------------------


def _unsubscribe_token(dx: Delivery, user_id: str) -> str:
    """The token of the List-Unsubscribe header of an email the user received."""
    dx.run([dx.action(user_id, "cart_abandonment")])
    url = headers_of(dx.ses_requests[-1])["List-Unsubscribe"][1:-1]
    return parse_qs(urlsplit(url).query)["token"][0]


def test_the_unsubscribe_link_works_by_get_and_one_click_post_and_later_emails_are_opted_out(
    dx: Delivery,
) -> None:
    dx.seed("u1")
    token = _unsubscribe_token(dx, "u1")
    assert len(dx.emails()) == 1

    # opening the link (a mail scanner, a preview) shows a page and unsubscribes nothing
    status, page = dx.get("/v1/unsubscribe", key="", query=f"token={quote(token)}")
    assert status == 200
    assert isinstance(page, str) and page.lstrip().lower().startswith("<!doctype html>")
    assert '<form method=post action="unsubscribe?token=' in page
    assert "opt_out" not in dx.profile("u1").extra
    status, body = dx.post(
        "/v1/unsubscribe", key=None, query=f"token={quote(token)}"
    )  # RFC 8058 one-click
    assert (status, body) == (200, {"unsubscribed": True, "channel": "email"})
    assert dx.profile("u1").extra["opt_out"] == ["email"]

    dx.clock.set(dx.clock.now() + timedelta(days=2))  # past caps and cooldowns
    later = [dx.action("u1", "cart_abandonment"), dx.action("u1", "inactivity_winback")]
    dx.run(later)

    assert len(dx.emails()) == 1
    for action in later:
        entry = dx.entry("u1", action["action_id"])
        assert (entry.status, entry.reason) == ("opted_out", "opted_out:email")


def test_an_email_opt_out_leaves_the_in_app_inbox_on(dx: Delivery) -> None:
    dx.seed("u1")
    token = _unsubscribe_token(dx, "u1")
    dx.post("/v1/unsubscribe", key=None, query=f"token={quote(token)}")

    dx.run([dx.action("u1", "product_dwell_upsell")])

    assert len(dx.inbox("u1")) == 1


def test_a_tampered_unsubscribe_token_is_403_and_changes_nothing(dx: Delivery) -> None:
    dx.seed("u1")
    dx.seed("victim", email="vi@example.com")
    token = _unsubscribe_token(dx, "u1")
    sig = token.split(".")[1]
    forged_payload = make_token(b"not the secret", "victim", "email").split(".")[0]

    for bad in (
        f"{forged_payload}.{sig}",
        make_token(b"not the secret", "victim", "email"),
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "garbage",
    ):
        for method in ("GET", "POST"):
            status, body = dx._call(
                method, "/v1/unsubscribe", key=None, query=f"token={quote(bad)}"
            )
            assert status == 403, (bad, method)
            assert body["error"] == "forbidden"
    assert "opt_out" not in dx.profile("victim").extra
    assert "opt_out" not in dx.profile("u1").extra


def test_unsubscribe_without_a_token_is_400(dx: Delivery) -> None:
    status, body = dx.get("/v1/unsubscribe", key="")
    assert status == 400
    assert set(body) >= {"error", "message"}


# ---- devices and push -----------------------------------------------------------------------


def test_registering_an_apns_device_creates_an_sns_endpoint_in_the_profile_and_push_goes_to_it(
    dx: Delivery,
) -> None:
    dx.seed("u1", email=None)

    status, body = dx.post("/v1/users/u1/devices", {"platform": "apns", "token": "a" * 64})

    assert status == 201
    endpoint = body["endpoint_arn"]
    assert endpoint.startswith("arn:aws:sns:") and body["platform"] == "apns"
    assert [d["endpoint_arn"] for d in dx.profile("u1").extra["devices"]] == [endpoint]

    action = dx.action("u1", "repeat_product_view")
    dx.run([action])

    [raw] = dx.pushes(endpoint)
    payload = json.loads(raw)
    apns = json.loads(payload["APNS"])
    assert "Trail Runner 2" in apns["aps"]["alert"]["title"]
    assert apns["nudge"]["action_id"] == action["action_id"]
    entry = dx.entry("u1", action["action_id"])
    assert (entry.status, entry.channel) == ("sent", "push")
    assert dx.inbox("u1") == []


def test_a_push_action_without_a_device_falls_back_to_the_in_app_inbox(dx: Delivery) -> None:
    dx.seed("u1", email=None)
    action = dx.action("u1", "repeat_product_view")

    dx.run([action])

    assert dx.pushes() == []
    status, body = dx.get("/v1/users/u1/messages")
    assert status == 200
    [message] = body["messages"]
    assert message["trigger"] == "repeat_product_view"
    assert "Trail Runner 2" in message["title"]
    entry = dx.entry("u1", action["action_id"])
    assert (entry.status, entry.channel) == ("sent", "inapp")


def test_registering_a_device_with_an_invalid_platform_or_token_is_400(dx: Delivery) -> None:
    dx.seed("u1")
    for body in (
        {"platform": "blackberry", "token": "abc"},
        {"platform": "apns"},
        {"platform": "fcm", "token": " "},
        ["apns", "abc"],
    ):
        status, resp = dx.post("/v1/users/u1/devices", body)
        assert status == 400, body
        assert resp["error"] and resp["message"]
    assert "devices" not in dx.profile("u1").extra


def test_registering_a_device_for_an_unknown_user_is_404(dx: Delivery) -> None:
    status, _ = dx.post("/v1/users/nobody/devices", {"platform": "fcm", "token": "t"})
    assert status == 404


# ---- the in-app inbox -------------------------------------------------------------------------


def test_the_inbox_lists_messages_newest_first_and_marks_them_read(dx: Delivery) -> None:
    dx.seed("u1")
    dx.run([dx.action("u1", "product_dwell_upsell")])
    dx.clock.set(dx.clock.now() + timedelta(minutes=5))
    dx.run([dx.action("u1", "repeat_product_view")])

    status, body = dx.get("/v1/users/u1/messages")

    assert status == 200
    messages = body["messages"]
    assert [m["trigger"] for m in messages] == ["repeat_product_view", "product_dwell_upsell"]
    for m in messages:
        assert {"id", "trigger", "title", "body", "created_at", "read"} <= set(m)
        assert m["read"] is False and m["title"] and m["body"]
    assert messages[0]["created_at"] > messages[1]["created_at"]

    status, marked = dx.post(f"/v1/users/u1/messages/{quote(messages[1]['id'])}/read")
    assert status == 200 and marked["read"] is True
    _, after = dx.get("/v1/users/u1/messages")
    assert [m["read"] for m in after["messages"]] == [False, True]


def test_reading_an_unknown_message_is_404(dx: Delivery) -> None:
    dx.seed("u1")
    status, body = dx.post("/v1/users/u1/messages/0000000000000-nope/read")
    assert status == 404 and body["error"] == "not_found"


def test_the_inbox_of_an_unknown_user_is_404(dx: Delivery) -> None:
    status, body = dx.get("/v1/users/nobody/messages")
    assert status == 404 and body["error"] == "not_found"
    status, _ = dx.get("/v1/users/nobody/deliveries")
    assert status == 404


def test_the_delivery_routes_need_the_admin_key(dx: Delivery) -> None:
    dx.seed("u1")
    for method, path in (
        ("GET", "/v1/users/u1/messages"),
        ("GET", "/v1/users/u1/deliveries"),
        ("POST", "/v1/users/u1/messages/x/read"),
        ("POST", "/v1/users/u1/devices"),
    ):
        status, body = dx._call(method, path, key=WRITE_KEY)
        assert status == 403, (method, path)
        assert body["error"] == "forbidden"
        status, _ = dx._call(method, path, key=None)
        assert status == 401, (method, path)


# ---- the delivery log -----------------------------------------------------------------------


def test_deliveries_list_every_action_newest_first_with_its_status_and_reason(dx: Delivery) -> None:
    dx.seed("u1")
    first = dx.action("u1", "cart_abandonment")
    dx.run([first])
    dx.clock.set(dx.clock.now() + timedelta(minutes=10))
    second = dx.action("u1", "cart_abandonment")  # within the cooldown
    dx.run([second])
    dx.clock.set(dx.clock.now() + timedelta(minutes=10))
    third = dx.action("u1", "product_dwell_upsell")
    dx.run([third])

    status, body = dx.get("/v1/users/u1/deliveries")

    assert status == 200
    rows = body["deliveries"]
    assert [r["action_id"] for r in rows] == [
        third["action_id"],
        second["action_id"],
        first["action_id"],
    ]
    for r in rows:
        assert {"action_id", "trigger", "channel", "status", "reason", "at"} <= set(r)
    assert [(r["trigger"], r["channel"], r["status"], r["reason"]) for r in rows] == [
        ("product_dwell_upsell", "inapp", "sent", "ok"),
        ("cart_abandonment", "email", "capped", "cooldown"),
        ("cart_abandonment", "email", "sent", "ok"),
    ]
    assert rows[0]["at"] > rows[1]["at"] > rows[2]["at"]
    assert rows[2]["at"] == "2026-03-02T12:00:00.000Z"


def test_deliveries_of_a_user_with_none_yet_is_an_empty_list(dx: Delivery) -> None:
    dx.seed("u1")
    assert dx.get("/v1/users/u1/deliveries") == (200, {"deliveries": []})
