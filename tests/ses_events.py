"""SES event notifications as a configuration set's event publishing sends them to SNS
(Delivery, Open, Click, Bounce, Complaint), for an email nudge sent with its tags."""

from __future__ import annotations

from typing import Any

from nudge.domain.outcomes import email_tags


def an_ses_event(
    kind: str,
    *,
    ses_id: str = "0100018e-ses-message-1",
    user_id: str = "u1",
    action_id: str = "a1",
    trigger_id: str = "cart_abandonment",
    variant: str | None = "reminder",
    experiment_id: str | None = "cart_abandonment_holdout",
    at: str = "2026-03-02T12:05:00.000Z",
    link: str = "https://shop.example/p-trail",
    tagged: bool = True,
) -> dict[str, Any]:
    tags = (
        {
            k: [v]
            for k, v in email_tags(
                user_id=user_id,
                action_id=action_id,
                trigger_id=trigger_id,
                variant=variant,
                experiment_id=experiment_id,
            ).items()
        }
        if tagged
        else {}
    )
    note: dict[str, Any] = {
        "eventType": kind,
        "mail": {
            "timestamp": "2026-03-02T12:00:00.000Z",
            "source": "nudge@example.com",
            "messageId": ses_id,
            "destination": ["ana@example.com"],
            "commonHeaders": {"subject": "Still thinking about Trail Runner 2?"},
            "tags": {"ses:configuration-set": ["nudge"], **tags},
        },
    }
    detail: dict[str, Any] = {"timestamp": at}
    if kind == "Click":
        detail["link"] = link
    if kind == "Bounce":
        detail |= {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": "ana@example.com"}],
            "feedbackId": "0100-bounce-1",
        }
    if kind == "Complaint":
        detail |= {
            "complainedRecipients": [{"emailAddress": "ana@example.com"}],
            "complaintFeedbackType": "abuse",
            "feedbackId": "0100-complaint-1",
        }
    note[kind.lower()] = detail
    return note
