"""The deliver function under moto (issue 4): an action from the actions FIFO queue becomes
at most one message, after channel resolution, the fatigue guard and rendering, and
leaves exactly one entry in the user's delivery log."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import nudge.adapters.delivery as delivery_adapters
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from nudge import constants as C
from nudge.adapters.aws import send_client
from nudge.adapters.delivery import DynamoDeliveryLog
from nudge.adapters.scheduler import parse_at
from nudge.domain.clock import iso
from nudge.domain.delivery import RECORD_ATTEMPTS
from nudge.local.emulation import REGION
from nudge.local.lambdas import sqs_event

from tests.integration.delivery_support import PUBLIC_URL, Delivery, dx_fixture, headers_of  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_an_email_action_sends_one_email_naming_the_cart_product_with_one_click_unsubscribe(
    dx: Delivery,
) -> None:
    dx.seed("u1", email="ana@example.com")
    action = dx.action("u1", "cart_abandonment")

    resp = dx.run([action])

    assert resp["batchItemFailures"] == []
    [mail] = dx.emails()
    assert mail.destinations["ToAddresses"] == ["ana@example.com"]
    assert mail.source == dx.res.sender_email
    assert "Trail Runner 2" in mail.subject
    [request] = dx.ses_requests
    simple = request["Content"]["Simple"]
    assert "Trail Runner 2" in simple["Body"]["Html"]["Data"]
    assert simple["Body"]["Html"]["Data"].lstrip().lower().startswith("<!doctype html>")
    assert "Trail Runner 2" in simple["Body"]["Text"]["Data"]
    assert request["ConfigurationSetName"] == C.SES_CONFIGURATION_SET
    headers = headers_of(request)
    assert headers["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/v1/unsubscribe?token=")
    assert headers["List-Unsubscribe"].endswith(">")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = headers["List-Unsubscribe"][1:-1]
    assert unsubscribe in simple["Body"]["Text"]["Data"]  # the footer link too
    [entry] = dx.log("u1")
    assert (entry.action_id, entry.status, entry.channel, entry.trigger_id) == (
        action["action_id"],
        "sent",
        "email",
        "cart_abandonment",
    )
    assert entry.provider_id == mail.id


def test_the_same_sqs_message_delivered_twice_sends_one_message_and_logs_one_entry(
    dx: Delivery,
) -> None:
    dx.seed("u1")
    event = dx.event([dx.action("u1")])

    first = dx.deliver(event)
    second = dx.deliver(event)  # SQS redelivers the very same message

    assert first["batchItemFailures"] == [] and second["batchItemFailures"] == []
    assert len(dx.emails()) == 1
    [entry] = dx.log("u1")
    assert entry.status == "sent"


def test_a_store_failure_after_the_send_is_tried_again_and_the_log_says_sent(
    dx: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    dx.seed("u1")
    action = dx.action("u1")
    real_record = DynamoDeliveryLog.record
    failures: list[str] = []

    def record(self: DynamoDeliveryLog, entry: Any, *, expect: frozenset[str | None]) -> bool:
        if entry.status == "sent" and len(failures) < RECORD_ATTEMPTS - 1:
            failures.append(entry.action_id)
            raise RuntimeError("ProvisionedThroughputExceededException")
        return real_record(self, entry, expect=expect)

    monkeypatch.setattr(DynamoDeliveryLog, "record", record)

    resp = dx.run([action])

    assert resp["batchItemFailures"] == [] and len(failures) == RECORD_ATTEMPTS - 1
    [mail] = dx.emails()
    [entry] = dx.log("u1")
    assert (entry.status, entry.provider_id) == ("sent", mail.id)


def test_a_crash_after_the_send_then_redelivery_does_not_send_again_and_logs_unconfirmed(
    dx: Delivery,
) -> None:
    dx.seed("u1")
    action = dx.action("u1")
    event = dx.event([action])
    crashes: list[str] = []

    class Crash(BaseException):
        """The function dies (a timeout, out of memory): no handler runs after it."""

    def die_after_the_send(event_name: str, **_: Any) -> None:
        if event_name == "before-send.sesv2.SendEmail" and not crashes:
            crashes.append(event_name)  # moto has taken the message: SES sent it
            raise Crash()

    # after moto's own before-send handler, which answers the call
    send_client("sesv2").meta.events.register_last("before-send", die_after_the_send)

    with pytest.raises(Crash):
        dx.deliver(event)
    assert len(dx.emails()) == 1 and dx.entry("u1", action["action_id"]).status == "sending"

    # SQS redelivers after the visibility timeout, when the dead attempt's claim is stale
    dx.clock.set(dx.clock.now() + timedelta(seconds=180))
    second = dx.deliver(event)

    assert second["batchItemFailures"] == []
    assert len(dx.emails()) == 1
    [entry] = dx.log("u1")
    assert entry.status == "unconfirmed"
    assert entry.reason.startswith("ambiguous: the attempt of 2026-03-02T12:00:00")


@pytest.mark.parametrize(
    ("error", "sent"),
    [
        (ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"), 1),
        (ClientError({"Error": {"Code": "InternalFailure", "Message": "oops"}}, "SendEmail"), 0),
    ],
)
def test_an_ambiguous_ses_answer_is_logged_unconfirmed_and_never_sent_again(
    dx: Delivery, error: Exception, sent: int
) -> None:
    dx.seed("u1")
    action = dx.action("u1")
    event = dx.event([action])
    calls: list[str] = []

    def answer(event_name: str, **_: Any) -> None:
        if event_name == "before-send.sesv2.SendEmail":
            calls.append(event_name)
            raise error

    # a read timeout after moto took the message; a 500 before it did: neither can tell
    ses = send_client("sesv2").meta.events
    (ses.register_last if sent else ses.register_first)("before-send", answer)

    first = dx.deliver(event)
    dx.clock.set(dx.clock.now() + timedelta(seconds=180))
    again = dx.deliver(event)

    assert first["batchItemFailures"] == [] and again["batchItemFailures"] == []
    assert len(calls) == 1  # neither the SDK nor the redelivery sent it again
    assert len(dx.emails()) == sent
    [entry] = dx.log("u1")
    assert entry.status == "unconfirmed" and entry.reason.startswith("ambiguous: ")


def test_ses_throttling_is_retried_at_once_and_the_message_goes_out_once(
    dx: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_adapters, "THROTTLE_BACKOFF_S", 0.0)
    dx.seed("u1")
    throttled: list[str] = []

    def throttle(event_name: str, **_: Any) -> None:
        if event_name == "before-send.sesv2.SendEmail" and len(throttled) < 2:
            throttled.append(event_name)
            raise ClientError(
                {
                    "Error": {"Code": "TooManyRequestsException", "Message": "rate"},
                    "ResponseMetadata": {"HTTPStatusCode": 429},
                },
                "SendEmail",
            )

    send_client("sesv2").meta.events.register_first("before-send", throttle)

    resp = dx.run([dx.action("u1")])

    assert resp["batchItemFailures"] == [] and len(throttled) == 2
    assert len(dx.emails()) == 1 and [e.status for e in dx.log("u1")] == ["sent"]


def test_two_concurrent_deliveries_of_the_same_action_send_one_message(
    dx: Delivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB evaluates a condition and writes atomically; moto's in-memory backend does
    # not lock between the two, so give it that one guarantee of the real service
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.Lock()
    real_put = DynamoDBBackend.put_item

    def atomic_put(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return real_put(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "put_item", atomic_put)
    dx.seed("u1")
    event = dx.event([dx.action("u1")])
    dx.deliver(dx.event([dx.action("u1", "product_dwell_upsell")]))  # warm the function's clients
    barrier = threading.Barrier(2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(dx.deliver(event))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert len(dx.emails()) == 1
    assert [e.status for e in dx.log("u1") if e.channel == "email"] == ["sent"]


def test_a_redelivery_while_the_first_attempt_is_still_sending_does_not_send_and_the_log_ends_sent(
    dx: Delivery,
) -> None:
    dx.seed("u1")
    event = dx.event([dx.action("u1")])
    nested: list[Any] = []

    def redeliver_during_the_send(**_: Any) -> None:
        if not nested:  # SQS hands the message to a second invocation mid-send
            nested.append(None)
            nested.append(dx.deliver(event))

    send_client("sesv2").meta.events.register(
        "before-call.sesv2.SendEmail", redeliver_during_the_send
    )

    first = dx.deliver(event)
    later = dx.deliver(event)  # the redelivery's record, back after the visibility timeout

    assert first["batchItemFailures"] == []
    # the redelivery found the claim and sent nothing: SQS brings it back
    assert nested[1]["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert later["batchItemFailures"] == []
    assert len(dx.emails()) == 1
    [entry] = dx.log("u1")
    assert entry.status == "sent"  # the attempt that sent it records it
    assert entry.provider_id == dx.emails()[0].id


def _templates_with_a_missing_variable(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    path = folder / "product_dwell_upsell.yaml"
    text = path.read_text()
    path.write_text(text.replace('cta: "Add to cart"', 'cta: "Add {{ nope }} to cart"'))
    return folder


def test_a_template_with_a_missing_variable_sends_nothing_dead_letters_the_action_and_the_batch_goes_on(
    dx: Delivery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(C.ENV_TEMPLATES_PATH, str(_templates_with_a_missing_variable(tmp_path)))
    dx.deliver.fn.module.deps.cache_clear()
    dx.seed("broken", email="bo@example.com")
    dx.seed("fine", email="fi@example.com")
    bad = dx.action("broken", "product_dwell_upsell")
    good_mail = dx.action("fine", "cart_abandonment")
    good_inapp = dx.action("fine", "repeat_product_view")

    resp = dx.run([bad, good_mail, good_inapp])

    assert resp["batchItemFailures"] == []  # dead-lettered by the function, not retried
    assert dx.inbox("broken") == []
    [dead] = dx.dlq()
    assert json.loads(dead["Body"])["action_id"] == bad["action_id"]
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("template_error:")
    assert "product_dwell_upsell" in reason and "nope" in reason
    [entry] = dx.log("broken")
    assert entry.status == "failed" and entry.reason.startswith("template")
    # the rest of the batch went out
    [mail] = dx.emails()
    assert mail.destinations["ToAddresses"] == ["fi@example.com"]
    assert [m.trigger for m in dx.inbox("fine")] == ["repeat_product_view"]
    assert sorted(e.status for e in dx.log("fine")) == ["sent", "sent"]


# ---- the fatigue guard through the handler -----------------------------------------------


def test_five_triggers_in_one_batch_send_at_most_three_messages_and_one_email_the_rest_capped(
    dx: Delivery,
) -> None:
    dx.seed("u1")
    actions = [
        dx.action("u1", "cart_abandonment"),  # email, priority 100
        dx.action("u1", "inactivity_winback"),  # email, priority 20
        dx.action("u1", "repeat_product_view"),  # push -> no device -> in-app, priority 50
        dx.action("u1", "product_dwell_upsell"),  # in-app, priority 30
        dx.action("u1", "price_drop", template="repeat_product_view", channel="inapp", priority=10),
    ]

    resp = dx.run(actions)

    assert resp["batchItemFailures"] == []
    log = {e.trigger_id: e for e in dx.log("u1")}
    assert len(log) == 5  # one entry per action
    sent = [e for e in log.values() if e.status == "sent"]
    assert len(sent) <= 3
    assert len([e for e in sent if e.channel == "email"]) <= 1
    assert len(dx.emails()) <= 1
    assert len(dx.emails()) + len(dx.inbox("u1")) + len(dx.pushes()) == len(sent)
    capped = [e for e in log.values() if e.status != "sent"]
    assert capped and all(e.status == "capped" and e.reason.startswith("cap:") for e in capped)
    # the highest priorities take the slots
    assert {t for t, e in log.items() if e.status == "sent"} == {
        "cart_abandonment",
        "repeat_product_view",
        "product_dwell_upsell",
    }
    assert log["inactivity_winback"].reason == "cap:global:3/24h"


def test_the_same_trigger_again_within_its_cooldown_is_capped_cooldown(dx: Delivery) -> None:
    dx.seed("u1")
    dx.run([dx.action("u1", "product_dwell_upsell")])
    dx.clock.set(dx.clock.now() + timedelta(hours=1))

    again = dx.action("u1", "product_dwell_upsell")  # a new episode of the same trigger
    dx.run([again])

    entry = dx.entry("u1", again["action_id"])
    assert (entry.status, entry.reason) == ("capped", "cooldown")
    assert len(dx.inbox("u1")) == 1


def test_a_global_control_group_of_100_percent_holds_everyone_out(
    dx: Delivery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "fatigue.yaml").write_text(
        (ROOT / "config" / "fatigue.yaml")
        .read_text()
        .replace("control_group_percent: 0", "control_group_percent: 100")
    )
    monkeypatch.setenv(C.ENV_CONFIG_PATH, str(config))
    dx.deliver.fn.module.deps.cache_clear()
    dx.seed("u1")
    action = dx.action("u1")

    dx.run([action])

    entry = dx.entry("u1", action["action_id"])
    assert (entry.status, entry.reason) == ("holdout", "control_group")
    assert dx.emails() == []


# ---- quiet hours ------------------------------------------------------------------------------


def test_quiet_hours_defer_an_email_at_3am_new_york_to_8am_through_a_schedule_on_the_actions_queue(
    dx: Delivery,
) -> None:
    night = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 03:00 in New York (EST, before DST)
    dx.clock.set(night)
    dx.seed("ny", timezone="America/New_York")
    action = dx.action("ny")

    resp = dx.run([action])

    assert resp["batchItemFailures"] == []
    assert dx.emails() == []
    entry = dx.entry("ny", action["action_id"])
    assert (entry.status, entry.reason) == ("deferred", "quiet_hours")
    eight = datetime(2026, 3, 3, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert entry.defer_until == eight
    scheduler = boto3.client("scheduler", region_name=REGION)
    names = [
        s["Name"]
        for s in scheduler.list_schedules(GroupName=C.SCHEDULE_GROUP)["Schedules"]
        if s["Name"] != C.WAKE_UP_SWEEP_SCHEDULE  # the group's one recurring schedule
    ]
    [schedule] = [scheduler.get_schedule(Name=n, GroupName=C.SCHEDULE_GROUP) for n in names]
    assert schedule["Target"]["Arn"] == dx.queue_arn
    assert parse_at(schedule["ScheduleExpression"]) == eight
    assert schedule.get("ScheduleExpressionTimezone", "UTC") == "UTC"
    assert schedule["Target"]["SqsParameters"]["MessageGroupId"] == "ny"
    deferred = json.loads(schedule["Target"]["Input"])
    assert deferred["action_id"] == action["action_id"]

    # a copy that arrives early (a duplicate, a clock off by minutes) still waits
    dx.clock.set(eight - timedelta(minutes=30))
    dx.deliver(_scheduled_event(dx, deferred, names[0] + "-early"))
    assert dx.emails() == []
    assert dx.entry("ny", action["action_id"]).status == "deferred"

    # at 08:00 the schedule puts the action back on the queue
    dx.clock.set(eight)
    resp = dx.deliver(_scheduled_event(dx, deferred, names[0]))

    assert resp["batchItemFailures"] == []
    [mail] = dx.emails()
    assert mail.destinations["ToAddresses"] == ["ana@example.com"]
    [entry] = dx.log("ny")  # the same entry moved deferred -> sent
    assert entry.action_id == action["action_id"]
    assert entry.status == "sent" and entry.at == eight


def _scheduled_event(dx: Delivery, body: dict[str, Any], dedup: str) -> dict[str, Any]:
    """What EventBridge Scheduler's SQS target puts on the FIFO queue, as Lambda receives it."""
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(
        QueueUrl=dx.queue_url,
        MessageBody=json.dumps(body),
        MessageGroupId=str(body["user_id"]),
        MessageDeduplicationId=dedup,
    )
    msgs = dx.receive()
    assert len(msgs) == 1
    dx.forget(msgs)
    return sqs_event(msgs, dx.queue_arn)


