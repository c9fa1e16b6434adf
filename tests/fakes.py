"""In-memory implementations of the domain's ports, for every test tier: a unit test
builds the core (or a handler, through its `deps` argument) on these instead of moto.
Every function's handler has its fakes here: deliver (FakeDelivery), ingest (keys,
events queue), process (profiles, events and actions queues, wake-ups, archive, dead
letters and their entries), check (wake-ups, events queue), api (keys, profiles, inbox,
delivery log, devices, signing key, dead-letter entries and queue sizes), feedback
(suppressions).

Each fake keeps the semantics of its adapter that the core relies on: profiles are
stored as documents (a caller's changes count once saved) and every save is
conditional on the version read; a delivery-log write is conditional on the stored
status; the inbox answers newest first. What they record (`sent`, `deferred`,
`dead_lettered`, ...) is there for assertions."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from nudge.adapters.queues import message_group_id
from nudge.domain import users
from nudge.domain.archive import ARCHIVE_COLUMNS, EVENTS_VIEW_SQL
from nudge.domain.clock import Clock, SettableClock, to_ms
from nudge.domain.dead_letters import DeadLetter
from nudge.domain.delivery import (
    DeliveryEntry,
    DeliveryPorts,
    Outbound,
    PermanentSendError,
)
from nudge.domain.errors import ConcurrentUpdateError
from nudge.domain.events import Event
from nudge.domain.fatigue import FatigueConfig
from nudge.domain.inbox import InboxMessage, inbox_message_id
from nudge.domain.ingest import KeyKind, hash_key
from nudge.domain.messages import (
    ActionMessage,
    ActionSpec,
    Parsed,
    TimerItem,
    TimersMessage,
    pack_events,
    parse_action,
    parse_message,
)
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile
from nudge.domain.query import QueryResult, parse_json_value
from nudge.domain.templates import Rendered, TemplateRenderError
from nudge.domain.triggers.contract import Timer, action_id
from nudge.domain.wakeups import BUCKET_FORMAT, Filing, file_timers

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC: outside quiet hours


def frozen_clock(at: datetime = NOW) -> SettableClock:
    return SettableClock(at, frozen=True)


# ---- profiles -----------------------------------------------------------------------------------
class MemoryProfileStore:
    """The ProfileStore port: documents keyed by user id, each save conditional on the
    version read (None: must not exist yet), save_all all-or-nothing."""

    def __init__(self, profiles: Iterable[Profile] = ()) -> None:
        self.rows: dict[str, tuple[dict[str, Any], int]] = {}
        self.fail_saves: dict[str, Exception] = {}  # user id → what saving it raises
        # the dedup store: (user id, fingerprint) → received minute, written before the
        # profile whose fold moved them out (so they stay when that write fails)
        self.dedup: dict[tuple[str, str], int] = {}
        self.dedup_reads = 0  # lookups (each a strongly consistent BatchGetItem)
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
        failure = self.fail_saves.get(stored.profile.user_id)
        if failure is not None:
            raise failure
        row = self.rows.get(stored.profile.user_id)
        if stored.version != (row[1] if row else None):
            raise ConcurrentUpdateError(f"{stored.profile.user_id} changed concurrently")

    def _write(self, stored: StoredProfile) -> None:
        version = (stored.version or 0) + 1
        self.rows[stored.profile.user_id] = (copy.deepcopy(stored.profile.to_dict()), version)
        stored.version = version

    def _spill(self, stored: StoredProfile) -> None:
        for fp, minute in stored.profile.evicted.items():
            self.dedup[(stored.profile.user_id, fp)] = minute
        stored.profile.evicted.clear()

    def save(self, stored: StoredProfile) -> None:
        self._spill(stored)
        self._check(stored)
        self._write(stored)

    def save_all(self, stored: Sequence[StoredProfile]) -> None:
        for s in stored:
            self._spill(s)
        for s in stored:
            self._check(s)
        for s in stored:
            self._write(s)

    def spilled(self, user_ids: Sequence[str], fingerprints: Collection[str]) -> dict[str, int]:
        self.dedup_reads += 1
        return {
            fp: self.dedup[(uid, fp)]
            for uid in user_ids
            for fp in fingerprints
            if (uid, fp) in self.dedup
        }

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

    def erase_user(self, user_id: str) -> int:
        keys = [k for k in self.rows if k[0] == user_id]
        for k in keys:
            del self.rows[k]
        return len(keys)


class MemoryInbox:
    """The in-app channel (a Sender that can confirm, as DynamoInbox) and the inbox the
    API reads: one message per action (its id is the action's), written once."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, InboxMessage]] = {}

    def send(self, message: Outbound) -> str:
        message_id = inbox_message_id(message.fired_at or message.at, message.action_id)
        if message_id in self.rows.get(message.user_id, {}):
            return message_id
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
            action_id=message.action_id,
        )
        return message_id

    def confirm(self, claim: DeliveryEntry) -> str | None:
        message_id = inbox_message_id(claim.fired_at or claim.at, claim.action_id)
        return message_id if message_id in self.rows.get(claim.user_id, {}) else None

    def messages(self, user_id: str, limit: int = 100) -> list[InboxMessage]:
        rows = self.rows.get(user_id, {})
        return [rows[k] for k in sorted(rows, reverse=True)][:limit]

    def mark_read(self, user_id: str, message_id: str) -> InboxMessage | None:
        rows = self.rows.get(user_id, {})
        if message_id not in rows:
            return None
        rows[message_id] = replace(rows[message_id], read=True)
        return rows[message_id]

    def erase_user(self, user_id: str) -> int:
        return len(self.rows.pop(user_id, {}))


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
    """The Deferrer port: each action put back, read from the body Scheduler would send."""

    def __init__(self) -> None:
        self.deferred: list[tuple[ActionMessage, datetime]] = []

    def defer(self, action: ActionMessage, until: datetime) -> None:
        self.deferred.append((parse_action(action.to_json()), until))


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


