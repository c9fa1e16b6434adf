"""The OpenAPI 3.1 document of nudge's HTTP API (docs/openapi.json).

Generated, not written: the paths, methods and path parameters are the handlers' own
route tables (Powertools' ``get_openapi_schema``), each route declaring its operation
with ``operation(...)`` at its decorator; the schemas are pydantic models: the ingest
validation model (``SegmentCall``) and the response models below, which the
integration tests check real responses against. ``nudge openapi`` (``make openapi``)
writes the file; the api function serves that same file at ``GET /openapi.json``.

The local-only endpoints (``/_local/...``) are not in it: AWS does not serve them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from nudge.constants import DEFAULT_RATE_LIMIT_PER_SECOND, MAX_BATCH_BYTES, MAX_EVENT_BYTES
from nudge.domain.channels import Channel, OptOutChannel
from nudge.domain.events import (
    EVENT_TYPES,
    MAX_EVENT_NAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_INTEGER,
    Rejection,
    SegmentCall,
)
from nudge.domain.ingest import endpoint_kind
from nudge.domain.triggers.durations import UNITS

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"  # the /v1 of the paths
REF = "#/components/schemas/{model}"

# ---- security --------------------------------------------------------------------------
WRITE_KEY = "writeKey"
ADMIN_KEY = "adminKey"
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    WRITE_KEY: {
        "type": "http",
        "scheme": "basic",
        "description": "The write key as the user name and an empty password, as Segment's "
        "SDKs send it; a `writeKey` field in the JSON body is accepted too. Missing or "
        "wrong: 401.",
    },
    ADMIN_KEY: {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <admin key>`. No key: 401; a write key: 403.",
    },
}

# ---- tags (one per operation; the document lists paths in this order) -----------------
INGEST = "ingest"
USERS = "users"
UNSUBSCRIBE = "unsubscribe"
SERVICE = "service"
REPORTS = "reports"
KEYS = "keys"
DASHBOARD = "dashboard"
TAGS = [
    {
        "name": INGEST,
        "description": "Segment-compatible HTTP Tracking API (write key). Bodies may be "
        "gzip-compressed (`Content-Encoding: gzip`); browsers get CORS preflights answered.",
    },
    {"name": USERS, "description": "Read and manage one user (admin key)."},
    {
        "name": UNSUBSCRIBE,
        "description": "The List-Unsubscribe target of every email; the signed token is the "
        "credential (no key).",
    },
    {"name": REPORTS, "description": "Experiments and reports over the event archive (admin key)."},
    {"name": KEYS, "description": "Create, list and revoke API keys (admin key; `nudge keys`)."},
    {
        "name": DASHBOARD,
        "description": "The dashboard page and its assets (no key: they hold no data; the "
        "page reads the report routes with the admin key).",
    },
    {"name": SERVICE, "description": "Health and this document (no key)."},
]


# ---- response and request models ------------------------------------------------------
class Error(BaseModel):
    """Every 4xx answer."""

    error: str = Field(description="a stable code: `unauthorized`, `validation_failed`, ...")
    message: str = Field(description="what went wrong, for a person")
    details: list[Any] = Field(description="per-item findings (a batch: `{index, message}`)")


class IngestAccepted(BaseModel):
    success: Literal[True]
    details: list[Rejection] = Field(
        default_factory=list,
        description="batch and import: the invalid items by index; the others were accepted",
    )


class BrowserSettings(BaseModel):
    """What analytics.js loads before it sends (Segment's CDN serves it on Segment)."""

    integrations: dict[str, Any] = Field(
        description="`Segment.io`: `apiKey`, `apiHost` (this host + `/v1`), `protocol`"
    )
    plan: dict[str, Any]
    enabledMiddleware: dict[str, Any]
    metrics: dict[str, Any]
    remotePlugins: list[Any]


class Health(BaseModel):
    status: Literal["ok"]


class Rfm(BaseModel):
    """From `Order Completed` events (event time)."""

    recency_days: int | None = Field(description="whole days from the last order to now")
    frequency: int = Field(description="orders")
    monetary: float = Field(description="summed `revenue`")
    score: str | None = Field(
        description="R, F, M quintiles 1-5 among all users (e.g. `545`), once segments "
        "have been computed",
        pattern="^[1-5]{3}$",
    )


class TriggerState(BaseModel):
    fired: int = Field(
        description="times the trigger's condition was met for this user, sent or not"
    )
    last_fired_at: datetime | None
    armed_until: datetime | None


class Sessions(BaseModel):
    count: int
    duration_seconds: float


class Orders(BaseModel):
    count: int
    revenue: float


class CartItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    product_id: str


class RecentItem(BaseModel):
    item_id: str
    event: str
    at: datetime


class UserProfile(BaseModel):
    user_id: str
    traits: dict[str, Any]
    first_seen: datetime | None
    last_seen: datetime | None
    event_counts: dict[str, int] = Field(
        description="by event name; page and screen calls count as `Page Viewed` and "
        "`Screen Viewed`"
    )
    segment: str | None
    rfm: Rfm
    triggers: dict[str, TriggerState] = Field(description="by trigger id")
    anonymous_ids: list[str]
    sessions: Sessions
    page_views: int
    cart: list[CartItem]
    orders: Orders
    recent_items: list[RecentItem]


class InboxMessage(BaseModel):
    id: str
    trigger: str
    title: str
    body: str
    created_at: datetime
    read: bool
    cta: str | None = None
    cta_url: str | None = None


class Inbox(BaseModel):
    messages: list[InboxMessage] = Field(description="newest first")


class MessageRead(BaseModel):
    id: str
    read: Literal[True]


class Delivery(BaseModel):
    action_id: str
    trigger: str
    channel: Channel
    status: Literal[
        "sent",
        "unconfirmed",
        "deferred",
        "capped",
        "opted_out",
        "suppressed",
        "holdout",
        "failed",
        "sending",
    ] = Field(
        description="`sending`: claimed by a delivery still in flight; `unconfirmed`: the "
        "provider's answer was ambiguous (a 5xx, a timeout, a crash after the call), so the "
        "message may have gone out: it is not sent again and counts toward the caps"
    )
    reason: str
    at: datetime
    defer_until: datetime | None = None
    variant: str | None = None


class Deliveries(BaseModel):
    deliveries: list[Delivery] = Field(description="newest first")


class DeviceRegistration(BaseModel):
    platform: Literal["apns", "fcm"]
    token: str = Field(min_length=1)


class Device(BaseModel):
    user_id: str
    platform: Literal["apns", "fcm"]
    token: str
    endpoint_arn: str = Field(description="the SNS platform endpoint that push goes to")


class Unsubscribed(BaseModel):
    unsubscribed: Literal[True]
    channel: OptOutChannel


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="allow")

    item_id: str
    score: float = Field(description="the model's score: higher is a better match")
    reason: Literal["similar", "category", "popular", "explore", "recent"] = Field(
        description="`similar`: follows the user's recent items; `category`: in the "
        "categories of those; `popular`: a popular item; `explore`: an under-exposed item "
        "(exploration share); `recent`: the user's own recent item (no model yet)"
    )
    name: str | None = None
    price: float | str | None = None
    url: str | None = None
    image_url: str | None = None
    category: str | None = None


