"""The feedback function under moto: SES bounce and complaint notifications, delivered
through SNS, suppress the address; later emails to it are logged `suppressed`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from nudge import constants as C

from tests.integration.conftest import Fn
from tests.integration.delivery_support import Delivery, dx_fixture  # noqa: F401


@pytest.fixture
def feedback(dx: Delivery) -> Fn:
    return Fn(C.FN_FEEDBACK)


def sns_event(*notifications: dict[str, Any] | str) -> dict[str, Any]:
    """A Lambda SNS event carrying SES notifications (what the SES feedback topic sends)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:nudge-ses-feedback:"
                + str(uuid.uuid4()),
                "Sns": {
                    "Type": "Notification",
                    "MessageId": str(uuid.uuid4()),
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:nudge-ses-feedback",
                    "Subject": None,
                    "Message": n if isinstance(n, str) else json.dumps(n),
                    "Timestamp": "2026-03-02T12:00:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
            for n in notifications
        ]
    }


def bounce(
    address: str, kind: str = "Permanent", sub: str = "General", *, key: str = "notificationType"
) -> dict[str, Any]:
    return {
        key: "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": sub,
            "bouncedRecipients": [{"emailAddress": address, "action": "failed", "status": "5.1.1"}],
            "timestamp": "2026-03-02T12:00:00.000Z",
            "feedbackId": "0100-" + uuid.uuid4().hex,
        },
        "mail": {
            "timestamp": "2026-03-02T11:59:59.000Z",
            "source": "nudge@example.com",
            "messageId": uuid.uuid4().hex,
            "destination": [address],
        },
    }


def complaint(address: str) -> dict[str, Any]:
    return {
        "eventType": "Complaint",  # configuration-set event publishing format
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": "2026-03-02T12:00:00.000Z",
            "feedbackId": "0100-" + uuid.uuid4().hex,
            "complaintFeedbackType": "abuse",
        },
        "mail": {
            "timestamp": "2026-03-02T11:59:59.000Z",
            "source": "nudge@example.com",
            "messageId": uuid.uuid4().hex,
            "destination": [address],
        },
    }


def test_a_permanent_bounce_suppresses_the_address_and_later_emails_are_logged_suppressed(
    dx: Delivery, feedback: Fn
) -> None:
    dx.seed("u1", email="Ana@Example.com")

    assert feedback(sns_event(bounce("ana@example.com"))) == {"suppressed": 1}
    action = dx.action("u1", "cart_abandonment")
    dx.run([action])

    assert dx.emails() == []
    entry = dx.entry("u1", action["action_id"])
    assert (entry.status, entry.reason) == ("suppressed", "suppressed:email")


def test_a_transient_bounce_does_not_suppress(dx: Delivery, feedback: Fn) -> None:
    dx.seed("u1", email="ana@example.com")

    assert feedback(sns_event(bounce("ana@example.com", "Transient", "MailboxFull"))) == {
        "suppressed": 0
    }
    action = dx.action("u1", "cart_abandonment")
    dx.run([action])

    assert len(dx.emails()) == 1
    assert dx.entry("u1", action["action_id"]).status == "sent"


def test_a_complaint_suppresses_and_a_suppressed_email_leaves_other_channels_open(
    dx: Delivery, feedback: Fn
) -> None:
    dx.seed("u1", email="ana@example.com")

    assert feedback(
        sns_event(
            complaint("ana@example.com"), "not json", bounce("other@example.com", key="eventType")
        )
    ) == {"suppressed": 2}
    mail, inapp = dx.action("u1", "cart_abandonment"), dx.action("u1", "product_dwell_upsell")
    dx.run([mail, inapp])

    assert dx.emails() == []
    assert dx.entry("u1", mail["action_id"]).status == "suppressed"
    assert dx.entry("u1", inapp["action_id"]).status == "sent"
