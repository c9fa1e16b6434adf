"""Issue 4's scenarios through local mode over HTTP: fired triggers become messages in
the outbox (SES / SNS in the emulation) and the inbox, guarded against fatigue."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest
import requests

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


def now_of(client: Client) -> datetime:
    return datetime.fromisoformat(client.clock(advance_seconds=0)["now"].replace("Z", "+00:00"))


def next_utc(client: Client, hour: int) -> datetime:
    target = (now_of(client) + timedelta(days=1)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )
    client.clock(set=target.isoformat())
    return target


def identify(client: Client, uid: str, **traits: str) -> None:
    r = client.send(
        "identify", {"userId": uid, "traits": {"email": f"{uid}@example.com", **traits}}
    )
    assert r.status_code == 200, r.text


def test_cart_abandonment_email_names_the_product_and_unsubscribe_works(
    client: Client, uid: str
) -> None:
    # given a user with an address who abandons a cart at a daytime hour
    next_utc(client, 14)
    identify(client, uid, name="Ada Lovelace")
    client.track(
        uid, "Product Added", {"product_id": "sku-42", "name": "Trail Runner 3", "price": 129}
    )
    # when the clock passes 15 minutes
    client.clock(advance_seconds=16 * 60)
    # then one email went out, naming the product
    mails = [m for m in client.outbox(uid) if m["channel"] == "email"]
    assert len(mails) == 1
    mail = mails[0]
    assert mail["to"] == f"{uid}@example.com" and mail["trigger"] == "cart_abandonment"
    assert "Trail Runner 3" in (mail["subject"] or "") + mail["body"]
    assert [d["status"] for d in client.deliveries(uid) if d["trigger"] == "cart_abandonment"] == [
        "sent"
    ]
    # and its unsubscribe link works, as a page and as RFC 8058 one-click POST
    link = html.unescape(
        re.search(r'href="([^"]*/v1/unsubscribe\?token=[^"]+)"', mail["body"]).group(1)
    )
    # the headers SES was given point one-click unsubscribe at the same link, and the
    # plain-text part was sent along with the HTML
    assert mail["headers"]["List-Unsubscribe"] == f"<{link}>"
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["headers"]["To"] == mail["to"]
    assert "Trail Runner 3" in mail["text"] and "<a " not in mail["text"]
    page = requests.get(link)  # a confirmation page: opening the link changes nothing
    assert page.status_code == 200 and '<form method=post action="unsubscribe?token=' in page.text
    assert requests.post(link, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    # a tampered token is refused
    assert (
        requests.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")).status_code == 403
    )
    # and a later email to that user is not sent, but logged opted_out
    client.clock(advance_seconds=25 * 3600)  # past the cooldown and the email cap
    client.track(uid, "Product Added", {"product_id": "sku-43", "name": "Trail Runner 4"})
    client.clock(advance_seconds=16 * 60)
    assert len([m for m in client.outbox(uid) if m["channel"] == "email"]) == 1
    statuses = [d["status"] for d in client.deliveries(uid) if d["trigger"] == "cart_abandonment"]
    assert statuses[0] == "opted_out" and statuses.count("sent") == 1


def test_five_triggers_within_an_hour_send_at_most_three_messages_and_one_email(
    client: Client, uid: str
) -> None:
    # given a user with an email address and no device, at a daytime hour
    next_utc(client, 12)
    identify(client, uid)
    # when they set off five different triggers within an hour
    client.track(
        uid, "Product Added", {"product_id": "p1", "name": "Shoe"}
    )  # cart_abandonment (email, 15 min)
    client.track(uid, "Checkout Started", {"value": 10})  # checkout_help (email, now)
    client.track(uid, "Cart Viewed")  # cart_viewed_tip (inapp, now)
    for _ in range(3):
        client.track(
            uid, "Product Viewed", {"product_id": "p2", "name": "Hat"}
        )  # repeat_product_view (inapp fallback)
    client.clock(advance_seconds=20 * 60)  # dwell on p2 (5 min) and the cart (15 min) come due
    # then at most 3 messages went out, at most 1 of them an email; the rest were capped
    log = client.deliveries(uid)
    fired = {d["trigger"] for d in log}
    assert fired >= {
        "cart_abandonment",
        "checkout_help",
        "cart_viewed_tip",
        "repeat_product_view",
        "product_dwell_upsell",
    }
    sent = [d for d in log if d["status"] == "sent"]
    assert len(sent) <= 3 and sum(d["channel"] == "email" for d in sent) <= 1
    capped = [d for d in log if d["status"] == "capped"]
    assert len(capped) == len(log) - len(sent) >= 2
    assert all(d["reason"].startswith(("cap:", "priority", "cooldown")) for d in capped)
    emails = [m for m in client.outbox(uid) if m["channel"] == "email"]
    inbox = client.admin_get(f"/v1/users/{uid}/messages").json()["messages"]
    assert len(emails) + len(inbox) == len(sent)
    # and the same trigger again within its cooldown is capped with reason cooldown
    client.clock(advance_seconds=60)
    client.track(uid, "Cart Viewed")
    client.settle()
    again = [d for d in client.deliveries(uid) if d["trigger"] == "cart_viewed_tip"]
    assert len(again) == 2 and again[0]["status"] == "capped"


def test_quiet_hours_defer_the_email_to_8am_local_time(client: Client, uid: str) -> None:
    # given a New York user abandoning a cart at 03:00 local time (08:00 UTC in winter)
    start = next_utc(client, 8)
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    local_start = start.astimezone(ny)
    identify(client, uid, timezone="America/New_York")
    client.track(uid, "Product Added", {"product_id": "p1", "name": "Lamp"})
    client.clock(advance_seconds=16 * 60)
    # then the email is deferred, not sent and not dropped
    log = [d for d in client.deliveries(uid) if d["trigger"] == "cart_abandonment"]
    assert [d["status"] for d in log] == ["deferred"]
    eight = local_start.replace(hour=8, minute=0, second=0, microsecond=0)
    if eight <= local_start:
        eight += timedelta(days=1)
    assert log[0]["defer_until"].startswith(
        eight.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M")
    )
    # not before 08:00 local
    client.clock(set=(eight - timedelta(minutes=1)).isoformat())
    assert not [m for m in client.outbox(uid) if m["channel"] == "email"]
    # at 08:00 local it goes out, once, and the log entry moves to sent
    client.clock(set=(eight + timedelta(minutes=1)).isoformat())
    mails = [m for m in client.outbox(uid) if m["channel"] == "email"]
    assert len(mails) == 1
    sent_at = datetime.fromisoformat(mails[0]["sent_at"].replace("Z", "+00:00"))
    assert sent_at >= eight
    assert [d["status"] for d in client.deliveries(uid) if d["trigger"] == "cart_abandonment"] == [
        "sent"
    ]


def test_dwell_upsell_lands_in_the_inbox_and_can_be_read(client: Client, uid: str) -> None:
    next_utc(client, 15)
    client.track(uid, "Product Viewed", {"product_id": "p77", "name": "Rain Jacket"})
    client.clock(advance_seconds=6 * 60)
    messages = client.admin_get(f"/v1/users/{uid}/messages").json()["messages"]
    assert len(messages) == 1
    msg = messages[0]
    assert msg["trigger"] == "product_dwell_upsell" and "Rain Jacket" in msg["title"] + msg["body"]
    assert msg["read"] is False and set(msg) >= {
        "id",
        "trigger",
        "title",
        "body",
        "created_at",
        "read",
    }
    r = client.s.post(
        f"{client.url}/v1/users/{uid}/messages/{msg['id']}/read",
        headers={"Authorization": f"Bearer {client.local.admin_key}"},
    )
    assert r.status_code == 200
    assert client.admin_get(f"/v1/users/{uid}/messages").json()["messages"][0]["read"] is True