class Recommendations(BaseModel):
    items: list[Recommendation] = Field(description="in the order to show")


class ExperimentGoal(BaseModel):
    event: str
    within_seconds: int = Field(description="the attribution window after the first exposure")


class ExperimentSequential(BaseModel):
    difference: float | None = Field(description="rate - control's rate at the latest look")
    p_value: float = Field(
        description="mSPRT always-valid p-value: valid however often the report is read"
    )
    p_value_holm: float | None = Field(description="Holm-adjusted over the report's metrics")
    ci_low: float | None = Field(description="95 % confidence sequence of the difference")
    ci_high: float | None
    verdict: Literal["continue", "variant_better", "variant_worse", "inconsistent"]
    looks: int = Field(description="daily looks so far (UTC days of first exposure)")
    tau2: float | None = Field(description="the mixing variance (the MDE squared for rates)")


class ExperimentVariant(BaseModel):
    name: str
    users: int = Field(description="users whose first exposure was in this variant")
    conversions: int = Field(description="of them, with the goal event within the window")
    conversion_rate: float | None
    ci_low: float | None = Field(description="Wilson 95 % interval of the rate")
    ci_high: float | None
    lift: float | None = Field(description="rate / control's rate - 1; null for the control")
    p_value: float | None = Field(description="two-proportion z-test against the control")
    sequential: ExperimentSequential | None = Field(
        description="the conversion rate's sequential test against the control; null for "
        "the control"
    )


