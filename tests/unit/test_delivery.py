"""The deliver use case (nudge.domain.delivery) step by step, on the in-memory ports of
tests/fakes.py: each step of deliver_action alone, then the whole action and a batch.
The same behaviours run end to end under moto in tests/integration/test_deliver_handler.py."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from nudge.domain.delivery import (
    CLAIM_TIMEOUT,
    OPEN,
    PROFILE_WAIT,
    RECORD_ATTEMPTS,
    AmbiguousSendError,
    ClaimHeldError,
    DeliveryEntry,
    EndpointDisabledError,
    Outbound,
    PermanentSendError,
    ProfileNotReadyError,
    TransientSendError,
    claim,
    compose,
    defer,
    deliver_action,
    deliver_batch,
    draft_entry,
    find_profile,
    history_of,
    insist,
    judge,
    prefs_of,
    reconcile_others,
    recover,
    resolve_channel,
    send,
    settle,
    staleness,
    suppressed_channels,
)
from nudge.domain.fatigue import FatigueConfig, Sent
from nudge.domain.messages import ActionSpec
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile
from nudge.domain.templates import Rendered, TemplateRenderError

from tests.fakes import (
    NOW,
    FakeDelivery,
    MemoryDeliveryLog,
    MemoryInbox,
    MemoryProfileStore,
    MemorySuppressions,
    RecordingSender,
    a_profile,
    an_action,
    bounced,
)


@pytest.fixture
def fx() -> FakeDelivery:
    fake = FakeDelivery()
    fake.profiles.save(StoredProfile(a_profile("u1"), None))
    return fake


def entry(
    status: str,
    *,
    at: datetime = NOW,
    action_id: str = "a1",
    channel: str = "email",
    defer_until: datetime | None = None,
) -> DeliveryEntry:
    return DeliveryEntry(
        "u1",
        action_id,
        "cart_abandonment",
        channel,
        status,
        "",
        at,
        fired_at=at,
        defer_until=defer_until,
    )


class FailingLog(MemoryDeliveryLog):
    """A delivery log whose next `failures` writes (records and releases) raise, as a
    store that is failing would."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def _fail(self) -> None:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("ProvisionedThroughputExceededException")

    def record(self, entry: DeliveryEntry, *, expect: frozenset[str | None]) -> bool:
        self._fail()
        return super().record(entry, expect=expect)

    def release(self, user_id: str, action_id: str) -> None:
        self._fail()
        super().release(user_id, action_id)


SENDERS = {"email": RecordingSender("email")}


# ---- recover: what an earlier attempt left ---------------------------------------------------
@pytest.mark.parametrize(
    "status", ["sent", "unconfirmed", "capped", "opted_out", "suppressed", "holdout", "failed"]
)
def test_a_decided_action_is_answered_by_its_entry_and_nothing_is_written(status: str) -> None:
    log = MemoryDeliveryLog()
    earlier = entry(status)

    assert recover(earlier, now=NOW, log=log, senders=SENDERS) is earlier
    assert log.writes == []


def test_a_fresh_claim_is_held_by_a_delivery_that_may_still_be_sending() -> None:
    log = MemoryDeliveryLog()
    claim_ = entry("sending", at=NOW - CLAIM_TIMEOUT + timedelta(seconds=1))

    with pytest.raises(ClaimHeldError):
        recover(claim_, now=NOW, log=log, senders=SENDERS)
    assert log.writes == []


def test_a_stale_email_claim_is_unconfirmed_never_failed_and_never_sent_again() -> None:
    log = MemoryDeliveryLog()
    stale = entry("sending", at=NOW - CLAIM_TIMEOUT)
    log.record(stale, expect=OPEN)

    outcome = recover(stale, now=NOW, log=log, senders=SENDERS)

    assert outcome is not None and outcome.status == "unconfirmed"
    assert outcome.reason.startswith("ambiguous: the attempt of 2026-03-02T11:58:00")
    assert outcome.at == stale.at  # when the attempt was made: the caps count it then
    assert log.entry("u1", "a1") == outcome


