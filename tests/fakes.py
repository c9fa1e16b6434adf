"""In-memory implementations of the domain's ports, for every test tier: a unit test
builds the core (or a handler, through its `deps` argument) on these instead of moto.

Each fake keeps the semantics of its adapter that the core relies on: profiles are
stored as documents (a caller's changes count once saved) and every save is
conditional on the version read; a delivery-log write is conditional on the stored
status; the inbox answers newest first. What they record (`sent`, `deferred`,
`dead_lettered`, ...) is there for assertions."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from nudge.domain import users
from nudge.domain.clock import SettableClock, iso, to_ms
from nudge.domain.delivery import (
    DeliveryEntry,
    DeliveryPorts,
    Outbound,
    PermanentSendError,
)
from nudge.domain.errors import ConcurrentUpdateError
from nudge.domain.fatigue import FatigueConfig
from nudge.domain.inbox import InboxMessage
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile
from nudge.domain.templates import Rendered, TemplateRenderError
from nudge.domain.triggers.contract import action_id

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC: outside quiet hours


def frozen_clock(at: datetime = NOW) -> SettableClock:
    return SettableClock(at, frozen=True)


# ---- profiles -----------------------------------------------------------------------------------
class MemoryProfileStore:
    """The ProfileStore port: documents keyed by user id, each save conditional on the
    version read (None: must not exist yet), save_all all-or-nothing."""

    def __init__(self, profiles: Iterable[Profile] = ()) -> None:
        self.rows: dict[str, tuple[dict[str, Any], int]] = {}
        for p in profiles:
            self.save(StoredProfile(p, None))

    def get(self, user_id: str) -> StoredProfile | None:
        row = self.rows.get(user_id)
        if row is None:
            return None
        return StoredProfile(Profile.from_dict(copy.deepcopy(row[0])), row[1])

    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]:
        return {u: s for u in user_ids if (s := self.get(u)) is not None}

    def _check(self, stored: StoredProfile) -> None:
        row = self.rows.get(stored.profile.user_id)
        if stored.version != (row[1] if row else None):
            raise ConcurrentUpdateError(f"{stored.profile.user_id} changed concurrently")

    def _write(self, stored: StoredProfile) -> None:
        version = (stored.version or 0) + 1
        self.rows[stored.profile.user_id] = (copy.deepcopy(stored.profile.to_dict()), version)
        stored.version = version

    def save(self, stored: StoredProfile) -> None:
        self._check(stored)
        self._write(stored)

    def save_all(self, stored: Sequence[StoredProfile]) -> None:
        for s in stored:
            self._check(s)
        for s in stored:
            self._write(s)

    def delete(self, user_id: str) -> None:
        self.rows.pop(user_id, None)

    def profile(self, user_id: str) -> Profile:
        stored = self.get(user_id)
        assert stored is not None, f"no profile {user_id!r}"
        return stored.profile


# ---- delivery -----------------------------------------------------------------------------------
class MemoryDeliveryLog:
    """The DeliveryLog port: one entry per (user, action); `record` writes only when the
    stored status is one of `expect` (None: no entry yet), as the conditional put does."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], DeliveryEntry] = {}
        self.writes: list[DeliveryEntry] = []  # every accepted write, in order

    def entries(self, user_id: str) -> list[DeliveryEntry]:
        return [replace(e) for (u, _), e in sorted(self.rows.items()) if u == user_id]

    def record(self, entry: DeliveryEntry, *, expect: frozenset[str | None]) -> bool:
        current = self.rows.get((entry.user_id, entry.action_id))
        if (None if current is None else current.status) not in expect:
            return False
        self.rows[(entry.user_id, entry.action_id)] = replace(entry)
        self.writes.append(replace(entry))
        return True

    def release(self, user_id: str, action_id: str) -> None:
        current = self.rows.get((user_id, action_id))
        if current is not None and current.status == "sending":
            del self.rows[(user_id, action_id)]

    def entry(self, user_id: str, action_id: str) -> DeliveryEntry:
        return self.rows[(user_id, action_id)]


