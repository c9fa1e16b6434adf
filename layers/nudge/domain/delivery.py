"""The deliver use case: one fired episode (an action) becomes at most one message.

resolve the channel → fatigue guard → render → claim → send → log. Every action leaves
exactly one entry in the user's delivery log, keyed by its action id, whose status
moves `deferred → sent` (or capped, opted_out, suppressed, holdout, failed).

At most once: before sending, the entry is claimed with a conditional write
(`sending`); a redelivery or a concurrent delivery finds the claim and does not send
again. A crash between the claim and the `sent` record leaves `sending`: the next
delivery marks it failed ("interrupted") rather than risk a second message. A send
that the provider rejected without sending (throttling after retries) releases the
claim so the queue can retry it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from nudge.domain.clock import from_ms, iso, to_ms
from nudge.domain.errors import NudgeError
from nudge.domain.fatigue import Candidate, FatigueConfig, SendWindow, Sent, UserPrefs, decide
from nudge.domain.ports import ProfileStore
from nudge.domain.profile import ITEM_CODES, Profile
from nudge.domain.templates import Rendered, build_variables

FINAL = frozenset({"sent", "capped", "opted_out", "suppressed", "holdout", "failed"})
CHANNELS = ("email", "sms", "push", "inapp")
DEFER_TOLERANCE = timedelta(seconds=90)
# A claim older than this belongs to an attempt that died (the deliver function times out
# after 30 s; SQS redelivers after the 180 s visibility timeout).
CLAIM_TIMEOUT = timedelta(seconds=120)
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
    """The provider did not take the message (throttled, unavailable): nothing was sent."""

    code = "send_unavailable"


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
    content: Rendered = field(default_factory=Rendered)  # the channel's rendered parts
    unsubscribe_url: str | None = None
    variant: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    at: datetime | None = None  # when it is sent (the clock port's now)


class DeliveryLog(Protocol):
    def entries(self, user_id: str) -> list[DeliveryEntry]: ...

    def record(self, entry: DeliveryEntry, *, expect: frozenset[str | None]) -> bool:
        """Writes the entry if the stored status is one of `expect` (None: absent)."""

    def release(self, user_id: str, action_id: str) -> None:
        """Drops a `sending` claim after a send that certainly did not happen."""


class Sender(Protocol):
    def send(self, message: Outbound) -> str:
        """Sends and returns the provider's message id."""


class Renderer(Protocol):
    def render(self, name: str, channel: str, variables: Mapping[str, Any]) -> Rendered: ...


class Deferrer(Protocol):
    def defer(self, action: dict[str, Any], until: datetime) -> None: ...


class Suppressions(Protocol):
    def is_suppressed(self, address: str) -> bool: ...


@dataclass
class DeliveryPorts:
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


def candidate_of(action: Mapping[str, Any], channel: str | None = None) -> Candidate:
    return Candidate(
        action_id=str(action["action_id"]),
        user_id=str(action["user_id"]),
        trigger_id=str(action["trigger_id"]),
        # arg-type: a str from JSON; the trigger loader accepted only a Channel there
        channel=channel or str(action["action"]["channel"]),  # type: ignore[arg-type]
        priority=int(action.get("priority") or 0),
        cooldown_seconds=action.get("cooldown_seconds"),
        fired_at=_parse(action.get("at")) or from_ms(0),
        window=SendWindow.from_action(action["action"].get("send_window")),
    )


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


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


def resolve_channel(profile: Profile, action: Mapping[str, Any]) -> tuple[str, str] | None:
    """The action's channel when the user can be reached there, else its fallback."""
    spec = action.get("action") or {}
    for channel in (spec.get("channel"), spec.get("fallback")):
        if channel in CHANNELS:
            to = contact(profile, channel)
            if to:
                return channel, to
    return None