def test_a_stale_in_app_claim_whose_message_is_in_the_inbox_is_sent() -> None:
    log, inbox = MemoryDeliveryLog(), MemoryInbox()
    stale = entry("sending", at=NOW - CLAIM_TIMEOUT, channel="inapp")
    log.record(stale, expect=OPEN)
    message_id = inbox.send(_outbound("inapp", at=stale.at))

    outcome = recover(stale, now=NOW, log=log, senders={"inapp": inbox})

    assert outcome is not None
    assert (outcome.status, outcome.provider_id) == ("sent", message_id)
    assert outcome.reason == "ok: confirmed after an interrupted attempt"


def test_a_stale_in_app_claim_with_nothing_in_the_inbox_is_released_for_this_delivery() -> None:
    log = MemoryDeliveryLog()
    stale = entry("sending", at=NOW - CLAIM_TIMEOUT, channel="inapp")
    log.record(stale, expect=OPEN)

    assert recover(stale, now=NOW, log=log, senders={"inapp": MemoryInbox()}) is None
    assert log.entries("u1") == []


def test_the_stale_claims_of_the_user_s_other_actions_are_reconciled_the_fresh_left() -> None:
    log = MemoryDeliveryLog()
    stale_email = entry("sending", action_id="a0", at=NOW - timedelta(minutes=5))
    stale_inapp = entry("sending", action_id="a2", at=NOW - CLAIM_TIMEOUT, channel="inapp")
    fresh = entry("sending", action_id="a3", at=NOW - timedelta(seconds=5))
    for e in (stale_email, stale_inapp, fresh):
        log.record(e, expect=OPEN)

    out = reconcile_others(
        log.entries("u1"), "a1", now=NOW, log=log, senders={**SENDERS, "inapp": MemoryInbox()}
    )

    assert [(e.action_id, e.status) for e in out] == [
        ("a0", "unconfirmed"),
        ("a2", "failed"),  # its record has left the queue: nothing will deliver it now
        ("a3", "sending"),
    ]
    assert out[1].reason == "interrupted before the send: nothing delivered"
    assert [(e.action_id, e.status) for e in log.entries("u1")] == [
        (e.action_id, e.status) for e in out
    ]


def test_a_write_that_must_not_be_lost_is_tried_again_and_its_last_error_let_through() -> None:
    flaky = FailingLog(failures=RECORD_ATTEMPTS - 1)
    assert insist(lambda: flaky.record(entry("sent"), expect=OPEN))
    assert flaky.attempts == RECORD_ATTEMPTS

    down = FailingLog(failures=RECORD_ATTEMPTS)
    with pytest.raises(RuntimeError):
        insist(lambda: down.record(entry("sent"), expect=OPEN))
    assert down.attempts == RECORD_ATTEMPTS and down.entries("u1") == []


def test_a_deferred_action_back_early_is_a_duplicate_and_one_back_on_time_goes_on() -> None:
    log = MemoryDeliveryLog()
    early = entry("deferred", defer_until=NOW + timedelta(minutes=5))
    due = entry("deferred", defer_until=NOW + timedelta(seconds=60))  # within the tolerance

    assert recover(early, now=NOW, log=log, senders=SENDERS) is early
    assert recover(due, now=NOW, log=log, senders=SENDERS) is None


# ---- the draft entry and settling it --------------------------------------------------------------
def test_the_draft_takes_the_wanted_channel_in_app_without_one_or_the_one_resolved_before() -> None:
    assert draft_entry(an_action(channel="sms"), now=NOW).channel == "sms"
    assert draft_entry(an_action(channel=None), now=NOW).channel == "inapp"
    before = entry("deferred", channel="push")
    assert draft_entry(an_action(channel="email"), now=NOW, existing=before).channel == "push"