class MemoryInbox:
    """The in-app channel (a Sender) and the inbox the API reads."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, InboxMessage]] = {}

    def send(self, message: Outbound) -> str:
        message_id = f"{to_ms(message.at):013d}-{message.action_id[:12]}"
        c = message.content
        self.rows.setdefault(message.user_id, {})[message_id] = InboxMessage(
            id=message_id,
            trigger=message.trigger_id,
            title=c.title or c.subject or "",
            body=c.body or c.text or "",
            cta=c.cta,
            cta_url=c.cta_url,
            created_at=message.at,
            read=False,
        )
        return message_id

    def messages(self, user_id: str, limit: int = 100) -> list[InboxMessage]:
        rows = self.rows.get(user_id, {})
        return [rows[k] for k in sorted(rows, reverse=True)][:limit]

    def mark_read(self, user_id: str, message_id: str) -> bool:
        rows = self.rows.get(user_id, {})
        if message_id not in rows:
            return False
        rows[message_id] = replace(rows[message_id], read=True)
        return True


class MemorySuppressions:
    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self.rows: dict[str, tuple[str, datetime | None]] = {
            a.strip().lower(): ("test", None) for a in addresses
        }

    def is_suppressed(self, address: str) -> bool:
        return address.strip().lower() in self.rows

    def suppress(self, address: str, reason: str, *, at: datetime) -> None:
        self.rows[address.strip().lower()] = (reason, at)


class RecordingSender:
    """A channel's provider: records each message and answers a message id; the errors
    in `fail_with` are raised by the next sends, one each (nothing is recorded then)."""

    def __init__(self, channel: str, *, fail_with: Iterable[Exception] = ()) -> None:
        self.channel = channel
        self.sent: list[Outbound] = []
        self.fail_with = list(fail_with)
        self.on_send: list[Callable[[Outbound], None]] = []  # run before each send

    def send(self, message: Outbound) -> str:
        for hook in self.on_send:
            hook(message)
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append(message)
        return f"{self.channel}-{len(self.sent)}"


class MemoryDeferrer:
    def __init__(self) -> None:
        self.deferred: list[tuple[dict[str, Any], datetime]] = []

    def defer(self, action: dict[str, Any], until: datetime) -> None:
        self.deferred.append((copy.deepcopy(action), until))


class StaticRenderer:
    """Renders every template into the parts its channel has, naming the template, the
    user's first name and the product; a template in `broken` raises as a template with
    a missing variable does."""

    def __init__(self, broken: Iterable[str] = ()) -> None:
        self.broken = set(broken)
        self.calls: list[tuple[str, str, Mapping[str, Any]]] = []

    def render(self, name: str, channel: str, variables: Mapping[str, Any]) -> Rendered:
        self.calls.append((name, channel, variables))
        if name in self.broken:
            raise TemplateRenderError(name, channel, "'nope' is undefined", "body")
        product = (variables.get("product") or {}).get("name") or ""
        line = f"{name}: {(variables.get('traits') or {}).get('first_name', '')} {product}"
        unsubscribe = variables.get("unsubscribe_url") or ""
        if channel == "email":
            return Rendered(subject=line, html=f"<p>{line}</p>", text=f"{line}\n{unsubscribe}")
        if channel == "sms":
            return Rendered(text=line)
        return Rendered(title=name, body=line, cta="Open" if channel == "inapp" else None)


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.dead_lettered: list[tuple[str, str, str]] = []  # (body, group id, reason)

    def send(self, body: str, *, group_id: str, reason: str) -> None:
        self.dead_lettered.append((body, group_id, reason))


@dataclass
class FakeDelivery:
    """Every port of the deliver use case in memory, and `ports` wired from them. A
    disabled push endpoint is forgotten from the profile, as the deliver function does."""

    profiles: MemoryProfileStore = field(default_factory=MemoryProfileStore)
    log: MemoryDeliveryLog = field(default_factory=MemoryDeliveryLog)
    inbox: MemoryInbox = field(default_factory=MemoryInbox)
    suppressions: MemorySuppressions = field(default_factory=MemorySuppressions)
    deferrer: MemoryDeferrer = field(default_factory=MemoryDeferrer)
    renderer: StaticRenderer = field(default_factory=StaticRenderer)
    email: RecordingSender = field(default_factory=lambda: RecordingSender("email"))
    sms: RecordingSender = field(default_factory=lambda: RecordingSender("sms"))
    push: RecordingSender = field(default_factory=lambda: RecordingSender("push"))
    fatigue: FatigueConfig = field(default_factory=FatigueConfig.default)
    public_url: str = "https://nudge.example.test"
    forgotten: list[tuple[str, str]] = field(default_factory=list)  # (user, endpoint)

    @property
    def ports(self) -> DeliveryPorts:
        return DeliveryPorts(
            profiles=self.profiles,
            log=self.log,
            senders={"email": self.email, "sms": self.sms, "push": self.push, "inapp": self.inbox},
            renderer=self.renderer,
            deferrer=self.deferrer,
            suppressions=self.suppressions,
            unsubscribe_url=lambda user, channel: (
                f"{self.public_url}/v1/unsubscribe?token={user}.{channel}"
            ),
            fatigue=self.fatigue,
            app_url="https://shop.example",
            forget_device=self.forget_device,
        )

    def forget_device(self, user_id: str, endpoint_arn: str) -> None:
        self.forgotten.append((user_id, endpoint_arn))
        users.remove_device(self.profiles, user_id, endpoint_arn)


def bounced(address: str) -> PermanentSendError:
    return PermanentSendError(f"MessageRejected: {address} bounced")


# ---- what the core is fed -------------------------------------------------------------------------
SHOE = {"product_id": "p-trail", "name": "Trail Runner 2", "price": 89.0}


def a_profile(
    user_id: str = "u1",
    *,
    email: str | None = "ana@example.com",
    phone: str | None = None,
    cart: Sequence[Mapping[str, Any]] = (SHOE,),
    devices: Sequence[str] = (),
    at: datetime = NOW,
    **traits: Any,
) -> Profile:
    """A profile as the process function stores it: traits, a cart, push devices (by
    endpoint ARN)."""
    all_traits: dict[str, Any] = {"first_name": "Ana", **traits}
    if email is not None:
        all_traits["email"] = email
    if phone is not None:
        all_traits["phone"] = phone
    t = to_ms(at) - 20 * 60_000
    profile = Profile(user_id, traits=all_traits, first_seen=t, last_seen=t)
    for item in cart:
        rest = {k: v for k, v in item.items() if k != "product_id"}
        profile.cart[str(item["product_id"])] = {"add": t, "rm": 0, "qty": 1, **rest}
    if devices:
        profile.extra["devices"] = [
            {"platform": "fcm", "token": f"tok-{i}", "endpoint_arn": arn}
            for i, arn in enumerate(devices)
        ]
    return profile


def an_action(
    user_id: str = "u1",
    trigger_id: str = "cart_abandonment",
    *,
    channel: str | None = "email",
    fallback: str | None = None,
    template: str | None = None,
    priority: int = 100,
    cooldown_seconds: int | None = 86_400,
    at: datetime = NOW,
    episode: int = 1,
    cart: bool = False,
    product: Mapping[str, Any] | None = SHOE,
    **extra: Any,
) -> dict[str, Any]:
    """An action message as the process function enqueues it (nudge.adapters.effects)."""
    spec: dict[str, Any] = {"template": template or trigger_id}
    if channel is not None:
        spec["channel"] = channel
    if fallback is not None:
        spec["fallback"] = fallback
    key = str(product["product_id"]) if product else None
    context: dict[str, Any] = {"event": "Product Added", "properties": dict(product or {})}
    if product:
        context["product"] = dict(product)
    if cart:
        context["cart"] = [dict(product or {})]
    return {
        "user_id": user_id,
        "trigger_id": trigger_id,
        "key": key,
        "at": iso(at),
        "episode": episode,
        "action_id": action_id(user_id, trigger_id, key, episode),
        "action": spec,
        "priority": priority,
        "cooldown_seconds": cooldown_seconds,
        "context": context,
        "enqueued_at": iso(at),
        **extra,
    }
