"""Message outcomes as archived events (nudge.domain.outcomes): built from delivery log
entries, SES notifications, in-app reads and unsubscribes, with ids that a redelivery or
a repeated notification reproduces; and the deliver and feedback handlers archiving them
on in-memory ports (a failed archive write retries the batch and sends nothing twice)."""

from __future__ import annotations

import json
from datetime import timedelta
from types import ModuleType

import pytest
from nudge.domain.delivery import DeliveryEntry
from nudge.domain.errors import DependencyUnavailableError
from nudge.domain.messages import ActionMessage
from nudge.domain.outcomes import (
    decode_user,
    email_tags,
    encode_user,
    outcome_event,
    outcome_lines,
    read_event,
    ses_event,
    unsubscribed_event,
)
from nudge.domain.ports import StoredProfile
from nudge.local.lambdas import Function, LambdaContext, sqs_event

from tests.fakes import (
    NOW,
    FakeDelivery,
    MemoryArchive,
    MemoryDeadLetters,
    MemorySuppressions,
    a_profile,
    an_action,
    an_sns_event,
    frozen_clock,
)
from tests.ses_events import an_ses_event

LATER = NOW + timedelta(hours=1)  # SES reports after the send
EXPERIMENT = {"id": "cart_abandonment_holdout", "variant": "reminder", "holdout": False}


def entry(status: str, **kw: object) -> DeliveryEntry:
    fields: dict[str, object] = {
        "user_id": "u1",
        "action_id": "a1",
        "trigger_id": "cart_abandonment",
        "channel": "email",
        "status": status,
        "reason": "ok",
        "at": NOW,
        "fired_at": NOW - timedelta(minutes=15),
        "variant": "reminder",
    }
    fields.update(kw)
    return DeliveryEntry(**fields)  # type: ignore[arg-type]


def test_each_status_of_an_action_is_one_outcome_with_an_id_of_its_own() -> None:
    action = an_action("u1", experiment=EXPERIMENT)
    deferred = outcome_event(
        entry("deferred", defer_until=NOW + timedelta(hours=8)), action, now=NOW
    )
    sent = outcome_event(entry("sent", provider_id="ses-1"), action, now=NOW)
    assert deferred is not None and sent is not None
    assert (sent.event, sent.type, sent.user_id, sent.timestamp) == (
        "Message Outcome",
        "track",
        "u1",
        NOW,
    )
    assert sent.properties == {
        "status": "sent",
        "reason": "ok",
        "trigger_id": "cart_abandonment",
        "action_id": "a1",
        "channel": "email",
        "variant": "reminder",
        "experiment_id": "cart_abandonment_holdout",
        "fired_at": "2026-03-02T11:45:00.000Z",
        "provider_message_id": "ses-1",
    }
    assert deferred.properties["defer_until"] == "2026-03-02T20:00:00.000Z"
    assert deferred.message_id != sent.message_id
    # a redelivery an hour later finds the same entry: the same event id and time
    again = outcome_event(entry("sent", provider_id="ses-1"), action, now=NOW + timedelta(hours=1))
    assert again is not None and (again.message_id, again.timestamp) == (sent.message_id, NOW)
    # a claim is no outcome
    assert outcome_event(entry("sending"), action, now=NOW) is None
    for status in ("capped", "opted_out", "suppressed", "holdout", "failed"):
        assert outcome_event(entry(status), None, now=NOW) is not None


def test_outcome_lines_are_archive_rows() -> None:
    [line] = outcome_lines([outcome_event(entry("holdout"), None, now=NOW), None])
    row = json.loads(line)
    assert row["v"] == 1 and row["event"] == "Message Outcome"
    assert row["properties"]["status"] == "holdout" and row["properties"]["experiment_id"] is None
    assert row["context"] == {"library": {"name": "nudge"}}
    assert row["timestamp"] == "2026-03-02T12:00:00.000Z"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("Delivery", "Email Delivered"),
        ("Open", "Email Opened"),
        ("Click", "Email Link Clicked"),
        ("Bounce", "Email Bounced"),
        ("Complaint", "Email Marked as Spam"),
    ],
)
def test_ses_events_take_segment_s_names_and_link_to_the_action(kind: str, name: str) -> None:
    event = ses_event(an_ses_event(kind), now=LATER)
    assert event is not None
    assert (event.event, event.user_id) == (name, "u1")
    assert event.timestamp.isoformat() == "2026-03-02T12:05:00+00:00"
    props = event.properties
    assert (props["trigger_id"], props["action_id"], props["channel"]) == (
        "cart_abandonment",
        "a1",
        "email",
    )
    assert (props["variant"], props["experiment_id"]) == ("reminder", "cart_abandonment_holdout")
    assert props["email_id"] == "0100018e-ses-message-1"
    # the same notification again (SNS redelivers): the same id
    again = ses_event(an_ses_event(kind), now=LATER + timedelta(minutes=3))
    assert again is not None and again.message_id == event.message_id


def test_two_opens_and_two_clicks_of_one_email_are_distinct_events() -> None:
    ids = {
        e.message_id
        for e in (
            ses_event(an_ses_event("Open", at="2026-03-02T12:05:00.000Z"), now=LATER),
            ses_event(an_ses_event("Open", at="2026-03-02T18:00:00.000Z"), now=LATER),
            ses_event(an_ses_event("Click", link="https://a.example"), now=LATER),
            ses_event(an_ses_event("Click", link="https://b.example"), now=LATER),
            ses_event(an_ses_event("Open", ses_id="another-email"), now=LATER),
        )
        if e is not None
    }
    assert len(ids) == 5
    click = ses_event(an_ses_event("Click", link="https://a.example"), now=LATER)
    assert click is not None and click.properties["link_url"] == "https://a.example"