def test_the_draft_carries_the_action_s_trigger_priority_variant_and_fire_time() -> None:
    draft = draft_entry(an_action(priority=7, experiment={"id": "e1", "variant": "b"}), now=NOW)

    assert (draft.trigger_id, draft.priority, draft.variant, draft.fired_at, draft.at) == (
        "cart_abandonment",
        7,
        "b",
        NOW,
        NOW,
    )


def test_settling_never_overwrites_an_action_another_delivery_sent() -> None:
    log = MemoryDeliveryLog()
    log.record(entry("sent"), expect=OPEN)

    settle(log, entry(""), "capped", "cooldown")

    assert log.entry("u1", "a1").status == "sent"


# ---- the profile ----------------------------------------------------------------------------------
def test_an_id_merged_by_an_alias_is_delivered_to_the_profile_it_was_merged_into() -> None:
    store = MemoryProfileStore([Profile("anon", merged_into="u1"), a_profile("u1")])

    profile = find_profile(an_action("anon"), now=NOW, profiles=store)

    assert profile is not None and profile.user_id == "u1"


def test_an_action_that_overtook_its_profile_write_waits_then_the_user_is_unknown() -> None:
    store = MemoryProfileStore()
    fresh = an_action("ghost", at=NOW - PROFILE_WAIT + timedelta(seconds=1))
    old = an_action("ghost", at=NOW - PROFILE_WAIT)

    with pytest.raises(ProfileNotReadyError):
        find_profile(fresh, now=NOW, profiles=store)
    assert find_profile(old, now=NOW, profiles=store) is None


def test_a_cart_action_whose_cart_was_emptied_is_stale() -> None:
    assert staleness(an_action(cart=True), a_profile(cart=())) == "stale: the cart is empty now"
    assert staleness(an_action(cart=True), a_profile()) is None
    assert staleness(an_action(cart=False), a_profile(cart=())) is None


# ---- the channel ----------------------------------------------------------------------------------
def test_the_wanted_channel_when_the_user_can_be_reached_there_else_the_fallback() -> None:
    reachable = a_profile(devices=["arn:old", "arn:new"])
    no_device = a_profile()

    assert resolve_channel(reachable, an_action(channel="push", fallback="inapp")) == (
        "push",
        "arn:new",  # the last registered device
    )
    assert resolve_channel(no_device, an_action(channel="push", fallback="inapp")) == (
        "inapp",
        "u1",
    )
    assert resolve_channel(a_profile(email="not-an-address"), an_action(channel="email")) is None
    assert resolve_channel(a_profile(phone=" +15550100 "), an_action(channel="sms")) == (
        "sms",
        "+15550100",
    )
    assert resolve_channel(no_device, an_action(channel="fax", fallback=None)) is None


# ---- the fatigue guard's inputs and verdict -------------------------------------------------------
def test_the_history_is_the_user_s_sends_without_the_action_itself() -> None:
    entries = [
        entry("sent", action_id="a0", at=NOW - timedelta(hours=1)),
        entry("capped", action_id="a2"),
        entry("sent", action_id="a1"),
    ]

    assert history_of(entries, "a1") == [
        Sent(
            at=NOW - timedelta(hours=1), channel="email", trigger_id="cart_abandonment", priority=0
        )
    ]


def test_the_history_counts_what_may_have_gone_out_and_what_is_going_out() -> None:
    entries = [
        entry("unconfirmed", action_id="a0", at=NOW - timedelta(hours=2)),
        entry("sending", action_id="a2", at=NOW - timedelta(seconds=3)),
        entry("failed", action_id="a3"),
        entry("deferred", action_id="a4"),
    ]

    assert [s.at for s in history_of(entries, "a1")] == [
        NOW - timedelta(hours=2),
        NOW - timedelta(seconds=3),
    ]