def recommendations(
    profile: Profile, limit: int = 4, exclude: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Items the user looked at and has neither in the cart nor bought, most recent first."""
    in_cart = {i["product_id"] for i in profile.cart_items()} | exclude
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
    profile: Profile, action: Mapping[str, Any], channel: str, *, unsubscribe_url: str, app_url: str
) -> dict[str, Any]:
    """The template variables (nudge.domain.templates' contract) for one action."""
    ctx = action.get("context") or {}
    return build_variables(
        user_id=profile.user_id,
        traits=profile.traits,
        segment=profile.segment,
        trigger=str(action.get("trigger_id")),
        event={"name": ctx.get("event") or "", "properties": ctx.get("properties") or {}},
        cart=profile.cart_items(),
        product=ctx.get("product"),
        recommendations=recommendations(
            profile,
            exclude=frozenset({str((ctx.get("product") or {}).get("product_id"))}) - {"None"},
        ),
        unsubscribe_url=unsubscribe_url if channel == "email" else "",
        variant=action.get("variant"),
        app_url=app_url,
    )


def deliver_action(
    action: dict[str, Any],
    *,
    now: datetime,
    ports: DeliveryPorts,
    competing: Sequence[Candidate] = (),
) -> DeliveryEntry:
    """Takes one action to its final (or deferred) status. Raises TemplateRenderError and
    PermanentSendError after logging them (the handler dead-letters the action), and
    TransientSendError after releasing the claim (the queue retries)."""
    user_id = str(action["user_id"])
    action_id = str(action["action_id"])
    trigger_id = str(action["trigger_id"])
    fired_at = _parse(action.get("at"))
    entries = ports.log.entries(user_id)
    existing = next((e for e in entries if e.action_id == action_id), None)
    base = DeliveryEntry(
        user_id=user_id,
        action_id=action_id,
        trigger_id=trigger_id,
        channel=str((action.get("action") or {}).get("channel") or "inapp"),
        status="",
        reason="",
        at=now,
        fired_at=fired_at,
        priority=int(action.get("priority") or 0),
        variant=action.get("variant"),
    )
    if existing is not None:
        if existing.status in FINAL:
            return existing  # a redelivery: already decided
        if existing.status == "sending":
            if now - existing.at < CLAIM_TIMEOUT:
                return existing  # another delivery holds the claim right now
            failed = replace(
                existing,
                status="failed",
                at=now,
                reason="interrupted: an earlier attempt may have sent it; not sent again",
            )
            ports.log.record(failed, expect=frozenset({"sending"}))
            return failed
        if (
            existing.status == "deferred"
            and existing.defer_until
            and now + DEFER_TOLERANCE < existing.defer_until
        ):
            return existing  # an early duplicate of a deferred action
        base = replace(base, channel=existing.channel)
    open_states: frozenset[str | None] = frozenset({None, "deferred"})

    def final(status: str, reason: str, **kw: Any) -> DeliveryEntry:
        entry = replace(base, status=status, reason=reason, at=now, **kw)
        ports.log.record(entry, expect=open_states)
        return entry

    stored = ports.profiles.get(user_id)
    hops = 0
    while stored is not None and stored.profile.merged_into and hops < 3:
        stored = ports.profiles.get(stored.profile.merged_into)
        hops += 1
    if stored is None:
        enqueued = _parse(action.get("enqueued_at")) or fired_at
        if enqueued is not None and now - enqueued < PROFILE_WAIT:
            raise ProfileNotReadyError(f"no profile for {user_id!r} yet")
        return final("failed", "unknown_user")
    profile = stored.profile
    if "cart" in (action.get("context") or {}) and not profile.cart_items():
        # a cart trigger whose cart was emptied (ordered, removed) before it could go out
        return final("suppressed", "stale: the cart is empty now")
    resolved = resolve_channel(profile, action)
    if resolved is None:
        wanted = (action.get("action") or {}).get("channel")
        return final("failed", f"no_contact:{wanted}")
    channel, to = resolved
    base = replace(base, channel=channel)

    history = [
        Sent(at=e.at, channel=e.channel, trigger_id=e.trigger_id, priority=e.priority)
        for e in entries
        if e.status == "sent" and e.action_id != action_id
    ]
    suppressed = (
        frozenset({"email"})
        if channel == "email" and ports.suppressions.is_suppressed(to)
        else frozenset()
    )
    if channel == "sms" and ports.suppressions.is_suppressed(to):
        suppressed = frozenset({"sms"})
    prefs = UserPrefs(
        timezone=profile.traits.get("timezone")
        if isinstance(profile.traits.get("timezone"), str)
        else None,
        opted_out=opted_out(profile),
        suppressed_channels=suppressed,
    )
    verdict = decide(
        candidate_of(action, channel),
        history=history,
        prefs=prefs,
        now=now,
        config=ports.fatigue,
        competing=competing,
    )
    if verdict.status == "deferred":
        assert verdict.defer_until is not None
        ports.deferrer.defer(
            {**action, "deferred_until": iso(verdict.defer_until)}, verdict.defer_until
        )
        return final("deferred", verdict.reason, defer_until=verdict.defer_until)
    if verdict.status != "send":
        return final(verdict.status, verdict.reason)

    unsubscribe = ports.unsubscribe_url(profile.user_id, channel)
    template = str((action.get("action") or {}).get("template") or trigger_id)
    try:
        rendered = ports.renderer.render(
            template,
            channel,
            variables(profile, action, channel, unsubscribe_url=unsubscribe, app_url=ports.app_url),
        )
    except NudgeError as err:
        final("failed", f"template: {err.message}")
        raise
    message = Outbound(
        user_id=profile.user_id,
        action_id=action_id,
        trigger_id=trigger_id,
        channel=channel,
        to=to,
        content=rendered,
        unsubscribe_url=unsubscribe if channel == "email" else None,
        variant=action.get("variant"),
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        if channel == "email"
        else {},
        at=now,
    )
    claim = replace(base, status="sending", reason="claimed", at=now, to=to)
    if not ports.log.record(claim, expect=open_states):
        current = next((e for e in ports.log.entries(user_id) if e.action_id == action_id), claim)
        return current  # a concurrent delivery holds it
    try:
        provider_id = ports.senders[channel].send(message)
    except TransientSendError:
        ports.log.release(user_id, action_id)
        raise
    except EndpointDisabledError as err:
        # the device is gone: forget it and deliver on the fallback channel instead
        ports.log.release(user_id, action_id)
        ports.forget_device(profile.user_id, err.endpoint)
        return deliver_action(action, now=now, ports=ports, competing=competing)
    except PermanentSendError as err:
        failed = replace(claim, status="failed", reason=f"send: {err.message}", at=now)
        ports.log.record(failed, expect=frozenset({"sending"}))
        raise
    sent = replace(
        claim,
        status="sent",
        reason="ok",
        at=now,
        provider_id=provider_id,
        subject=rendered.subject or rendered.title,
        body=(rendered.text or rendered.body or "")[:500],
    )
    # `failed` too: a delivery that found our claim mid-send marked it "interrupted";
    # the message did go out, and this attempt is the one that knows it
    ports.log.record(sent, expect=frozenset({"sending", "failed"}))
    return sent


def order_actions(actions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user's actions of one batch, highest priority first (then fired first)."""
    return sorted(
        actions,
        key=lambda a: (-int(a.get("priority") or 0), str(a.get("at") or ""), str(a["action_id"])),
    )


def deliveries_view(entries: Sequence[DeliveryEntry]) -> dict[str, Any]:
    ordered = sorted(entries, key=lambda e: (to_ms(e.at), e.action_id), reverse=True)
    return {"deliveries": [e.view() for e in ordered]}


@dataclass
class BatchResult:
    entries: list[DeliveryEntry] = field(default_factory=list)
    dead_lettered: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    failed_users: dict[str, Exception] = field(default_factory=dict)


def deliver_batch(
    actions_by_user: Mapping[str, Sequence[dict[str, Any]]], *, now: datetime, ports: DeliveryPorts
) -> BatchResult:
    """Each user's actions in priority order, the not-yet-delivered ones competing for the
    last slot of a cap. A template error or a permanent send failure dead-letters that
    action (with its reason) and the others go on; a transient failure stops the user's
    remaining actions so the queue redelivers them in order."""
    result = BatchResult()
    for user_id, actions in actions_by_user.items():
        ordered = order_actions(actions)
        for i, action in enumerate(ordered):
            rest = [candidate_of(a) for a in ordered[i + 1 :]]
            try:
                result.entries.append(deliver_action(action, now=now, ports=ports, competing=rest))
            except (TransientSendError, ProfileNotReadyError) as err:
                result.failed_users[user_id] = err
                break
            except NudgeError as err:  # template error, permanent send failure
                result.dead_lettered.append((action, f"{err.code}: {err.message}"))
            except Exception as err:
                result.failed_users[user_id] = err
                break
    return result
