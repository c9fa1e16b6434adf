"""Identity rules through local mode over HTTP (docs/identity.md): the audit's takeover
with the public write key — identify a victim, identify an attacker, alias the victim's
id into the attacker's — leaves the victim's profile and cart email the victim's."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Client
from tests.e2e.test_delivery_e2e import next_utc

pytestmark = pytest.mark.e2e


def test_an_alias_with_the_write_key_does_not_take_over_the_victims_profile(
    client: Client, uid: str
) -> None:
    # the victim is `uid`, whom the shipped experiment sends the cart reminder (another id
    # made from it would be in the holdout a tenth of the time, and get no email at all)
    victim, attacker = uid, f"{uid}-attacker"
    next_utc(client, 14)  # daytime: the cart email is not deferred by quiet hours
    # given a victim with an address and a cart
    r = client.send("identify", {"userId": victim, "traits": {"email": f"{victim}@example.com"}})
    assert r.status_code == 200, r.text
    client.track(victim, "Product Added", {"product_id": "ring-1", "name": "Diamond Ring"})
    # and an attacker with their own address
    r = client.send(
        "identify", {"userId": attacker, "traits": {"email": f"{attacker}@example.com"}}
    )
    assert r.status_code == 200, r.text
    # when the attacker aliases the victim's id into theirs
    r = client.send("alias", {"userId": attacker, "previousId": victim})
    assert r.status_code == 200, r.text  # accepted (Segment's API), but not applied
    client.settle()
    # then the victim's profile is still the victim's, with the victim's cart
    profile = client.user(victim)
    assert profile["user_id"] == victim
    assert profile["traits"]["email"] == f"{victim}@example.com"
    assert [i["product_id"] for i in profile["cart"]] == ["ring-1"]
    # and nothing of the victim reached the attacker's profile
    theirs = client.user(attacker)
    assert theirs["cart"] == [] and victim not in theirs["anonymous_ids"]
    # and when the cart is abandoned, its email goes to the victim only
    client.clock(advance_seconds=16 * 60)
    mails = [
        m for m in client.outbox() if m["channel"] == "email" and m["user_id"] in (victim, attacker)
    ]
    assert [(m["user_id"], m["to"], m["trigger"]) for m in mails] == [
        (victim, f"{victim}@example.com", "cart_abandonment")
    ], (client.deliveries(victim), client.user(victim), client.clock())
    assert "Diamond Ring" in (mails[0]["subject"] or "") + mails[0]["body"]