def test_a_bounced_address_suppresses_its_channel_and_push_is_never_looked_up() -> None:
    listed = MemorySuppressions(["ana@example.com", "+15550100"])

    assert suppressed_channels("email", "ANA@example.com", listed) == frozenset({"email"})
    assert suppressed_channels("sms", "+15550100", listed) == frozenset({"sms"})
    assert suppressed_channels("push", "ana@example.com", listed) == frozenset()
    assert suppressed_channels("email", "bo@example.com", listed) == frozenset()


def test_the_user_s_preferences_are_their_time_zone_opt_outs_and_suppressions() -> None:
    profile = a_profile(timezone="Europe/Paris")
    profile.extra["opt_out"] = ["sms"]

    prefs = prefs_of(profile, frozenset({"email"}))

    assert (prefs.timezone, prefs.opted_out, prefs.suppressed_channels) == (
        "Europe/Paris",
        frozenset({"sms"}),
        frozenset({"email"}),
    )
    assert prefs_of(a_profile(timezone=3)).timezone is None  # not a zone name: UTC


def test_the_verdict_counts_the_log_and_the_suppression_list(fx: FakeDelivery) -> None:
    profile = a_profile()
    action = an_action()
    sent_before = entry("sent", action_id="a0", at=NOW - timedelta(hours=2))

    assert judge(
        action, profile, "email", "ana@example.com", entries=[], now=NOW, ports=fx.ports
    ).sends
    capped = judge(
        action, profile, "email", "ana@example.com", entries=[sent_before], now=NOW, ports=fx.ports
    )
    assert (capped.status, capped.reason) == ("capped", "cooldown")
    fx.suppressions.suppress("ana@example.com", "bounce", at=NOW)
    suppressed = judge(
        action, profile, "email", "ana@example.com", entries=[], now=NOW, ports=fx.ports
    )
    assert (suppressed.status, suppressed.reason) == ("suppressed", "suppressed:email")


def test_a_deferral_puts_the_action_back_for_its_time_and_logs_it_deferred(
    fx: FakeDelivery,
) -> None:
    action = an_action()
    until = NOW + timedelta(hours=9)

    logged = defer(
        action, draft_entry(action, now=NOW), until, "quiet_hours", log=fx.log, deferrer=fx.deferrer
    )

    [(queued, at)] = fx.deferrer.deferred
    assert at == until and queued == action.model_copy(update={"deferred_until": until})
    assert json.loads(queued.to_json())["deferred_until"] == "2026-03-02T21:00:00.000Z"
    assert (logged.status, logged.reason, logged.defer_until) == ("deferred", "quiet_hours", until)
    assert fx.log.entry("u1", action.action_id) == logged