class ExperimentReport(BaseModel):
    experiment: str
    goal: ExperimentGoal
    variants: list[ExperimentVariant]
    srm_p_value: float | None = Field(description="sample-ratio mismatch; below 0.001: broken")
    metrics: dict[str, Any] = Field(
        description="control, sample_size (per variant, still needed), chi_square (more "
        "than two variants), unknown_variant_users, methods (alpha, the sequential test's "
        "looks and mixing variance, CUPED's pre-exposure days, Holm's family), and per "
        "metric (conversion, revenue, engagement) {variants: [{name, users, mean, std, "
        "pre_exposure_mean, difference, ci_low, ci_high, lift, p_value, p_value_holm, "
        "sequential, cuped}]} (docs/measurement.md)"
    )


class ErasedStores(BaseModel):
    ids: list[str] = Field(description="the user's id and every id merged into it")
    profiles: int = Field(description="profiles replaced by tombstones")
    inbox_messages: int
    deliveries: int = Field(description="delivery log entries (addresses, bodies) deleted")
    timers: int = Field(description="wake-up index entries deleted")
    devices: int = Field(description="push endpoints deleted")
    suppressions_hashed: int = Field(description="suppressed addresses now kept as hashes")
    dedup_fingerprints: int = Field(
        description="message fingerprints of a heavy user's last 25 hours deleted"
    )
    experiment_shares_anonymized: int = Field(
        description="the user's shares of experiment reports, archived again with no id"
    )
    dead_letter_entries: int = Field(
        description="entries of the dead-letter report (the start of the user's messages) deleted"
    )
    archive: str = Field(description="what became of the archived events")


class Erased(BaseModel):
    user_id: str
    erased: ErasedStores
    tombstone_until: str = Field(description="until when events in flight are dropped")


class ExportedInboxMessage(InboxMessage):
    action_id: str | None = Field(description="the action that sent it")


class ExportedDelivery(Delivery):
    fired_at: datetime | None = Field(description="when the trigger's episode was met")
    priority: int
    provider_id: str | None = Field(description="SES's or SNS's message id, for a send")
    to: str | None = Field(description="the address or endpoint a message went to")
    subject: str | None
    body: str | None = Field(description="the message as sent (text)")


class UserExport(BaseModel):
    user_id: str
    exported_at: datetime
    ids: list[str] = Field(description="the user's id and every id merged into it")
    profile: UserProfile
    stored_profile: dict[str, Any] = Field(
        description="the profile document as kept: trigger states, dedup fingerprints"
    )
    inbox: list[ExportedInboxMessage] = Field(description="newest first")
    deliveries: list[ExportedDelivery] = Field(description="newest first")
    devices: list[dict[str, Any]] = Field(description="platform, token, endpoint_arn")
    suppressed_addresses: list[str] = Field(
        description="the user's email and phone if they bounced or complained"
    )
    events: list[dict[str, Any]] = Field(
        description="archived events of the ids (columns of the view `events`), oldest "
        "first: one page (up to 1,000 events, about 4 MB)"
    )
    events_next: str | None = Field(
        description="pass as `after` for the next page of `events`; null on the last"
    )


class KeyRequest(BaseModel):
    kind: Literal["write", "admin"]
    label: str = Field("", max_length=100, description="what the key is for")