class MemoryDeadLetterLog:
    """The DeadLetterLog port: entries per queue, `recent` newest first as the Query reads
    them backwards (by time, then message id); the errors in `fail_with` are raised by
    the next writes."""

    def __init__(self) -> None:
        self.entries: list[DeadLetter] = []
        self.fail_with: list[Exception] = []

    def record(self, entries: Sequence[DeadLetter]) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.entries += entries

    def erase_users(self, user_ids: Sequence[str]) -> int:
        groups = {message_group_id(u) for u in user_ids}
        kept = [e for e in self.entries if e.group not in groups]
        erased = len(self.entries) - len(kept)
        self.entries = kept
        return erased

    def recent(self, queue: str, limit: int) -> list[DeadLetter]:
        mine = [e for e in self.entries if e.queue == queue]
        return sorted(mine, key=lambda e: (e.at, e.message_id), reverse=True)[:limit]


class MemoryQueueDepths:
    """The QueueDepths port: each DLQ's size as given."""

    def __init__(self, **depths: int) -> None:
        self.depths = depths

    def depth(self, queue: str) -> int:
        return self.depths.get(queue, 0)


# ---- ingest, process, check ----------------------------------------------------------------------
class MemoryKeyStore:
    """The KeyStore port: API keys by SHA-256 digest, as the keys table holds them."""

    def __init__(self, keys: Mapping[str, KeyKind] | None = None) -> None:
        self.rows: dict[str, KeyKind] = {hash_key(k): kind for k, kind in (keys or {}).items()}

    def kind_of(self, key_hash: str) -> KeyKind | None:
        return self.rows.get(key_hash)


class MemoryEventQueue:
    """The events queue (EventQueue and TimersQueue ports): the bodies the SQS adapter
    sends, one EventsMessage per user and request and one TimersMessage per user and
    bucket, with their message group, in order; `parsed()` reads them back as the
    process function does. The errors in `fail_with` are raised by the next sends."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []  # (message group = user id, body)
        self.fail_with: list[Exception] = []

    def _fail(self) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)

    def send(self, events: Sequence[Event]) -> None:
        self._fail()
        self.messages += [(user, body) for user, body, _ in pack_events(events)]

    def send_timers(self, messages: Sequence[TimersMessage]) -> None:
        self._fail()
        self.messages += [(m.user_id, m.to_json()) for m in messages]

    def parsed(self) -> list[Parsed]:
        return [parse_message(body) for _, body in self.messages]

    def records(self) -> list[dict[str, Any]]:
        """The queued messages as the SQS records of the process function's batch."""
        return [
            {
                "MessageId": f"m{i}",
                "ReceiptHandle": f"r{i}",
                "Body": body,
                "Attributes": {"MessageGroupId": group, "SequenceNumber": str(i)},
            }
            for i, (group, body) in enumerate(self.messages)
        ]


class MemoryActionQueue:
    """The ActionQueue port: the action messages queued for the deliver function, read
    back from their bodies as the deliver function reads them."""

    def __init__(self) -> None:
        self.actions: list[ActionMessage] = []

    def send(self, actions: Sequence[ActionMessage]) -> None:
        self.actions += [parse_action(a.to_json()) for a in actions]