# ---- render, claim, send --------------------------------------------------------------------------
def test_an_email_is_rendered_with_its_one_click_unsubscribe_link(fx: FakeDelivery) -> None:
    action = an_action()

    message = compose(
        action,
        a_profile(),
        "email",
        "ana@example.com",
        draft=draft_entry(action, now=NOW),
        now=NOW,
        ports=fx.ports,
    )

    link = "https://nudge.example.test/v1/unsubscribe?token=u1.email"
    assert message.headers == {
        "List-Unsubscribe": f"<{link}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert message.unsubscribe_url == link
    assert message.content.subject == "cart_abandonment: Ana Trail Runner 2"
    assert (message.to, message.at, message.action_id) == (
        "ana@example.com",
        NOW,
        action.action_id,
    )


def test_other_channels_have_no_unsubscribe_headers_and_the_trigger_names_a_missing_template(
    fx: FakeDelivery,
) -> None:
    action = an_action(channel="inapp").model_copy(update={"action": ActionSpec(channel="inapp")})

    message = compose(
        action,
        a_profile(),
        "inapp",
        "u1",
        draft=draft_entry(action, now=NOW),
        now=NOW,
        ports=fx.ports,
    )

    assert message.headers == {} and message.unsubscribe_url is None
    [(template, channel, variables)] = fx.renderer.calls
    assert (template, channel, variables["unsubscribe_url"]) == ("cart_abandonment", "inapp", "")


def test_a_template_error_is_logged_failed_and_raised(fx: FakeDelivery) -> None:
    fx.renderer.broken.add("cart_abandonment")
    action = an_action()

    with pytest.raises(TemplateRenderError):
        compose(
            action,
            a_profile(),
            "email",
            "ana@example.com",
            draft=draft_entry(action, now=NOW),
            now=NOW,
            ports=fx.ports,
        )

    logged = fx.log.entry("u1", action.action_id)
    assert logged.status == "failed" and logged.reason.startswith(
        "template: cart_abandonment/email"
    )


def test_a_claim_is_won_once() -> None:
    log = MemoryDeliveryLog()
    draft = entry("")

    won, claimed = claim(draft, "ana@example.com", log)
    again, held = claim(draft, "ana@example.com", log)

    assert won and (claimed.status, claimed.reason, claimed.to) == (
        "sending",
        "claimed",
        "ana@example.com",
    )
    assert not again and held == claimed


def _outbound(channel: str = "email", *, at: datetime = NOW) -> Outbound:
    return Outbound(
        user_id="u1",
        action_id="a1",
        trigger_id="cart_abandonment",
        channel=channel,
        to="ana@example.com",
        at=at,
        content=Rendered(subject="Hi", text="x" * 600),
        fired_at=at,
    )


def _claimed(log: MemoryDeliveryLog) -> DeliveryEntry:
    won, claimed = claim(entry(""), "ana@example.com", log)
    assert won
    return claimed


def test_a_sent_message_is_logged_sent_with_the_provider_s_id_and_a_short_body() -> None:
    log, sender = MemoryDeliveryLog(), RecordingSender("email")

    sent = send(_outbound(), _claimed(log), log=log, senders={"email": sender})

    assert [m.action_id for m in sender.sent] == ["a1"]
    assert (sent.status, sent.provider_id, sent.subject, len(sent.body or "")) == (
        "sent",
        "email-1",
        "Hi",
        500,
    )
    assert log.entry("u1", "a1") == sent


@pytest.mark.parametrize("reconciled", ["unconfirmed", "failed"])
def test_the_send_is_recorded_even_after_a_redelivery_reconciled_the_claim(
    reconciled: str,
) -> None:
    log = MemoryDeliveryLog()
    claimed = _claimed(log)
    log.record(replace(claimed, status=reconciled), expect=frozenset({"sending"}))

    send(_outbound(), claimed, log=log, senders={"email": RecordingSender("email")})

    assert log.entry("u1", "a1").status == "sent"


def test_a_store_failure_after_the_send_is_tried_again_and_the_log_says_sent() -> None:
    log = FailingLog()
    claimed = _claimed(log)
    log.failures = RECORD_ATTEMPTS - 1

    sent = send(_outbound(), claimed, log=log, senders={"email": RecordingSender("email")})

    assert sent.status == "sent" and log.entry("u1", "a1") == sent


def test_a_store_that_stays_down_after_the_send_leaves_the_claim_never_a_failure() -> None:
    log = FailingLog()
    claimed = _claimed(log)
    log.failures = RECORD_ATTEMPTS

    with pytest.raises(RuntimeError):
        send(_outbound(), claimed, log=log, senders={"email": RecordingSender("email")})

    assert log.entry("u1", "a1").status == "sending"  # reconciled later: `unconfirmed`


def test_an_ambiguous_answer_is_logged_unconfirmed_and_not_raised() -> None:
    log = MemoryDeliveryLog()
    sender = RecordingSender("email", fail_with=[AmbiguousSendError("InternalFailure: oops")])

    outcome = send(_outbound(), _claimed(log), log=log, senders={"email": sender})

    assert (outcome.status, outcome.reason) == (
        "unconfirmed",
        "ambiguous: InternalFailure: oops; it may have been sent",
    )
    assert log.entry("u1", "a1") == outcome


@pytest.mark.parametrize(
    "error", [TransientSendError("Throttling"), EndpointDisabledError("gone", "arn:1")]
)
def test_a_send_that_did_not_happen_releases_the_claim_and_raises(error: Exception) -> None:
    log = MemoryDeliveryLog()
    sender = RecordingSender("email", fail_with=[error])

    with pytest.raises(type(error)):
        send(_outbound(), _claimed(log), log=log, senders={"email": sender})

    assert log.entries("u1") == []


def test_a_permanent_refusal_is_logged_failed_and_raised() -> None:
    log = MemoryDeliveryLog()
    sender = RecordingSender("email", fail_with=[bounced("ana@example.com")])

    with pytest.raises(PermanentSendError):
        send(_outbound(), _claimed(log), log=log, senders={"email": sender})

    logged = log.entry("u1", "a1")
    assert (logged.status, logged.reason) == (
        "failed",
        "send: MessageRejected: ana@example.com bounced",
    )


# ---- the whole action -----------------------------------------------------------------------------
def test_an_email_action_sends_one_email_and_logs_it_sent(fx: FakeDelivery) -> None:
    action = an_action()

    logged = deliver_action(action, now=NOW, ports=fx.ports)

    [mail] = fx.email.sent
    assert mail.to == "ana@example.com" and mail.headers["List-Unsubscribe-Post"]
    assert (logged.status, logged.channel, logged.provider_id) == ("sent", "email", "email-1")
    assert fx.log.entries("u1") == [logged]


def test_a_redelivered_action_sends_nothing_more(fx: FakeDelivery) -> None:
    action = an_action()

    first = deliver_action(action, now=NOW, ports=fx.ports)
    second = deliver_action(action, now=NOW + timedelta(seconds=5), ports=fx.ports)

    assert len(fx.email.sent) == 1 and second == first


def test_a_redelivery_during_the_send_sends_nothing_and_the_log_ends_sent(fx: FakeDelivery) -> None:
    action = an_action()
    nested: list[Exception] = []

    def redeliver(_: Outbound) -> None:  # SQS hands the message to a second invocation
        if not nested:
            with pytest.raises(ClaimHeldError) as held:  # it finds the claim: retried later
                deliver_action(action, now=NOW, ports=fx.ports)
            nested.append(held.value)

    fx.email.on_send.append(redeliver)

    deliver_action(action, now=NOW, ports=fx.ports)
    again = deliver_action(action, now=NOW + timedelta(minutes=3), ports=fx.ports)

    assert len(nested) == 1
    assert len(fx.email.sent) == 1 and fx.log.entry("u1", action.action_id).status == "sent"
    assert again.status == "sent"


def test_the_redelivery_after_a_crash_past_the_send_sends_nothing_and_the_log_is_unconfirmed(
    fx: FakeDelivery,
) -> None:
    action = an_action()

    def crash(_: Outbound) -> None:
        fx.email.on_send.clear()
        fx.email.sent.append(_)  # the provider took it, then the function died
        raise SystemExit("the function died")

    fx.email.on_send.append(crash)
    with pytest.raises(SystemExit):
        deliver_action(action, now=NOW, ports=fx.ports)
    with pytest.raises(ClaimHeldError):  # too soon: the attempt might still be running
        deliver_action(action, now=NOW + timedelta(seconds=30), ports=fx.ports)
    outcome = deliver_action(action, now=NOW + CLAIM_TIMEOUT, ports=fx.ports)

    assert len(fx.email.sent) == 1
    assert (outcome.status, outcome.at) == ("unconfirmed", NOW)


def test_an_in_app_message_whose_attempt_crashed_after_the_write_is_confirmed_sent(
    fx: FakeDelivery,
) -> None:
    action = an_action(trigger_id="product_dwell_upsell", channel="inapp")
    real_send = fx.inbox.send

    def send_then_crash(message: Outbound) -> str:
        real_send(message)
        raise SystemExit("the function died after the write")

    fx.inbox.send = send_then_crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        deliver_action(action, now=NOW, ports=fx.ports)
    fx.inbox.send = real_send  # type: ignore[method-assign]
    outcome = deliver_action(action, now=NOW + CLAIM_TIMEOUT, ports=fx.ports)

    [message] = fx.inbox.messages("u1")
    assert (outcome.status, outcome.provider_id) == ("sent", message.id)


def test_the_caps_count_a_message_that_may_have_gone_out(fx: FakeDelivery) -> None:
    fx.email.fail_with.append(AmbiguousSendError("ReadTimeoutError: read timed out"))
    first = deliver_action(an_action(), now=NOW, ports=fx.ports)
    second = deliver_action(
        an_action(trigger_id="inactivity_winback", episode=2), now=NOW, ports=fx.ports
    )

    assert first.status == "unconfirmed"
    assert (second.status, second.reason) == ("capped", "cap:channel:email:1/24h")
    assert fx.email.sent == []


def test_the_same_in_app_action_written_twice_is_one_message() -> None:
    inbox = MemoryInbox()

    first, again = inbox.send(_outbound("inapp")), inbox.send(_outbound("inapp", at=NOW))

    assert first == again and len(inbox.messages("u1")) == 1


def test_a_user_without_an_address_fails_no_contact_and_an_unknown_user_fails(
    fx: FakeDelivery,
) -> None:
    fx.profiles.save(StoredProfile(a_profile("u2", email=None), None))

    no_contact = deliver_action(an_action("u2"), now=NOW, ports=fx.ports)
    unknown = deliver_action(an_action("ghost", at=NOW - PROFILE_WAIT), now=NOW, ports=fx.ports)

    assert (no_contact.status, no_contact.reason) == ("failed", "no_contact:email")
    assert (unknown.status, unknown.reason) == ("failed", "unknown_user")
    assert fx.email.sent == []


def test_an_action_of_a_user_erased_since_it_fired_is_dropped_and_leaves_nothing(
    fx: FakeDelivery,
) -> None:
    """An action still queued when its user was erased finds the tombstone: no send, no
    delivery-log entry under the erased id, nothing for the handler to archive."""
    from nudge.domain.erase import tombstone

    fx.profiles.save(StoredProfile(tombstone("u1", NOW), fx.profiles.get("u1").version))
    cart, inapp = an_action(), an_action(trigger_id="welcome", channel="inapp")

    assert deliver_action(cart, now=NOW, ports=fx.ports) is None
    result = deliver_batch({"u1": [cart, inapp]}, now=NOW, ports=fx.ports)

    assert result.entries == []
    assert {a.action_id for a in result.dropped} == {cart.action_id, inapp.action_id}
    assert fx.log.entries("u1") == [] and fx.email.sent == []


def test_quiet_hours_defer_the_action_and_it_goes_out_when_they_end(fx: FakeDelivery) -> None:
    action = an_action()
    night = NOW + timedelta(hours=10)  # 22:00 UTC

    deferred = deliver_action(action, now=night, ports=fx.ports)
    [(queued, until)] = fx.deferrer.deferred
    sent = deliver_action(queued, now=until, ports=fx.ports)

    assert (deferred.status, deferred.reason) == ("deferred", "quiet_hours")
    assert until == NOW.replace(hour=8) + timedelta(days=1)
    assert sent.status == "sent" and len(fx.email.sent) == 1
    assert [e.status for e in fx.log.entries("u1")] == ["sent"]


def test_a_disabled_push_endpoint_is_forgotten_and_the_fallback_channel_delivers(
    fx: FakeDelivery,
) -> None:
    fx.profiles.save(StoredProfile(a_profile("u3", devices=["arn:gone"]), None))
    fx.push.fail_with.append(EndpointDisabledError("EndpointDisabled: arn:gone", "arn:gone"))
    action = an_action("u3", "repeat_product_view", channel="push", fallback="inapp")

    logged = deliver_action(action, now=NOW, ports=fx.ports)

    assert fx.forgotten == [("u3", "arn:gone")]
    assert fx.profiles.profile("u3").extra["devices"] == []
    assert (logged.status, logged.channel) == ("sent", "inapp")
    assert [m.trigger for m in fx.inbox.messages("u3")] == ["repeat_product_view"]


# ---- a batch --------------------------------------------------------------------------------------
def test_a_user_s_actions_go_in_priority_order_and_the_last_slot_goes_to_the_higher_priority(
    fx: FakeDelivery,
) -> None:
    fx.fatigue = FatigueConfig.model_validate(
        {"caps": [{"scope": "global", "limit": 1, "window": "24h"}]}
    )
    low = an_action(trigger_id="inactivity_winback", channel="inapp", priority=20)
    high = an_action(trigger_id="product_dwell_upsell", channel="inapp", priority=30)

    result = deliver_batch({"u1": [low, high]}, now=NOW, ports=fx.ports)

    assert [(e.trigger_id, e.status, e.reason) for e in result.entries] == [
        ("product_dwell_upsell", "sent", "ok"),
        ("inactivity_winback", "capped", "cap:global:1/24h"),
    ]


def test_a_template_error_dead_letters_that_action_and_the_batch_goes_on(fx: FakeDelivery) -> None:
    fx.renderer.broken.add("broken")
    bad = an_action(trigger_id="broken", channel="inapp", priority=50)
    good = an_action(trigger_id="fine", channel="inapp", priority=10)

    result = deliver_batch({"u1": [good, bad]}, now=NOW, ports=fx.ports)

    assert [a.trigger_id for a, _ in result.dead_lettered] == ["broken"]
    assert result.dead_lettered[0][1].startswith("template_error: broken/inapp")
    assert [e.trigger_id for e in result.entries] == ["fine"] and result.failed_users == {}


def test_a_transient_failure_stops_the_user_s_remaining_actions_and_not_the_others(
    fx: FakeDelivery,
) -> None:
    fx.profiles.save(StoredProfile(a_profile("u2"), None))
    fx.email.fail_with.append(TransientSendError("Throttling: slow down"))
    first = an_action("u1", channel="email", priority=100)
    then = an_action("u1", "product_dwell_upsell", channel="inapp", priority=30)
    other = an_action("u2", "product_dwell_upsell", channel="inapp")

    result = deliver_batch({"u1": [then, first], "u2": [other]}, now=NOW, ports=fx.ports)

    assert isinstance(result.failed_users["u1"], TransientSendError)
    assert [e.user_id for e in result.entries] == ["u2"]
    assert fx.log.entries("u1") == []  # released: the queue retries both in order


def test_a_held_claim_stops_the_user_s_remaining_actions_for_the_queue_to_retry(
    fx: FakeDelivery,
) -> None:
    first = an_action("u1", channel="email", priority=100)
    then = an_action("u1", "product_dwell_upsell", channel="inapp", priority=30)
    fx.log.record(
        replace(draft_entry(first, now=NOW), status="sending", reason="claimed"), expect=OPEN
    )

    result = deliver_batch({"u1": [then, first]}, now=NOW, ports=fx.ports)

    assert isinstance(result.failed_users["u1"], ClaimHeldError)
    assert result.entries == [] and fx.email.sent == [] and fx.inbox.messages("u1") == []


# ---- one list of channels -------------------------------------------------------------------------
def test_every_channel_has_its_template_parts_and_can_be_unsubscribed_from() -> None:
    from nudge.domain.channels import ALL_CHANNELS, CHANNELS
    from nudge.domain.templates import CHANNEL_PARTS
    from nudge.domain.unsubscribe import make_token, verify_token

    assert tuple(CHANNEL_PARTS) == CHANNELS
    for channel in (*CHANNELS, ALL_CHANNELS):
        assert verify_token(b"k", make_token(b"k", "u1", channel)) == ("u1", channel)