class KeyInfo(BaseModel):
    id: str = Field(description="the first 16 hex digits of the key's SHA-256 digest")
    kind: Literal["write", "admin"]
    label: str
    created_at: str | None


class CreatedKey(KeyInfo):
    key: str = Field(description="the key itself: shown once, never stored")


class KeyList(BaseModel):
    keys: list[KeyInfo]


class TrackingSample(BaseModel):
    message_id: str | None = Field(description="the messageId of the latest violating event")
    description: str | None
    value: str | None = Field(description="the offending value (cut to 200 characters)")


class TrackingViolation(BaseModel):
    event: str = Field(description="the event name (`identify` for traits)")
    rule: str = Field(description="the JSON Schema keyword broken, or `unplanned`")
    field: str = Field(description="where: `properties.revenue`, `traits.email`, ...")
    violations: int
    events: int = Field(description="distinct events with this violation")
    blocked: int = Field(description="of them refused at ingest (block mode)")
    last_seen: str | None
    sample: TrackingSample


class TrackingReport(BaseModel):
    days: int
    violations: list[TrackingViolation]


class Segment(BaseModel):
    name: str = Field(description="named from its centroid (docs/personalization.md)")
    size: int = Field(description="users in the segment at the last training")
    centroid: dict[str, float] = Field(
        description="feature -> the centroid, standardized (log1p, then mean 0, sd 1)"
    )
    means: dict[str, float] = Field(description="feature -> the segment's raw mean")


class TrainRun(BaseModel):
    ok: bool
    started: str | None
    finished: str | None
    duration_seconds: float | None
    users: int | None = Field(description="profiles read")
    errors: list[str] = Field(description="why the run failed (empty when it did not)")
    items_validation: dict[str, Any] | None = Field(
        None,
        description="the recommender scored on the most recent day (HR@10 of the candidate, "
        "popularity and the model in service; whether the new model was promoted)",
    )


class SegmentsReport(BaseModel):
    trained_at: str | None = Field(description="null before the first training")
    k: int | None
    silhouette: float | None = Field(description="of the k chosen (-1 to 1, higher is better)")
    features: list[str]
    transform: str | None
    segments: list[Segment] = Field(description="empty before the first training")
    last_run: TrainRun | None = Field(description="the last train run, good or not")


class DeadLetterEntry(BaseModel):
    queue: Literal["events", "actions"]
    message_id: str = Field(description="the SQS message id (kept when SQS moves a message)")
    group: str = Field(description="its message group: the user id (or its digest)")
    receive_count: int | None = Field(description="ApproximateReceiveCount when it failed")
    moved_by: Literal["function", "redrive"] = Field(
        description="`function`: moved at once by the function (a body it cannot read, an "
        "action that failed for good); `redrive`: failed on its last allowed receive, moved "
        "by SQS's redrive policy"
    )
    error_type: str = Field(description="the error's class (or a delivery reason's code)")
    error: str = Field(description="its message, up to 240 bytes")
    body: str = Field(description="the start of the message body, up to 240 bytes")
    body_bytes: int = Field(description="the whole body's size")
    truncated: bool = Field(description="the body is longer than what is shown")
    at: str = Field(description="when it was recorded, ISO-8601 UTC")


class DeadLetterQueueSize(BaseModel):
    queue: Literal["events", "actions"]
    messages: int = Field(description="the DLQ's ApproximateNumberOfMessages")


class DeadLettersReport(BaseModel):
    retention_days: int = Field(description="how long the queues and the entries keep them")
    queues: list[DeadLetterQueueSize]
    dead_letters: list[DeadLetterEntry] = Field(description="newest first, both queues")


_REQUESTS: tuple[type[BaseModel], ...] = (SegmentCall, DeviceRegistration, KeyRequest)


