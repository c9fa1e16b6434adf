"""The feedback function under moto: SES bounce and complaint notifications, delivered
through SNS, suppress the address; later emails to it are logged `suppressed`."""

from __future__ import annotations

from typing import Any

import pytest
from nudge import constants as C

from tests.fakes import a_bounce as bounce
from tests.fakes import a_complaint as complaint
from tests.fakes import an_sns_event as sns_event
from tests.integration.conftest import Fn
from tests.integration.delivery_support import Delivery, dx_fixture  # noqa: F401
from tests.ses_events import an_ses_event


@pytest.fixture
def feedback(dx: Delivery) -> Fn:
    return Fn(C.FN_FEEDBACK)


def test_a_permanent_bounce_suppresses_the_address_and_later_emails_are_logged_suppressed(
    dx: Delivery, feedback: Fn
) -> None:
    dx.seed("u1", email="Ana@Example.com")

    assert feedback(sns_event(bounce("ana@example.com")))["suppressed"] == 1
    action = dx.action("u1", "cart_abandonment")
    dx.run([action])

    assert dx.emails() == []
    entry = dx.entry("u1", action["action_id"])
    assert (entry.status, entry.reason) == ("suppressed", "suppressed:email")


def test_a_transient_bounce_does_not_suppress(dx: Delivery, feedback: Fn) -> None:
    dx.seed("u1", email="ana@example.com")

    out = feedback(sns_event(bounce("ana@example.com", "Transient", "MailboxFull")))
    assert out["suppressed"] == 0
    action = dx.action("u1", "cart_abandonment")
    dx.run([action])

    assert len(dx.emails()) == 1
    assert dx.entry("u1", action["action_id"]).status == "sent"


def test_a_complaint_suppresses_and_a_suppressed_email_leaves_other_channels_open(
    dx: Delivery, feedback: Fn
) -> None:
    dx.seed("u1", email="ana@example.com")

    out = feedback(
        sns_event(
            complaint("ana@example.com"), "not json", bounce("other@example.com", key="eventType")
        )
    )
    assert out["suppressed"] == 2
    mail, inapp = dx.action("u1", "cart_abandonment"), dx.action("u1", "product_dwell_upsell")
    dx.run([mail, inapp])

    assert dx.emails() == []
    assert dx.entry("u1", mail["action_id"]).status == "suppressed"
    assert dx.entry("u1", inapp["action_id"]).status == "sent"


def test_ses_s_delivery_event_turns_an_email_logged_unconfirmed_sent(
    dx: Delivery, feedback: Fn
) -> None:
    # given an email whose SES call timed out after SES had taken it
    from botocore.exceptions import ReadTimeoutError
    from nudge.adapters.aws import send_client

    dx.seed("u1", email="ana@example.com")
    action = dx.action("u1", "cart_abandonment")

    def time_out(event_name: str, request: Any, **_: Any) -> None:
        if event_name == "before-send.sesv2.SendEmail":
            raise ReadTimeoutError(endpoint_url=request.url)

    send_client("sesv2").meta.events.register_last("before-send", time_out)
    dx.run([action])
    assert dx.entry("u1", action["action_id"]).status == "unconfirmed"
    [mail] = dx.emails()

    # when SES publishes its Delivery event for it
    note = an_ses_event("Delivery", ses_id=mail.id, action_id=action["action_id"])
    feedback(sns_event(note))

    # then
    entry = dx.entry("u1", action["action_id"])
    assert (entry.status, entry.provider_id) == ("sent", mail.id)
    assert entry.reason == "ok: confirmed by the provider's event"