def test_in_app_actions_are_never_deferred_by_quiet_hours(dx: Delivery) -> None:
    dx.clock.set(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    dx.seed("ny", timezone="America/New_York")
    action = dx.action("ny", "product_dwell_upsell")

    dx.run([action])

    assert dx.entry("ny", action["action_id"]).status == "sent"
    assert len(dx.inbox("ny")) == 1


# ---- unknown users, poison messages -------------------------------------------------------


def test_an_action_that_overtakes_its_profile_write_is_retried_then_delivered(dx: Delivery) -> None:
    # given an action enqueued just now for a user whose profile write has not landed yet
    # (the process function applies effects before it commits the profile)
    action = dx.action("early", "product_dwell_upsell")

    # when it is delivered before the profile exists
    first = dx.run([action])

    # then it is retried, not logged as an unknown user
    assert len(first["batchItemFailures"]) == 1
    assert dx.log("early") == []
    # and once the profile is there it goes out
    dx.seed("early")
    second = dx.run([action])
    assert second["batchItemFailures"] == []
    assert dx.entry("early", action["action_id"]).status == "sent"


def test_an_action_for_an_unknown_user_is_logged_failed_and_not_retried(dx: Delivery) -> None:
    # an action still without a profile after the wait (erased, or never stored)
    action = dx.action("ghost")
    dx.clock.set(dx.clock.now() + timedelta(minutes=11))

    resp = dx.run([action])

    assert resp["batchItemFailures"] == []
    entry = dx.entry("ghost", action["action_id"])
    assert (entry.status, entry.reason) == ("failed", "unknown_user")
    assert dx.emails() == []


def test_a_malformed_action_goes_to_the_dlq_and_does_not_block_its_batch(dx: Delivery) -> None:
    dx.seed("u1")
    good = dx.action("u1", "product_dwell_upsell")
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(
        QueueUrl=dx.queue_url,
        MessageBody='{"user_id": "u1"}',
        MessageGroupId="u0",
        MessageDeduplicationId="poison",
    )
    dx.enqueue([good])
    msgs = dx.receive()
    assert len(msgs) == 2
    event = sqs_event(msgs, dx.queue_arn)

    resp = dx.deliver(event)

    assert resp["batchItemFailures"] == []
    [dead] = dx.dlq()
    assert dead["MessageAttributes"]["reason"]["StringValue"].startswith("invalid action")
    assert dx.entry("u1", good["action_id"]).status == "sent"


def test_an_action_queued_before_action_messages_is_still_delivered(dx: Delivery) -> None:
    # given an action in flight across the deploy: the dict the process function queued
    # before ActionMessage (no kind, no v; the experiment as a dict)
    dx.seed("u1", email="ana@example.com")
    legacy = {
        k: v for k, v in dx.action("u1", "cart_abandonment").items() if k not in ("kind", "v")
    }
    legacy["experiment"] = {
        "id": "cart_test",
        "name": "cart_test",
        "variant": "b",
        "holdout": False,
    }

    resp = dx.run([legacy])

    assert resp["batchItemFailures"] == [] and dx.dlq() == []
    entry = dx.entry("u1", legacy["action_id"])
    assert (entry.status, entry.variant) == ("sent", "b")
    [mail] = dx.emails()
    assert mail.destinations["ToAddresses"] == ["ana@example.com"]


def test_an_action_of_an_unknown_version_goes_to_the_dlq_with_the_reason(dx: Delivery) -> None:
    dx.seed("u1", email="ana@example.com")
    newer = {**dx.action("u1", "cart_abandonment"), "v": 2}
    good = dx.action("u1", "product_dwell_upsell")

    resp = dx.run([newer, good])

    assert resp["batchItemFailures"] == []
    [dead] = dx.dlq()
    assert json.loads(dead["Body"])["action_id"] == newer["action_id"]
    assert dead["MessageAttributes"]["reason"]["StringValue"] == (
        "invalid action: unknown action message version 2 (this function reads 1)"
    )
    assert [e.action_id for e in dx.log("u1")] == [good["action_id"]]
    assert dx.emails() == []  # the product_dwell_upsell action goes in-app


def test_no_contact_on_any_channel_is_logged_failed(dx: Delivery) -> None:
    dx.seed("noemail", email=None)
    action = dx.action("noemail", "cart_abandonment")

    dx.run([action])

    entry = dx.entry("noemail", action["action_id"])
    assert (entry.status, entry.reason) == ("failed", "no_contact:email")
    assert iso(entry.at) == iso(dx.clock.now())


def test_a_cart_email_whose_cart_was_emptied_meanwhile_is_not_sent(dx: Delivery) -> None:
    # given a cart abandonment that fired, but the user ordered before it could go out
    # (a quiet-hours deferral, a late episode): the cart is empty now
    dx.seed("bought", cart=())
    action = dx.action("bought")
    action["context"] = {"event": "Product Added", "cart": [{"product_id": "shoe-1", "qty": 1}]}

    resp = dx.run([action])

    # then nothing is sent, nothing is dead-lettered, and the log says why
    assert resp["batchItemFailures"] == []
    assert dx.emails() == []
    entry = dx.entry("bought", action["action_id"])
    assert (entry.status, entry.reason) == ("suppressed", "stale: the cart is empty now")