class MemoryWakeUps:
    """The wake-up index (WakeUpIndex and DueTimers ports): each timer filed in its
    minute bucket by nudge.domain.wakeups.file_timers, as the scheduler adapter does, one
    per (user, trigger, key) and bucket; `due` reads a bucket back for the check function.
    `clock`: read when a write returns (late timers are filed again); `during_write` runs
    inside each write, as a slow batch or a racing sweep would."""

    def __init__(
        self, *, clock: Clock | None = None, during_write: Callable[[], None] | None = None
    ) -> None:
        self.buckets: dict[str, dict[tuple[str, str, str | None], TimerItem]] = {}
        self.clock = clock
        self.during_write = during_write
        self.writes = 0

    def arm_many(self, timers: Iterable[tuple[str, Timer]], *, now: datetime) -> int:
        return file_timers(timers, now=now, write=self._write, clock=self.clock)

    def _write(self, filings: Sequence[Filing]) -> None:
        self.writes += 1
        if self.during_write is not None:
            self.during_write()
        for user_id, t, bucket in filings:
            item = TimerItem(trigger_id=t.trigger_id, key=t.key, due=to_ms(t.due))
            self.buckets.setdefault(bucket.strftime(BUCKET_FORMAT), {})[
                (user_id, t.trigger_id, t.key)
            ] = item

    def due(self, bucket: str) -> list[tuple[str, TimerItem]]:
        return [(user, item) for (user, _, _), item in self.buckets.get(bucket, {}).items()]

    def armed(self) -> list[tuple[str, str, str, str | None]]:
        """(bucket, user, trigger, key) of every timer filed."""
        return [(b, *ref) for b, rows in sorted(self.buckets.items()) for ref in rows]