class Cohort(BaseModel):
    cohort: str = Field(description="the period of the users' first event: `2026-W03`, `2026-01`")
    size: int = Field(description="users whose first event fell in it")
    retention: list[float] = Field(
        description="[1.0, r1, r2, ...]: rk is the share of the cohort active (with an event "
        "named `event`, if given) in period cohort + k, up to the current period"
    )
    retained: list[int] = Field(description="the users behind each value: [size, n1, n2, ...]")
    start: str = Field(description="the period's first day (UTC), ISO-8601")
    event_users_in_cohort_period: int | None = Field(
        None, description="with `event`: the cohort's users who did it in the cohort period"
    )


class CohortReport(BaseModel):
    period: Literal["week", "month"]
    event: str | None = Field(description="the event retention counts; null: any activity")
    current: str = Field(description="the current period: the last value of each list")
    cohorts: list[Cohort] = Field(description="oldest first")


class FunnelStep(BaseModel):
    event: str
    users: int = Field(description="users who reached this step (in order, within the window)")
    conversion: float | None = Field(description="users / the first step's users")
    drop_off: float | None = Field(
        description="1 - users / the previous step's users; null for the first step"
    )


class FunnelGroup(BaseModel):
    steps: list[FunnelStep]


class FunnelReport(BaseModel):
    steps: list[FunnelStep]
    groups: dict[str, FunnelGroup] = Field(
        description="with `by`: the same steps per segment or variant (`none`: without one)"
    )
    within: str = Field(description="the window after the first step, e.g. `7d`")
    within_seconds: int
    by: Literal["segment", "variant"] | None
    experiment: str | None = Field(
        None, description="with by=variant: the experiment whose variants group the users"
    )


class TriggerDay(BaseModel):
    date: str = Field(description="a UTC day, YYYY-MM-DD")
    fired: int = Field(description="actions whose first outcome fell on that day")
    sent: int = Field(description="actions sent that day")
    conversions: int = Field(description="users sent a message that day who converted")
    anomaly: bool = Field(description="fired, sent or conversions left its usual range")


class TriggerKpis(BaseModel):
    id: str
    fired: int = Field(description="episodes with an action in the period, any status")
    sent: int
    response_rate: float | None = Field(
        description="sent messages opened, clicked, read or tapped within the window"
    )
    conversion_rate: float | None = Field(
        description="users sent a message who did the goal within the window after it"
    )
    engagement_seconds: float | None = Field(
        description="mean session seconds in the window after a sent message"
    )
    retention_vs_holdout: float | None = Field(
        description="share active within 7 days, sent minus held out; null without holdout"
    )
    goal: dict[str, Any] = Field(description="event and within_seconds of the window")
    daily: list[TriggerDay]


class TriggersReport(BaseModel):
    days: int
    triggers: list[TriggerKpis]


class ExperimentSummary(BaseModel):
    id: str = Field(description="for `GET /v1/experiments/{experimentId}`")
    name: str = Field(description="the experiment's name (its id when it has none)")
    trigger: str = Field(description="the trigger the experiment is on")


class ExperimentList(BaseModel):
    experiments: list[ExperimentSummary] = Field(description="in definition order")


_RESPONSES: tuple[type[BaseModel], ...] = (
    Error,
    IngestAccepted,
    BrowserSettings,
    Health,
    UserProfile,
    Inbox,
    MessageRead,
    Deliveries,
    Device,
    Unsubscribed,
    ExperimentReport,
    TrackingReport,
    SegmentsReport,
    DeadLettersReport,
    KeyInfo,
    CreatedKey,
    KeyList,
    Erased,
    UserExport,
    CohortReport,
    FunnelReport,
    TriggersReport,
    Recommendations,
    ExperimentList,
)


