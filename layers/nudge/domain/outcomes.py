"""Message outcomes as archived events (docs/archive.md, "Message outcomes"; D33).

What happened to each message is archived in the same format as the events users send,
so that one SQL table (the view `events`) holds exposures, outcomes and the behaviour
they are measured against:

- every status the deliver function records for an action (one per status: `deferred`
  then `sent` are two) → `Message Outcome`, `properties.status` the log's status;
- SES feedback published by the configuration set → Segment's email spec names:
  `Email Delivered`, `Email Opened`, `Email Link Clicked`, `Email Bounced`,
  `Email Marked as Spam`;
- an in-app message marked read (`POST /v1/users/{id}/messages/{id}/read`) →
  `Message Read`;
- an unsubscribe (`/v1/unsubscribe`) → Segment's `Unsubscribed`.

(Push `Push Notification Tapped` is Segment's mobile spec name for what the app tracks
itself: the push payload carries the `action_id` for it to send back.)

Each event's `message_id` is derived from what it records (the action and the status;
the SES message, the event type and SES's own timestamp or feedback id; the read
message; the user and channel of an unsubscribe), so a redelivered action, a repeated
SNS notification or a retried archive write appear once in the view `events`.

Pure: no AWS calls. The functions that archive call `outcome_lines` and their writer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from nudge.domain.archive import ArchiveRecord, iso_ms
from nudge.domain.delivery import FINAL, DeliveryEntry, DeliveryLog, confirm_sent
from nudge.domain.events import Event
from nudge.domain.messages import ActionMessage

MESSAGE_OUTCOME = "Message Outcome"
MESSAGE_READ = "Message Read"
UNSUBSCRIBED = "Unsubscribed"
PUSH_TAPPED = "Push Notification Tapped"  # tracked by the app (Segment's mobile spec)
# SES event types (configuration-set event publishing) → Segment's email spec names
SES_EVENTS: dict[str, str] = {
    "Delivery": "Email Delivered",
    "Open": "Email Opened",
    "Click": "Email Link Clicked",
    "Bounce": "Email Bounced",
    "Complaint": "Email Marked as Spam",
}
# Every event nudge itself archives (not a user's own activity): the reports leave them
# out of "active" and of engagement time.
# An erased user's share of an experiment's sums, archived with no id at all
# (nudge.domain.assignments; the experiment report adds it in)
EXPERIMENT_AGGREGATE = "Experiment Aggregate"
NUDGE_EVENTS: tuple[str, ...] = (
    "Experiment Viewed",
    EXPERIMENT_AGGREGATE,
    MESSAGE_OUTCOME,
    MESSAGE_READ,
    UNSUBSCRIBED,
    *SES_EVENTS.values(),
)
# The statuses archived: the final ones and `deferred` (a `sending` claim is not an outcome)
ARCHIVED_STATUSES = FINAL | {"deferred"}
CONTEXT = {"library": {"name": "nudge"}}  # marks the events nudge archived itself

# SES message tags (EmailTags) link an email's feedback back to its action. A tag value
# may hold only ASCII letters, digits, `_`, `-`, `.` and `@`, up to 256 characters: the
# user id travels base64url-encoded, a value that does not fit is left off.
TAG_ACTION, TAG_TRIGGER, TAG_USER, TAG_VARIANT, TAG_EXPERIMENT = (
    "action_id",
    "trigger",
    "user",
    "variant",
    "experiment",
)
_TAG_VALUE = re.compile(r"^[A-Za-z0-9_\-.@]{1,256}$")


def _id(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def outcome_event(
    entry: DeliveryEntry, action: ActionMessage | None = None, *, now: datetime
) -> Event | None:
    """The log entry of an action as `Message Outcome` (None for a status that is not an
    outcome: a `sending` claim). Its time is the entry's (when the status was recorded),
    its id `outcome-<action id>-<status>`: a redelivery that finds the entry decided
    archives the same event again, which the view keeps once."""
    if entry.status not in ARCHIVED_STATUSES:
        return None
    props: dict[str, Any] = {
        "status": entry.status,
        "reason": entry.reason,
        "trigger_id": entry.trigger_id,
        "action_id": entry.action_id,
        "channel": entry.channel,
        "variant": entry.variant,
        "experiment_id": action.experiment_id if action is not None else None,
    }
    if entry.fired_at is not None:
        props["fired_at"] = iso_ms(entry.fired_at)
    if entry.defer_until is not None:
        props["defer_until"] = iso_ms(entry.defer_until)
    if entry.provider_id:
        props["provider_message_id"] = entry.provider_id
    return Event(
        type="track",
        message_id=f"outcome-{entry.action_id}-{entry.status}",
        user_id=entry.user_id,
        event=MESSAGE_OUTCOME,
        properties=props,
        context=CONTEXT,
        timestamp=min(entry.at, now),
        received_at=now,
    )


# ---- SES --------------------------------------------------------------------------------


def confirmed_outcome(
    log: DeliveryLog, email_event: Event | None, *, now: datetime
) -> Event | None:
    """The `sent` outcome of an email's action when this SES event (as `ses_event` reads
    it) confirmed it: the action was logged `unconfirmed`, or claimed and not recorded
    (nudge.domain.delivery.confirm_sent, D41). None when there was nothing to confirm."""
    if email_event is None or not email_event.user_id:
        return None
    props = email_event.properties
    confirmed = confirm_sent(
        log, email_event.user_id, str(props["action_id"]), provider_id=str(props["email_id"])
    )
    return outcome_event(confirmed, None, now=now) if confirmed is not None else None


def _tag_value(value: str | None) -> str | None:
    return value if value and _TAG_VALUE.match(value) else None


def encode_user(user_id: str) -> str | None:
    """The user id as a tag value (base64url, no padding), None when too long."""
    return _tag_value(base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("="))


def decode_user(value: str) -> str | None:
    try:
        padded = value + "=" * (-len(value) % 4)
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded or None


def email_tags(
    *,
    user_id: str,
    action_id: str,
    trigger_id: str,
    variant: str | None = None,
    experiment_id: str | None = None,
) -> dict[str, str]:
    """The SES message tags of an email (those whose value SES accepts)."""
    tags = {
        TAG_ACTION: _tag_value(action_id),
        TAG_TRIGGER: _tag_value(trigger_id),
        TAG_USER: encode_user(user_id),
        TAG_VARIANT: _tag_value(variant),
        TAG_EXPERIMENT: _tag_value(experiment_id),
    }
    return {k: v for k, v in tags.items() if v is not None}


def _first(tags: Mapping[str, Any], name: str) -> str | None:
    value = tags.get(name)
    if isinstance(value, list):  # event publishing: {"name": ["value"]}
        value = value[0] if value else None
    return str(value) if value else None


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def ses_event(notification: Mapping[str, Any], *, now: datetime) -> Event | None:
    """An SES notification (configuration-set event publishing, or an identity
    notification) as its Segment email event, linked to its action by the email's tags;
    None for an event type with no name here or an email nudge did not tag (nothing to
    attribute it to). The id derives from SES's message id, the event type and the
    event's own feedback id or timestamp (and a click's link): the same notification
    delivered twice is one event, two opens of one email are two."""
    kind = notification.get("eventType") or notification.get("notificationType")
    name = SES_EVENTS.get(str(kind))
    mail = notification.get("mail") or {}
    tags = mail.get("tags") or {}
    action_id = _first(tags, TAG_ACTION)
    ses_id = mail.get("messageId")
    if name is None or not action_id or not ses_id:
        return None
    detail = notification.get(str(kind).lower()) or {}
    stamp = detail.get("timestamp") or mail.get("timestamp") or ""
    link = detail.get("link") if kind == "Click" else None
    user = _first(tags, TAG_USER)
    props: dict[str, Any] = {
        "trigger_id": _first(tags, TAG_TRIGGER),
        "action_id": action_id,
        "channel": "email",
        "variant": _first(tags, TAG_VARIANT),
        "experiment_id": _first(tags, TAG_EXPERIMENT),
        "email_id": ses_id,  # Segment's email spec
        "email_subject": (mail.get("commonHeaders") or {}).get("subject"),
    }
    if link:
        props["link_url"] = link
    if kind == "Bounce":
        props["reason"] = f"{detail.get('bounceType')}:{detail.get('bounceSubType')}"
    elif kind == "Complaint":
        props["reason"] = detail.get("complaintFeedbackType") or "complaint"
    at = _parse(stamp) or now
    return Event(
        type="track",
        message_id="ses-"
        + _id(str(ses_id), str(kind), str(detail.get("feedbackId") or stamp), str(link or "")),
        user_id=decode_user(user) if user else None,
        event=name,
        properties=props,
        context=CONTEXT,
        timestamp=min(at, now),
        received_at=now,
    )


# ---- the api: in-app reads, unsubscribes --------------------------------------------------
def read_event(
    user_id: str, message_id: str, *, trigger_id: str, action_id: str | None, now: datetime
) -> Event:
    """An in-app message marked read: `Message Read`, once per message (a second read
    archives the same id; the view keeps the first)."""
    return Event(
        type="track",
        message_id="read-" + _id(user_id, message_id),
        user_id=user_id,
        event=MESSAGE_READ,
        properties={
            "trigger_id": trigger_id,
            "action_id": action_id,
            "channel": "inapp",
            "inbox_message_id": message_id,
        },
        context=CONTEXT,
        timestamp=now,
        received_at=now,
    )


def unsubscribed_event(user_id: str, channel: str, *, now: datetime) -> Event:
    """An unsubscribe from a channel: Segment's `Unsubscribed`, once per user and channel
    (a second click of the link archives the same id)."""
    return Event(
        type="track",
        message_id="unsubscribed-" + _id(user_id, channel),
        user_id=user_id,
        event=UNSUBSCRIBED,
        properties={"channel": channel, "reason": "unsubscribe link"},
        context=CONTEXT,
        timestamp=now,
        received_at=now,
    )


def outcome_lines(events: Iterable[Event | None]) -> list[bytes]:
    """The archive lines of the events (None skipped), each under its own user."""
    # user_id None: an email whose tags did not name the user
    return [ArchiveRecord.of(e, e.user_id).line() for e in events if e is not None]