class MemoryArchive:
    """The ArchiveWriter port: the lines written, each a JSON event; the errors in
    `fail_with` are raised by the next writes (nothing is kept then)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.fail_with: list[Exception] = []

    def write(self, lines: Iterable[bytes]) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.lines += list(lines)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


# ---- api, feedback ------------------------------------------------------------------------------
class MemoryDevices:
    """The DeviceRegistry port: an endpoint id per registration, as SNS makes one."""

    def __init__(self) -> None:
        self.endpoints: dict[str, tuple[str, str, str]] = {}  # arn → (user, platform, token)

    def register(self, user_id: str, platform: str, token: str) -> str:
        arn = f"arn:aws:sns:us-east-1:000000000000:endpoint/{platform}/{len(self.endpoints)}"
        self.endpoints[arn] = (user_id, platform, token)
        return arn

    def delete(self, endpoint_arn: str) -> None:
        self.endpoints.pop(endpoint_arn, None)


@dataclass
class StaticKey:
    """The SigningKey port: the unsubscribe signing key."""

    value: bytes = b"unit-test-unsubscribe-key"

    def get(self) -> bytes:
        return self.value


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


def a_dead_letter(
    group: str, message_id: str, *, queue: str = "events", at: datetime = NOW
) -> DeadLetter:
    """A dead-letter entry of a message in the group (the user) that failed for good."""
    from nudge.domain.dead_letters import dead_letter

    return dead_letter(
        queue=queue,
        message_id=message_id,
        group=group,
        receive_count=5,
        moved_by="redrive",
        error_type="ValueError",
        error="boom",
        body=json.dumps({"userId": group, "traits": {"email": f"{group}@example.com"}}),
        at=at,
    )


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
) -> ActionMessage:
    """An action message as the process function enqueues it (nudge.adapters.effects);
    `extra` sets more of its fields (`experiment={"id", "variant", ...}`)."""
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
    return ActionMessage(
        user_id=user_id,
        trigger_id=trigger_id,
        key=key,
        at=at,
        episode=episode,
        action_id=action_id(user_id, trigger_id, key, episode),
        action=ActionSpec.model_validate(spec),
        priority=priority,
        cooldown_seconds=cooldown_seconds,
        context=context,
        enqueued_at=at,
        **extra,
    )


def an_http_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    bearer: str | None = None,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    at: datetime = NOW,
) -> dict[str, Any]:
    """An API Gateway HTTP API request event (payload 2.0) as the ingest and api
    functions receive it: `key` goes as HTTP Basic user (Segment's SDKs), `bearer` as an
    admin key; a body that is not bytes is sent as JSON."""
    from nudge.local.lambdas import http_event

    all_headers = {"host": "nudge.example.test", **(headers or {})}
    if key is not None:
        all_headers["authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if bearer is not None:
        all_headers["authorization"] = f"Bearer {bearer}"
    data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return http_event(
        method=method,
        path=path,
        query=query,
        headers=all_headers,
        body=data,
        source_ip="198.51.100.7",
        now_ms=to_ms(at),
    )


def an_sqs_batch(records: Sequence[Any], queue: str = "nudge-events.fifo") -> dict[str, Any]:
    """A Lambda SQS event of ReceiveMessage-shaped records (MessageId, Body, Attributes)."""
    from nudge.local.lambdas import sqs_event

    return sqs_event(list(records), f"arn:aws:sqs:us-east-1:000000000000:{queue}")


def an_sns_event(*notifications: dict[str, Any] | str) -> dict[str, Any]:
    """A Lambda SNS event carrying SES notifications (what the SES feedback topic sends
    to the feedback function)."""
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


def a_bounce(
    address: str, kind: str = "Permanent", sub: str = "General", *, key: str = "notificationType"
) -> dict[str, Any]:
    """An SES bounce notification (`key`: notificationType for identity notifications,
    eventType for a configuration set's event publishing)."""
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


def a_complaint(address: str) -> dict[str, Any]:
    """An SES complaint, as a configuration set's event publishing sends it."""
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


# ---- train --------------------------------------------------------------------------------------
class MemoryModelStore:
    """The ModelStore port: documents by name (copies in and out, as JSON would give);
    `fail_saves` names artifacts whose save raises."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.saves: list[str] = []
        self.fail_saves: set[str] = set()

    def load(self, name: str) -> dict[str, Any] | None:
        doc = self.docs.get(name)
        return json.loads(json.dumps(doc)) if doc is not None else None

    def save(self, name: str, doc: dict[str, Any]) -> None:
        if name in self.fail_saves:
            raise OSError(f"cannot save {name}")
        self.docs[name] = json.loads(json.dumps(doc))
        self.saves.append(name)


class MemoryArchiveLines:
    """The ArchiveLines port over lines in memory (the arrival window is not applied)."""

    def __init__(self, lines: Iterable[bytes] = ()) -> None:
        self.lines_kept = list(lines)

    def lines(self, *, since: datetime, until: datetime) -> Iterable[bytes]:
        return iter(self.lines_kept)


class MemoryProfileScores:
    """The ProfileScores port over a MemoryProfileStore: scores written into the stored
    documents, counted in `written`."""

    def __init__(self, store: MemoryProfileStore) -> None:
        self.store = store
        self.written: list[str] = []

    def scan(self) -> Iterable[Profile]:
        return iter([Profile.from_dict(copy.deepcopy(doc)) for doc, _v in self.store.rows.values()])

    def write_scores(self, changes: Sequence[Any]) -> int:
        n = 0
        for c in changes:
            row = self.store.rows.get(c.user_id)
            if row is None:
                continue
            doc, version = row
            doc = {**doc, "segment": c.segment, "rfm_score": c.rfm_score}
            self.store.rows[c.user_id] = (doc, version + 1)
            self.written.append(c.user_id)
            n += 1
        return n


class DuckArchive:
    """The QueryEngine port over archive lines in memory: an in-process DuckDB with the
    table `archive_raw` and the view `events` the real engine puts over it (the arrival
    window and the erased list are not applied). `lines`: what MemoryArchive kept."""

    def __init__(self, lines: Iterable[bytes] = ()) -> None:
        self.lines = list(lines)
        self.sql: list[str] = []

    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        import duckdb

        self.sql.append(sql)
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            "CREATE TABLE archive_raw ("
            + ", ".join(f'"{c}" {t}' for c, t, _ in ARCHIVE_COLUMNS)
            + ")"
        )
        rows = [json.loads(line) for line in self.lines if line.strip()]
        if rows:
            holes = ", ".join(
                "CAST(? AS JSON)" if t == "JSON" else "?" for _, t, _ in ARCHIVE_COLUMNS
            )
            con.executemany(
                f"INSERT INTO archive_raw VALUES ({holes})",
                [
                    [
                        json.dumps(r.get(c)) if t == "JSON" else r.get(c)
                        for c, t, _ in ARCHIVE_COLUMNS
                    ]
                    for r in rows
                ],
            )
        con.execute(f"CREATE VIEW events AS {EVENTS_VIEW_SQL}")
        cur = con.execute(sql)
        json_cols = [i for i, d in enumerate(cur.description) if str(d[1]) == "JSON"]
        rows = []
        for r in cur.fetchall():
            row = list(r)
            for i in json_cols:  # as the engines answer them: parsed
                row[i] = parse_json_value(row[i])
            rows.append(row)
        return QueryResult([d[0] for d in cur.description], rows)
