"""The deliver use case: one fired episode (an action) becomes at most one message.

`deliver_action` runs named steps, each a function below with a unit test on in-memory
ports (tests/unit/test_delivery.py): `recover` (what an earlier attempt left) →
`draft_entry` → `find_profile` (through merges) → `staleness` → `resolve_channel` →
`judge` (the fatigue guard, fed by `history_of`, `suppressed_channels`, `prefs_of`) →
`defer` or `settle`, or `compose` (render) → `claim` → `send`; a disabled push endpoint
is forgotten and the action delivered again on its fallback channel. `deliver_batch`
takes each user's actions in priority order (fatigue.order_by_priority). An action is
the actions queue's message, nudge.domain.messages.ActionMessage.

Every action leaves exactly one entry in the user's delivery log, keyed by its action
id, whose status moves `deferred → sent` (or unconfirmed, capped, opted_out, suppressed,
holdout, failed).

At most once: before sending, the entry is claimed with a conditional write
(`sending`); a redelivery or a concurrent delivery finds the claim, sends nothing and
is retried later (ClaimHeldError), when the claim has become an outcome. What happens
at the provider decides the outcome (docs/decisions.md D15, D41):

- accepted: logged `sent` (that write is insisted on, RECORD_ATTEMPTS times: the
  message went out, and a log that says otherwise undercounts the caps);
- refused before sending (throttling, a disabled endpoint): the claim is released and
  the queue retries; refused for good: `failed` with the provider's reason;
- an ambiguous answer (a 5xx, a timeout after the request went out): `unconfirmed`,
  never sent again, and counted by the caps as if sent;
- no answer (the function died holding the claim): a claim older than CLAIM_TIMEOUT is
  reconciled by the next delivery that reads the user's log (the action's own
  redelivery or any other of the user's): a channel whose sender can tell
  (`Confirming`: the in-app inbox) gives `sent` or a fresh attempt; the others give
  `unconfirmed`, as above;
- and later, SES's own events about an email (its Delivery, a bounce, an open...) prove
  that it went out: the feedback function turns its `unconfirmed` entry (or a claim not
  yet recorded) into `sent` (`confirm_sent`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

from nudge.domain.catalog import describe
from nudge.domain.channels import CHANNELS
from nudge.domain.clock import from_ms, iso, to_ms
from nudge.domain.errors import NudgeError
from nudge.domain.fatigue import (
    Candidate,
    FatigueConfig,
    Sent,
    UserPrefs,
    Verdict,
    decide,
    order_by_priority,
)
from nudge.domain.messages import ActionMessage
from nudge.domain.ports import ProfileStore, resolve_profile
from nudge.domain.profile import ITEM_CODES, Profile
from nudge.domain.recommend import STRATEGIES, ItemModel, recommender
from nudge.domain.templates import Rendered, build_variables

FINAL = frozenset({"sent", "unconfirmed", "capped", "opted_out", "suppressed", "holdout", "failed"})
# What the caps and cooldowns count: what was sent, what may have been (an ambiguous
# answer) and what is being sent right now
COUNTED = frozenset({"sent", "unconfirmed", "sending"})
DEFER_TOLERANCE = timedelta(seconds=90)
# A claim older than this belongs to an attempt that died (the deliver function times out
# after 30 s; SQS redelivers after the 180 s visibility timeout, so the action's own
# redelivery finds its dead claim stale).
CLAIM_TIMEOUT = timedelta(seconds=120)
# How often a log write that must not be lost (a message went out, or certainly did not)
# is tried before the error is let through (each try has the store's own SDK retries).
RECORD_ATTEMPTS = 4
# How long an action waits (redelivered) for the profile write that fired it.
PROFILE_WAIT = timedelta(minutes=10)


class PermanentSendError(NudgeError):
    """The provider refused the message for good (bad address, disabled endpoint...)."""

    code = "send_failed"


class EndpointDisabledError(PermanentSendError):
    """A push endpoint was disabled by the platform (app uninstalled, token expired)."""

    def __init__(self, message: str, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ProfileNotReadyError(NudgeError):
    """The action overtook the profile write that fired it (effects are applied before
    the commit): retry shortly instead of calling the user unknown."""

    code = "profile_not_ready"


class TransientSendError(NudgeError):
    """The provider did not take the message (throttled, not reached): nothing was sent."""

    code = "send_unavailable"


class AmbiguousSendError(NudgeError):
    """The provider may have taken the message (a 5xx, a timeout after the request went
    out): it is logged `unconfirmed` and never sent again."""

    code = "send_ambiguous"


class ClaimHeldError(NudgeError):
    """Another attempt holds the action's claim (it is sending right now, or died less
    than CLAIM_TIMEOUT ago): nothing is sent; the queue brings the action back later."""

    code = "claim_held"


@dataclass
class DeliveryEntry:
    user_id: str
    action_id: str
    trigger_id: str
    channel: str
    status: str
    reason: str
    at: datetime
    fired_at: datetime | None = None
    priority: int = 0
    variant: str | None = None
    defer_until: datetime | None = None
    provider_id: str | None = None
    to: str | None = None
    subject: str | None = None
    body: str | None = None

    def view(self) -> dict[str, Any]:
        out = {
            "action_id": self.action_id,
            "trigger": self.trigger_id,
            "channel": self.channel,
            "status": self.status,
            "reason": self.reason,
            "at": iso(self.at),
        }
        if self.defer_until is not None:
            out["defer_until"] = iso(self.defer_until)
        if self.variant is not None:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Outbound:
    """A rendered message ready for a channel."""

    user_id: str
    action_id: str
    trigger_id: str
    channel: str
    to: str
    at: datetime  # when it is sent (the clock port's now)
    content: Rendered = field(default_factory=Rendered)  # the channel's rendered parts
    unsubscribe_url: str | None = None
    variant: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    experiment_id: str | None = None  # the trigger's experiment (email tags carry it)
    fired_at: datetime | None = None  # the episode's time (the inbox keys its message by it)


class DeliveryLog(Protocol):
    def entries(self, user_id: str) -> list[DeliveryEntry]: ...

    def record(self, entry: DeliveryEntry, *, expect: frozenset[str | None]) -> bool:
        """Writes the entry if the stored status is one of `expect` (None: absent)."""

    def release(self, user_id: str, action_id: str) -> None:
        """Drops a `sending` claim after a send that certainly did not happen (or whose
        repetition is harmless: the inbox's write is idempotent)."""


class Sender(Protocol):
    def send(self, message: Outbound) -> str:
        """Sends and returns the provider's message id."""


@runtime_checkable
class Confirming(Protocol):
    """A sender that can tell afterwards whether a claimed message was delivered (the
    in-app inbox: its own table). Email, SMS and push cannot: their providers keep no
    record nudge could look up."""

    def confirm(self, claim: DeliveryEntry) -> str | None:
        """The message id of the claim's message if it was delivered, None if not."""


class Renderer(Protocol):
    def render(self, name: str, channel: str, variables: Mapping[str, Any]) -> Rendered: ...


class Deferrer(Protocol):
    def defer(self, action: ActionMessage, until: datetime) -> None: ...


class Suppressions(Protocol):
    def is_suppressed(self, address: str) -> bool: ...


@dataclass
class DeliveryPorts:
    """Everything the deliver use case talks to: the deliver function wires the AWS
    adapters, tests the in-memory fakes of tests/fakes.py."""

    profiles: ProfileStore
    log: DeliveryLog
    senders: Mapping[str, Sender]
    renderer: Renderer
    deferrer: Deferrer
    suppressions: Suppressions
    unsubscribe_url: Callable[[str, str], str]
    fatigue: FatigueConfig
    app_url: str = ""
    forget_device: Callable[[str, str], None] = lambda user_id, endpoint: None
    # the recommendation model and the catalog for the templates' `recommendations`
    # (nudge.domain.recommend); None: the user's own recently viewed items
    load_items: Callable[[], ItemModel | None] = lambda: None
    load_catalog: Callable[[], Mapping[str, Mapping[str, Any]] | None] = lambda: None


def candidate_of(action: ActionMessage, channel: str | None = None) -> Candidate:
    return Candidate(
        action_id=action.action_id,
        user_id=action.user_id,
        trigger_id=action.trigger_id,
        # arg-type: a str from JSON; the trigger loader accepted only a Channel there
        channel=channel or str(action.action.channel),  # type: ignore[arg-type]
        priority=action.priority,
        cooldown_seconds=action.cooldown_seconds,
        fired_at=action.at or from_ms(0),
        window=action.action.send_window,
        holdout=action.holdout,
    )


def devices(profile: Profile) -> list[dict[str, Any]]:
    return list(profile.extra.get("devices") or [])


def opted_out(profile: Profile) -> frozenset[str]:
    return frozenset(profile.extra.get("opt_out") or [])


def contact(profile: Profile, channel: str) -> str | None:
    traits = profile.traits
    if channel == "email":
        email = traits.get("email")
        return email.strip() if isinstance(email, str) and "@" in email else None
    if channel == "sms":
        phone = traits.get("phone")
        return phone.strip() if isinstance(phone, str) and phone.strip() else None
    if channel == "push":
        devs = devices(profile)
        return devs[-1]["endpoint_arn"] if devs else None
    if channel == "inapp":
        return profile.user_id
    return None


def resolve_channel(profile: Profile, action: ActionMessage) -> tuple[str, str] | None:
    """The action's channel when the user can be reached there, else its fallback."""
    for channel in (action.action.channel, action.action.fallback):
        if channel in CHANNELS:
            to = contact(profile, channel)
            if to:
                return channel, to
    return None


def recommendations(
    profile: Profile,
    limit: int = 4,
    exclude: frozenset[str] = frozenset(),
    *,
    model: ItemModel | None = None,
    catalog: Mapping[str, Mapping[str, Any]] | None = None,
    strategy: str = "personal",
) -> list[dict[str, Any]]:
    """With a model: its recommendations by `strategy` (nudge.domain.recommend.
    recommender: `personal` for the user's recent items, `popular` the most popular),
    neither in the cart nor bought nor `exclude`d. Without one: for `personal` the items
    the user looked at and has neither in the cart nor bought, most recent first; for
    `popular` none (nothing is known to be popular). ValueError for another strategy."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown recommendation strategy {strategy!r}: {STRATEGIES}")
    in_cart = {i["product_id"] for i in profile.cart_items()} | exclude
    if model is not None and len(model):
        return recommender(strategy, model, catalog=catalog).recommend(
            profile, limit, exclude=in_cart
        )
    if strategy == "popular":
        return []
    seen: list[dict[str, Any]] = []
    for item_id, code, _t in profile.recent_items:
        if (
            item_id in in_cart
            or item_id in profile.bought
            or any(s["item_id"] == item_id for s in seen)
        ):
            continue
        seen.append(
            {"item_id": item_id, "event": {v: k for k, v in ITEM_CODES.items()}[code], "score": 1.0}
        )
        if len(seen) >= limit:
            break
    n = len(seen)
    for i, s in enumerate(seen):
        s["score"] = round(1.0 - i / max(n, 1), 3)
    return seen


def variables(
    profile: Profile,
    action: ActionMessage,
    channel: str,
    *,
    unsubscribe_url: str,
    app_url: str,
    model: ItemModel | None = None,
    catalog: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The template variables (nudge.domain.templates' contract) for one action; with a
    catalog, recommendations and cart items carry its names, prices, URLs and images."""
    ctx = action.context
    return build_variables(
        user_id=profile.user_id,
        traits=profile.traits,
        segment=profile.segment,
        trigger=action.trigger_id,
        event={"name": ctx.get("event") or "", "properties": ctx.get("properties") or {}},
        cart=describe(profile.cart_items(), catalog, key="product_id"),
        product=ctx.get("product"),
        recommendations=describe(
            recommendations(
                profile,
                exclude=frozenset({str((ctx.get("product") or {}).get("product_id"))}) - {"None"},
                model=model,
                catalog=catalog,
                # an experiment's variant may name another (experiments.exposure)
                strategy=(action.experiment.strategy if action.experiment else None) or "personal",
            ),
            catalog,
        ),
        unsubscribe_url=unsubscribe_url if channel == "email" else "",
        variant=action.variant,
        app_url=app_url,
    )


# ---- the steps of one delivery --------------------------------------------------------------------
# deliver_action runs them in this order; each returns what the next needs, or the entry
# that ends the delivery (recorded in the log, or left as it is).
OPEN: frozenset[str | None] = frozenset({None, "deferred"})  # entries a delivery may settle


def entry_of(entries: Sequence[DeliveryEntry], action_id: str) -> DeliveryEntry | None:
    return next((e for e in entries if e.action_id == action_id), None)


def recover(
    existing: DeliveryEntry, *, now: datetime, log: DeliveryLog, senders: Mapping[str, Sender]
) -> DeliveryEntry | None:
    """What an earlier attempt at the same action left: the entry that answers this one
    (nothing is sent), or None when this delivery goes on. A decided action stays
    decided; a claim younger than CLAIM_TIMEOUT is held by a delivery that may still be
    sending (ClaimHeldError: come back later); an older one belongs to an attempt that
    died, and is reconciled (`reconcile`); a deferred action that comes back well before
    its time is an early duplicate."""
    if existing.status in FINAL:
        return existing  # a redelivery: already decided
    if existing.status == "sending":
        if now - existing.at < CLAIM_TIMEOUT:
            raise ClaimHeldError(
                f"{existing.action_id} is claimed by an attempt of {iso(existing.at)}"
            )
        return reconcile(existing, log=log, senders=senders, retry=True)
    if (
        existing.status == "deferred"
        and existing.defer_until
        and now + DEFER_TOLERANCE < existing.defer_until
    ):
        return existing  # an early duplicate of a deferred action
    return None


T = TypeVar("T")
CLAIMED: frozenset[str | None] = frozenset({"sending"})


def insist(write: Callable[[], T]) -> T:
    """`write` (a log write that must not be lost) tried up to RECORD_ATTEMPTS times;
    the last error is let through."""
    for _ in range(RECORD_ATTEMPTS - 1):
        try:
            return write()
        except Exception:  # the store's error, whichever its adapter raises: once more
            continue
    return write()


def conclude(log: DeliveryLog, claimed: DeliveryEntry, status: str, reason: str) -> DeliveryEntry:
    """Turns a claim into its outcome (at the claim's time: when the attempt was made),
    unless another delivery concluded it first (then that one's entry)."""
    done = replace(claimed, status=status, reason=reason)
    if insist(lambda: log.record(done, expect=CLAIMED)):
        return done
    return entry_of(log.entries(claimed.user_id), claimed.action_id) or done


def reconcile(
    stale: DeliveryEntry, *, log: DeliveryLog, senders: Mapping[str, Sender], retry: bool
) -> DeliveryEntry | None:
    """The outcome of a claim whose attempt died without saying what the provider did.
    A sender that can tell (Confirming) answers `sent`, or that nothing was delivered:
    then the claim is released for this delivery to go on (`retry`: None) or, when the
    action is not being delivered now, `failed`. Any other channel: `unconfirmed`, the
    message may have gone out, so it is never sent again."""
    sender = senders.get(stale.channel)
    if isinstance(sender, Confirming):
        provider_id = sender.confirm(stale)
        if provider_id is not None:
            done = replace(stale, provider_id=provider_id)
            return conclude(log, done, "sent", "ok: confirmed after an interrupted attempt")
        if retry:
            insist(lambda: log.release(stale.user_id, stale.action_id))
            return None
        return conclude(log, stale, "failed", "interrupted before the send: nothing delivered")
    return conclude(
        log,
        stale,
        "unconfirmed",
        f"ambiguous: the attempt of {iso(stale.at)} died holding the claim; "
        "the provider may have sent it; not sent again",
    )


def reconcile_others(
    entries: Sequence[DeliveryEntry],
    action_id: str,
    *,
    now: datetime,
    log: DeliveryLog,
    senders: Mapping[str, Sender],
) -> list[DeliveryEntry]:
    """The user's log with the stale claims of their other actions reconciled. Those
    actions are no longer on their way: a user's actions come one after the other in
    the user's message group, so an older claim's record has left the queue (to the
    dead-letter queue after its retries)."""
    out: list[DeliveryEntry] = []
    for e in entries:
        if e.status == "sending" and e.action_id != action_id and now - e.at >= CLAIM_TIMEOUT:
            e = reconcile(e, log=log, senders=senders, retry=False) or e
        out.append(e)
    return out


def draft_entry(
    action: ActionMessage, *, now: datetime, existing: DeliveryEntry | None = None
) -> DeliveryEntry:
    """The action's log entry before its status is known (the channel is the wanted one,
    or the one an earlier attempt resolved)."""
    return DeliveryEntry(
        user_id=action.user_id,
        action_id=action.action_id,
        trigger_id=action.trigger_id,
        channel=existing.channel if existing is not None else action.action.channel or "inapp",
        status="",
        reason="",
        at=now,
        fired_at=action.at,
        priority=action.priority,
        variant=action.variant,
    )


def settle(
    log: DeliveryLog, draft: DeliveryEntry, status: str, reason: str, **kw: Any
) -> DeliveryEntry:
    """Records the action's outcome, unless another delivery settled it first."""
    entry = replace(draft, status=status, reason=reason, **kw)
    log.record(entry, expect=OPEN)
    return entry


def find_profile(action: ActionMessage, *, now: datetime, profiles: ProfileStore) -> Profile | None:
    """The user's profile (the one an alias merged them into, if so), None for a user
    unknown for good. Raises ProfileNotReadyError while the action may have overtaken
    the profile write that fired it (effects are applied before the commit)."""
    stored = resolve_profile(profiles, action.user_id)
    if stored is not None:
        return stored.profile
    enqueued = action.enqueued_at or action.at
    if enqueued is not None and now - enqueued < PROFILE_WAIT:
        raise ProfileNotReadyError(f"no profile for {action.user_id!r} yet")
    return None


def staleness(action: ActionMessage, profile: Profile) -> str | None:
    """Why the action no longer applies to the profile as it is now, or None."""
    if "cart" in action.context and not profile.cart_items():
        # a cart trigger whose cart was emptied (ordered, removed) before it could go out
        return "stale: the cart is empty now"
    return None


def history_of(entries: Sequence[DeliveryEntry], action_id: str) -> list[Sent]:
    """The user's past sends (caps and cooldowns count them), the action itself aside:
    those logged `sent`, those that may have gone out (`unconfirmed`) and those being
    sent right now (`sending`)."""
    return [
        Sent(at=e.at, channel=e.channel, trigger_id=e.trigger_id, priority=e.priority)
        for e in entries
        if e.status in COUNTED and e.action_id != action_id
    ]


def suppressed_channels(channel: str, to: str, suppressions: Suppressions) -> frozenset[str]:
    """The channel, when its address bounced or complained (email and SMS keep a list)."""
    if channel in ("email", "sms") and suppressions.is_suppressed(to):
        return frozenset({channel})
    return frozenset()


def prefs_of(profile: Profile, suppressed: frozenset[str] = frozenset()) -> UserPrefs:
    tz = profile.traits.get("timezone")
    return UserPrefs(
        timezone=tz if isinstance(tz, str) else None,
        opted_out=opted_out(profile),
        suppressed_channels=suppressed,
    )


def judge(
    action: ActionMessage,
    profile: Profile,
    channel: str,
    to: str,
    *,
    entries: Sequence[DeliveryEntry],
    now: datetime,
    ports: DeliveryPorts,
    competing: Sequence[Candidate] = (),
) -> Verdict:
    """The fatigue guard's verdict (nudge.domain.fatigue) for the action on `channel`."""
    return decide(
        candidate_of(action, channel),
        history=history_of(entries, action.action_id),
        prefs=prefs_of(profile, suppressed_channels(channel, to, ports.suppressions)),
        now=now,
        config=ports.fatigue,
        competing=competing,
    )


def defer(
    action: ActionMessage,
    draft: DeliveryEntry,
    until: datetime,
    reason: str,
    *,
    log: DeliveryLog,
    deferrer: Deferrer,
) -> DeliveryEntry:
    """Puts the action back on its queue for `until` and logs it `deferred`."""
    deferrer.defer(action.deferred(until), until)
    return settle(log, draft, "deferred", reason, defer_until=until)


def email_headers(unsubscribe: str) -> dict[str, str]:
    """One-click unsubscribe (RFC 8058), which Gmail and Yahoo require of bulk senders."""
    return {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def compose(
    action: ActionMessage,
    profile: Profile,
    channel: str,
    to: str,
    *,
    draft: DeliveryEntry,
    now: datetime,
    ports: DeliveryPorts,
) -> Outbound:
    """Renders the action's template for the channel into the message to send. A template
    error is logged `failed` and raised (nothing broken is sent)."""
    unsubscribe = ports.unsubscribe_url(profile.user_id, channel)
    template = action.action.template or draft.trigger_id
    try:
        rendered = ports.renderer.render(
            template,
            channel,
            variables(
                profile,
                action,
                channel,
                unsubscribe_url=unsubscribe,
                app_url=ports.app_url,
                model=ports.load_items(),
                catalog=ports.load_catalog(),
            ),
        )
    except NudgeError as err:
        settle(ports.log, draft, "failed", f"template: {err.message}")
        raise
    email = channel == "email"
    return Outbound(
        user_id=profile.user_id,
        action_id=draft.action_id,
        trigger_id=draft.trigger_id,
        channel=channel,
        to=to,
        at=now,
        content=rendered,
        unsubscribe_url=unsubscribe if email else None,
        variant=action.variant,
        headers=email_headers(unsubscribe) if email else {},
        experiment_id=action.experiment_id,
        fired_at=draft.fired_at,
    )


def claim(draft: DeliveryEntry, to: str, log: DeliveryLog) -> tuple[bool, DeliveryEntry]:
    """Claims the entry (`sending`, a conditional write) so that no other delivery sends
    the action: (True, the claim), or (False, the entry of the delivery that holds it)."""
    claimed = replace(draft, status="sending", reason="claimed", to=to)
    if log.record(claimed, expect=OPEN):
        return True, claimed
    return False, entry_of(log.entries(draft.user_id), draft.action_id) or claimed


def send(
    message: Outbound, claimed: DeliveryEntry, *, log: DeliveryLog, senders: Mapping[str, Sender]
) -> DeliveryEntry:
    """Sends the claimed message and logs what the provider answered: `sent`, or
    `unconfirmed` when the answer was ambiguous (AmbiguousSendError: it may have gone
    out). A send that certainly did not happen releases the claim and raises
    (TransientSendError: the queue retries; EndpointDisabledError: the caller forgets
    the device and falls back); a permanent refusal is logged `failed` and raised. The
    writes after the provider's answer are insisted on (`insist`)."""
    try:
        provider_id = senders[message.channel].send(message)
    except (TransientSendError, EndpointDisabledError):
        insist(lambda: log.release(claimed.user_id, claimed.action_id))
        raise
    except AmbiguousSendError as err:
        return conclude(
            log, claimed, "unconfirmed", f"ambiguous: {err.message}; it may have been sent"
        )
    except PermanentSendError as err:
        conclude(log, claimed, "failed", f"send: {err.message}")
        raise
    content = message.content
    sent = replace(
        claimed,
        status="sent",
        reason="ok",
        provider_id=provider_id,
        subject=content.subject or content.title,
        body=(content.text or content.body or "")[:500],
    )
    # `unconfirmed` or `failed` too: a delivery that found our claim stale reconciled it;
    # the message did go out, and this attempt is the one that knows it
    insist(lambda: log.record(sent, expect=frozenset({"sending", "unconfirmed", "failed"})))
    return sent


def confirm_sent(
    log: DeliveryLog, user_id: str, action_id: str, *, provider_id: str
) -> DeliveryEntry | None:
    """The provider's word that the action's message went out (for email, any event SES
    publishes about it): an `unconfirmed` entry, or a claim whose attempt has not
    recorded its send yet, becomes `sent`. The entry so recorded, or None when there was
    nothing to confirm (already `sent`, another outcome, or no entry)."""
    found = entry_of(log.entries(user_id), action_id)
    if found is None or found.status not in ("unconfirmed", "sending"):
        return None
    sent = replace(
        found,
        status="sent",
        reason="ok: confirmed by the provider's event",
        provider_id=found.provider_id or provider_id,
    )
    return sent if log.record(sent, expect=frozenset({found.status})) else None


def deliver_action(
    action: ActionMessage,
    *,
    now: datetime,
    ports: DeliveryPorts,
    competing: Sequence[Candidate] = (),
) -> DeliveryEntry | None:
    """Takes one action to its final (or deferred) status, step by step (the functions
    above); None for an action whose user was erased since it fired (dropped: no entry,
    no outcome, docs/erase.md). Raises TemplateRenderError and PermanentSendError after logging them (the
    handler dead-letters the action), TransientSendError after releasing the claim and
    ProfileNotReadyError and ClaimHeldError (the queue retries)."""
    action_id = action.action_id
    entries = reconcile_others(
        ports.log.entries(action.user_id),
        action_id,
        now=now,
        log=ports.log,
        senders=ports.senders,
    )
    existing = entry_of(entries, action_id)
    if existing is not None:
        earlier = recover(existing, now=now, log=ports.log, senders=ports.senders)
        if earlier is not None:
            return earlier
    draft = draft_entry(action, now=now, existing=existing)

    profile = find_profile(action, now=now, profiles=ports.profiles)
    if profile is not None and profile.erased:
        return None  # erased since it fired: nothing of theirs is written again
    if profile is None:
        return settle(ports.log, draft, "failed", "unknown_user")
    if reason := staleness(action, profile):
        return settle(ports.log, draft, "suppressed", reason)
    resolved = resolve_channel(profile, action)
    if resolved is None:
        return settle(ports.log, draft, "failed", f"no_contact:{action.action.channel}")
    channel, to = resolved
    draft = replace(draft, channel=channel)

    verdict = judge(
        action, profile, channel, to, entries=entries, now=now, ports=ports, competing=competing
    )
    if verdict.status == "deferred":
        assert verdict.defer_until is not None
        return defer(
            action,
            draft,
            verdict.defer_until,
            verdict.reason,
            log=ports.log,
            deferrer=ports.deferrer,
        )
    if not verdict.sends:
        return settle(ports.log, draft, verdict.status, verdict.reason)

    message = compose(action, profile, channel, to, draft=draft, now=now, ports=ports)
    won, claimed = claim(draft, to, ports.log)
    if not won:
        if claimed.status == "sending":  # a concurrent delivery holds it
            raise ClaimHeldError(f"{action_id} was claimed by a concurrent delivery")
        return claimed  # a concurrent delivery decided it
    try:
        return send(message, claimed, log=ports.log, senders=ports.senders)
    except EndpointDisabledError as err:
        # the device is gone: forget it and deliver on the fallback channel instead
        ports.forget_device(profile.user_id, err.endpoint)
        return deliver_action(action, now=now, ports=ports, competing=competing)


def deliveries_view(entries: Sequence[DeliveryEntry]) -> dict[str, Any]:
    ordered = sorted(entries, key=lambda e: (to_ms(e.at), e.action_id), reverse=True)
    return {"deliveries": [e.view() for e in ordered]}


@dataclass(frozen=True)
class Pending:
    """An action waiting in a batch, ranked as the fatigue guard ranks competitors
    (nudge.domain.fatigue.order_by_priority)."""

    action: ActionMessage
    priority: int
    fired_at: datetime
    action_id: str

    @classmethod
    def of(cls, action: ActionMessage) -> Pending:
        return cls(
            action=action,
            priority=action.priority,
            fired_at=action.at or from_ms(0),
            action_id=action.action_id,
        )


@dataclass
class BatchResult:
    entries: list[DeliveryEntry] = field(default_factory=list)
    dropped: list[ActionMessage] = field(default_factory=list)  # their user was erased
    dead_lettered: list[tuple[ActionMessage, str]] = field(default_factory=list)
    failed_users: dict[str, Exception] = field(default_factory=dict)


def deliver_batch(
    actions_by_user: Mapping[str, Sequence[ActionMessage]], *, now: datetime, ports: DeliveryPorts
) -> BatchResult:
    """Each user's actions in priority order, the not-yet-delivered ones competing for the
    last slot of a cap. A template error or a permanent send failure dead-letters that
    action (with its reason) and the others go on; a transient failure stops the user's
    remaining actions so the queue redelivers them in order."""
    result = BatchResult()
    for user_id, actions in actions_by_user.items():
        ordered = [p.action for p in order_by_priority(Pending.of(a) for a in actions)]
        for i, action in enumerate(ordered):
            rest = [candidate_of(a) for a in ordered[i + 1 :]]
            try:
                entry = deliver_action(action, now=now, ports=ports, competing=rest)
                if entry is None:
                    result.dropped.append(action)
                else:
                    result.entries.append(entry)
            except (TransientSendError, ProfileNotReadyError, ClaimHeldError) as err:
                result.failed_users[user_id] = err
                break
            except NudgeError as err:  # template error, permanent send failure
                result.dead_lettered.append((action, f"{err.code}: {err.message}"))
            except Exception as err:
                result.failed_users[user_id] = err
                break
    return result