class _NoFieldTitles(GenerateJsonSchema):
    """Models keep their titles; fields do not get `Userid`-style ones."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _name(max_chars: int, excluded: str) -> str:
    body, edge = rf"[^\u0000{excluded}]", rf"[^\s\u0000{excluded}]"
    return rf"\s*{edge}(?:{body}{{0,{max_chars - 2}}}{edge})?\s*"


def name_pattern(max_chars: int) -> str:
    """A name as the reports read one (an event, an experiment): not blank once trimmed,
    at most `max_chars` characters then, no NUL (nudge.domain.cohorts)."""
    return f"^{_name(max_chars, '')}$"


def list_pattern(max_chars: int, least: int, most: int) -> str:
    """`least` to `most` such names, comma-separated, none holding a comma (a funnel's
    steps)."""
    one = _name(max_chars, ",")
    return f"^{one}(?:,{one}){{{least - 1},{most - 1}}}$"


def up_to(n: int) -> str:
    """A regular expression (a group) matching the whole numbers 1 to `n` written without
    leading zeros: for a parameter whose bound the document states exactly (366d)."""
    digits = str(n)
    width = len(digits)
    parts = [f"[1-9][0-9]{{0,{width - 2}}}"] if width > 1 else []
    for i, ch in enumerate(digits):
        low, d, rest = (1 if i == 0 else 0), int(ch), width - i - 1
        if d > low:
            span = str(low) if d - 1 == low else f"[{low}-{d - 1}]"
            parts.append(digits[:i] + span + (f"[0-9]{{{rest}}}" if rest else ""))
    parts.append(digits)
    return "(?:" + "|".join(parts) + ")"


def duration_pattern(max_seconds: int) -> str:
    """A duration as trigger definitions and reports read one (`30s`, `15m`, `48h`, `7d`:
    nudge.domain.triggers.durations), longer than 0s and at most `max_seconds`."""
    whole = "|".join(f"{up_to(max_seconds // size)}\\s*{u}" for u, size in UNITS.items())
    return f"^\\s*0*(?:{whole})\\s*$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


# What "required" means at ingest: there, not null and not blank (ids are trimmed, and a
# blank one counts as absent; an event name too), within the length ingest allows. The
# byte limits of an id and of an event are not written here: ingest says which was passed;
# nor is the 64-bit bound of the integers inside properties, traits and context.
_ID: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"\S", "maxLength": MAX_ID_LENGTH},
        {"type": "integer", "minimum": -MAX_INTEGER, "maximum": MAX_INTEGER},
    ]
}
_EVENT_NAME: dict[str, Any] = {
    "type": "string",
    "pattern": r"\S",
    "maxLength": MAX_EVENT_NAME_LENGTH,
}
_NEEDS: dict[str, list[str]] = {
    "track": ["event"],
    "alias": ["userId", "previousId"],
    "group": ["groupId"],
}
_IDENTIFIED = [
    {"required": ["userId"], "properties": {"userId": _ID}},
    {"required": ["anonymousId"], "properties": {"anonymousId": _ID}},
]


def _needs(kind: str) -> dict[str, Any]:
    """What a call of this kind must hold besides a userId or an anonymousId."""
    names = _NEEDS.get(kind, [])
    return {
        "required": names,
        "properties": {n: _EVENT_NAME if n == "event" else _ID for n in names},
    }


def _call_schema(kind: str) -> dict[str, Any]:
    """The body of `/v1/<kind>`: a SegmentCall with what that kind requires."""
    schema: dict[str, Any] = {
        "title": f"{kind.capitalize()}Call",
        "allOf": [ref("SegmentCall")],
        "properties": {
            "type": {"const": kind},
            "writeKey": {"type": "string", "description": "instead of HTTP Basic auth"},
        },
    }
    if kind in _NEEDS:
        needs = _needs(kind)
        schema["required"] = needs["required"]
        schema["properties"].update(needs["properties"])
    if kind != "alias":
        schema["anyOf"] = _IDENTIFIED
    return schema


def _batch_item() -> dict[str, Any]:
    """An item of `/v1/batch`: its `type` says what else it needs (JSON Schema's if/then,
    which OpenAPI 3.1 takes as it is). An item that fails is reported in `details`; the
    others are taken (`200`)."""
    rules = [
        {"if": {"properties": {"type": {"const": kind}}}, "then": _needs(kind)}
        for kind in EVENT_TYPES
        if kind in _NEEDS
    ]
    rules.append(
        {
            "if": {"properties": {"type": {"not": {"const": "alias"}}}},
            "then": {"anyOf": _IDENTIFIED},
        }
    )
    return {
        "title": "BatchItem",
        "allOf": [ref("SegmentCall"), *rules],
        "properties": {"type": {"enum": list(EVENT_TYPES)}},
        "required": ["type"],
    }


def schemas() -> dict[str, Any]:
    """components.schemas: the pydantic models, then the ingest bodies built on them."""
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in _REQUESTS]
    pairs += [(m, "serialization") for m in _RESPONSES]
    _, top = models_json_schema(pairs, ref_template=REF, schema_generator=_NoFieldTitles)
    out: dict[str, Any] = dict(sorted(top.get("$defs", {}).items()))
    for kind in EVENT_TYPES:
        out[f"{kind.capitalize()}Call"] = _call_schema(kind)
    out["BatchItem"] = _batch_item()
    out["BatchRequest"] = {
        "title": "BatchRequest",
        "type": "object",
        "description": "Top-level `context` and `integrations` merge into each item; `sentAt` "
        "corrects the items' timestamps for client clock skew.",
        "properties": {
            "batch": {"type": "array", "minItems": 1, "items": ref("BatchItem")},
            "context": {"type": "object"},
            "integrations": {"type": "object"},
            "sentAt": {"type": "string", "format": "date-time"},
            "writeKey": {"type": "string", "description": "instead of HTTP Basic auth"},
        },
        "required": ["batch"],
    }
    return out


# ---- operations -----------------------------------------------------------------------
ERRORS: dict[int, str] = {
    400: "Invalid request (bad JSON, a failed validation: `details` says which)",
    401: "Missing or wrong key",
    403: "The key is not allowed here",
    404: "Not found",
    413: f"Over {MAX_EVENT_BYTES // 1024} KB for an event or {MAX_BATCH_BYTES // 1024} KB for "
    "a batch (Segment answers 400; SDKs retry neither)",
    429: f"Over the rate limit (default {DEFAULT_RATE_LIMIT_PER_SECOND:,} requests/s per "
    "write key)",
}


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or ERRORS[status],
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


QUERY_EXTENSION = "x-nudge-query"  # an operation's query parameters, until `document`


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    returns: str | Mapping[str, Any],
    returns_description: str = "OK",
    status: int = 200,
    media_type: str = "application/json",
    errors: Iterable[int] | Mapping[int, str | None] = (),
    auth: str | None = None,
    body: str | None = None,
    query: Sequence[Mapping[str, Any]] = (),
    description: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI keyword arguments of a Powertools route decorator.

    ``returns`` is a component name or an inline schema. Powertools derives a request
    body and query parameters only from parameters it validates itself; these handlers
    read raw bodies (gzip, base64) and query strings, so ``body`` and ``query`` go into
    the operation through ``openapi_extensions``. Without ``auth`` the route needs no key.
    """
    schema = ref(returns) if isinstance(returns, str) else dict(returns)
    responses: dict[int, dict[str, Any]] = {
        status: {"description": returns_description, "content": {media_type: {"schema": schema}}}
    }
    overrides = errors if isinstance(errors, Mapping) else {code: None for code in errors}
    for code, text in overrides.items():
        responses[code] = error_response(code, text)
    extensions: dict[str, Any] = {}
    if body is not None:
        extensions["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    if query:  # merged into `parameters` by `document` (Powertools writes the path's there)
        extensions[QUERY_EXTENSION] = [dict(q) for q in query]
    return {
        "operation_id": operation_id,
        "summary": summary,
        "description": description,
        "tags": [tag],
        "security": [{auth: []}] if auth else None,
        "responses": responses,
        "openapi_extensions": extensions or None,
    }


INGEST_SUMMARIES = {
    "track": "Record an event a user did",
    "identify": "Tie a user to their traits",
    "page": "Record a page view (counts as `Page Viewed`)",
    "screen": "Record a screen view (counts as `Screen Viewed`)",
    "group": "Tie a user to a group",
    "alias": "Merge a previous id into a user id",
    "batch": "Several calls at once, each item with a `type`",
    "import": "Historical backfill: updates state and analytics, never fires triggers or sends",
}


def ingest_operation(segment: str) -> dict[str, Any]:
    """The operation of `POST /v1/<segment>` (a Segment endpoint, or analytics.js's
    one-letter name for one)."""
    kind = endpoint_kind(segment)
    batch = kind in ("batch", "import")
    summary = INGEST_SUMMARIES[kind]
    description = (
        "200 with `details` listing the invalid items by index when some are invalid; "
        "400 when none is valid."
        if batch
        else "One event; `userId` or `anonymousId` is required."
    )
    operation_id = {"import": "importHistory"}.get(kind, kind)
    if segment != kind:
        summary = f"analytics.js's name for /v1/{kind}: {summary[0].lower()}{summary[1:]}"
        operation_id = f"{operation_id}Short"
    return operation(
        operation_id,
        summary,
        tag=INGEST,
        returns="IngestAccepted",
        errors=(400, 401, 413, 429),
        auth=WRITE_KEY,
        body="BatchRequest" if batch else f"{kind.capitalize()}Call",
        description=description,
    )


# ---- the document ---------------------------------------------------------------------
DESCRIPTION = """\
nudge's HTTP API: the same paths in local mode (`nudge dev`) and on AWS.

- Ingest (`/v1/track`, ... `/v1/batch`, `/v1/import`) is Segment's HTTP Tracking API:
  HTTP Basic with the write key as user name (or a `writeKey` body field).
- Everything under `/v1/users` needs `Authorization: Bearer <admin key>` (no key: 401,
  the write key: 403).
- `GET /health`, `GET /openapi.json` (this document), `/v1/unsubscribe` (the signed
  token is the credential), the analytics.js settings and the dashboard's page and
  assets (no data in them) need no key.
- Every 4xx body is `{"error": "<code>", "message": "...", "details": [...]}`; a 5xx is
  a bug.

Local mode also serves `/_local/...` (clock, settle, outbox, AWS emulation); AWS does
not, and this document does not describe them (see the README).
"""


def document(apps: Sequence[APIGatewayHttpResolver]) -> dict[str, Any]:
    """One document from the route tables of the functions behind the HTTP API."""
    tag_order = [t["name"] for t in TAGS]
    found: dict[str, dict[str, Any]] = {}
    for app in apps:
        part = json.loads(
            app.get_openapi_json_schema(
                title="nudge",
                version=API_VERSION,
                # typed as Powertools' SecurityScheme models, which pydantic builds from
                # these dicts; the document's components take the dicts as they are
                security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]
            )
        )
        for path, item in part["paths"].items():
            for method, op in item.items():
                if method in found.setdefault(path, {}):
                    raise ValueError(f"{method.upper()} {path} is routed by two functions")
                for param in op.get("parameters", []):
                    param["schema"].pop("title", None)  # "Userid", from the handler's argument
                query = op.pop(QUERY_EXTENSION, [])
                if query:  # after the path's own, where Powertools puts parameters
                    params = [*op.pop("parameters", []), *query]
                    at = list(op).index("operationId") + 1
                    op = {
                        **dict(list(op.items())[:at]),
                        "parameters": params,
                        **dict(list(op.items())[at:]),
                    }
                found[path][method] = op

    def order(path: str) -> tuple[int, bool, int]:
        # by tag, then as registered (Powertools lists parameterized routes first)
        tag = next(iter(found[path].values()))["tags"][0]
        return tag_order.index(tag), "{" in path, list(found).index(path)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "nudge",
            "version": API_VERSION,
            "summary": "Self-hosted behavioral engagement engine",
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/", "description": "wherever nudge answers (local or AWS)"}],
        "tags": TAGS,
        "paths": {path: found[path] for path in sorted(found, key=order)},
        "components": {"schemas": schemas(), "securitySchemes": SECURITY_SCHEMES},
    }


def to_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