def test_an_untagged_email_or_an_unknown_event_type_is_not_archived() -> None:
    assert ses_event(an_ses_event("Open", tagged=False), now=LATER) is None
    assert ses_event(an_ses_event("Rendering Failure"), now=LATER) is None
    assert ses_event({"eventType": "Open"}, now=LATER) is None


def test_email_tags_hold_only_values_ses_accepts_and_the_user_round_trips() -> None:
    odd = "anna.müller+1@example.com/ü"
    tags = email_tags(user_id=odd, action_id="a1", trigger_id="t", variant="with space")
    assert set(tags) == {"action_id", "trigger", "user"}  # the variant does not fit
    assert decode_user(tags["user"]) == odd
    assert encode_user("x" * 300) is None
    assert decode_user("%%%") is None


def test_reads_and_unsubscribes_are_archived_once_per_message_and_channel() -> None:
    first = read_event("u1", "m1", trigger_id="product_dwell_upsell", action_id="a9", now=NOW)
    second = read_event(
        "u1", "m1", trigger_id="product_dwell_upsell", action_id="a9", now=NOW + timedelta(1)
    )
    assert first.event == "Message Read" and first.message_id == second.message_id
    assert first.properties["action_id"] == "a9" and first.properties["channel"] == "inapp"
    email = unsubscribed_event("u1", "email", now=NOW)
    assert email.event == "Unsubscribed" and email.properties["channel"] == "email"
    assert email.message_id == unsubscribed_event("u1", "email", now=NOW).message_id
    assert email.message_id != unsubscribed_event("u1", "sms", now=NOW).message_id


# ---- the handlers on in-memory ports -------------------------------------------------------
@pytest.fixture(scope="module")
def deliver() -> ModuleType:
    return Function.load_module("deliver")


@pytest.fixture(scope="module")
def feedback() -> ModuleType:
    return Function.load_module("feedback")


def batch(*actions: ActionMessage) -> dict[str, object]:
    msgs = [
        {
            "MessageId": f"m{i}",
            "ReceiptHandle": f"r{i}",
            "Body": a.to_json(),
            "Attributes": {"MessageGroupId": a.user_id, "SequenceNumber": str(i)},
        }
        for i, a in enumerate(actions)
    ]
    return sqs_event(msgs, "arn:aws:sqs:us-east-1:000000000000:nudge-actions.fifo")


def test_the_deliver_handler_archives_each_outcome_and_a_failed_write_retries_without_resending(
    deliver: ModuleType,
) -> None:
    fx = FakeDelivery()
    fx.profiles.save(StoredProfile(a_profile("u1"), None))
    archive = MemoryArchive()
    deps = deliver.Deps(
        ports=fx.ports, dead_letters=MemoryDeadLetters(), clock=frozen_clock(), archive=archive
    )
    sent = an_action("u1", experiment=EXPERIMENT)
    capped = an_action("u1", "inactivity_winback", priority=10)  # the day's one email is gone
    ctx = LambdaContext("nudge-deliver")

    # the archive fails once: the records come back, nothing was sent twice
    archive.fail_with.append(DependencyUnavailableError("firehose down"))
    first = deliver.handler(batch(sent, capped), ctx, deps=deps)
    assert {f["itemIdentifier"] for f in first["batchItemFailures"]} == {"m0", "m1"}
    assert len(fx.email.sent) == 1 and archive.lines == []

    second = deliver.handler(batch(sent, capped), ctx, deps=deps)
    assert second["batchItemFailures"] == []
    assert len(fx.email.sent) == 1
    outcomes = {
        (e["properties"]["action_id"], e["properties"]["status"]): e for e in archive.events()
    }
    assert set(outcomes) == {(sent.action_id, "sent"), (capped.action_id, "capped")}
    assert outcomes[(sent.action_id, "sent")]["properties"]["experiment_id"] == EXPERIMENT["id"]
    assert outcomes[(capped.action_id, "capped")]["properties"]["reason"].startswith("cap")


def test_the_feedback_handler_archives_every_email_event_and_suppresses_bounces(
    feedback: ModuleType,
) -> None:
    archive, suppressions = MemoryArchive(), MemorySuppressions()
    deps = feedback.Deps(suppressions=suppressions, clock=frozen_clock(), archive=archive)
    notes = [an_ses_event(k) for k in ("Delivery", "Open", "Click", "Bounce")]

    out = feedback.handler(an_sns_event(*notes, "not json"), LambdaContext("f"), deps=deps)

    assert out == {"suppressed": 1, "archived": 4}
    assert [e["event"] for e in archive.events()] == [
        "Email Delivered",
        "Email Opened",
        "Email Link Clicked",
        "Email Bounced",
    ]
    assert {e["properties"]["action_id"] for e in archive.events()} == {"a1"}
    # a failed write fails the invocation, for SNS to retry
    archive.fail_with.append(DependencyUnavailableError("firehose down"))
    with pytest.raises(DependencyUnavailableError):
        feedback.handler(an_sns_event(notes[1]), LambdaContext("f"), deps=deps)
