"""DynamoDB tables as PynamoDB models. The CDK app and local mode read their key schemas
from here (table_specs), so infrastructure and code cannot drift."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.models import Model

from nudge import constants as C
from nudge.settings import AwsSettings, TableSettings


class _Base(Model):
    class Meta:
        table_name = "unbound"
        region = "us-east-1"


class ProfileRow(_Base):
    """The hot per-user item: one JSON document, written once per user per SQS batch,
    zlib-compressed (`packed`): DynamoDB bills every write by the whole item's size, and
    the document compresses about 2-3x. `state` (the plain JSON) is only read, from
    items written before (`nudge.adapters.profiles.decode_item`).

    `segment` and `rfm_score` are the train function's, written by it with UpdateItem
    (attributes of their own, not in `packed`, so that training never rewrites the
    document a concurrent process save is writing); every save of the profile writes
    back the values it read, and training's update moves the version, so a save that
    read the old values fails its condition and is retried (docs/decisions.md D36)."""

    class Meta:
        table_name = C.local_table_name(C.PROFILES)
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    packed = BinaryAttribute(null=True, legacy_encoding=False)
    state = UnicodeAttribute(null=True)
    segment = UnicodeAttribute(null=True)
    rfm_score = UnicodeAttribute(null=True)
    version = VersionAttribute()
    updated_at = NumberAttribute(default=0)
    expires_at = TTLAttribute(null=True)


class KeyRow(_Base):
    """API keys, stored only as SHA-256 digests."""

    class Meta:
        table_name = C.local_table_name(C.KEYS)
        region = "us-east-1"

    key_hash = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()  # write | admin
    label = UnicodeAttribute(default="")
    created_at = NumberAttribute(default=0)


class DeliveryRow(_Base):
    """The per-user delivery log: one item per action (episode), its status moving from
    deferred to a final one. The conditional write on it is the at-most-once claim."""

    class Meta:
        table_name = C.local_table_name(C.DELIVERIES)
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    action_id = UnicodeAttribute(range_key=True)
    trigger_id = UnicodeAttribute()
    channel = UnicodeAttribute()
    status = UnicodeAttribute()
    reason = UnicodeAttribute(default="")
    at = NumberAttribute()
    fired_at = NumberAttribute(null=True)
    priority = NumberAttribute(default=0)
    variant = UnicodeAttribute(null=True)
    defer_until = NumberAttribute(null=True)
    provider_id = UnicodeAttribute(null=True)
    to = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    body = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class InboxRow(_Base):
    """The in-app inbox: message ids sort by creation time."""

    class Meta:
        table_name = C.local_table_name(C.INBOX)
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    message_id = UnicodeAttribute(range_key=True)
    trigger_id = UnicodeAttribute()
    action_id = UnicodeAttribute()
    title = UnicodeAttribute()
    body = UnicodeAttribute()
    cta = UnicodeAttribute(null=True)
    cta_url = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    read = BooleanAttribute(default=False)
    expires_at = TTLAttribute(null=True)


class SuppressionRow(_Base):
    """Addresses that bounced or complained (SES feedback), never mailed again."""

    class Meta:
        table_name = C.local_table_name(C.SUPPRESSIONS)
        region = "us-east-1"

    address = UnicodeAttribute(hash_key=True)
    reason = UnicodeAttribute()
    at = NumberAttribute()


class TimerRow(_Base):
    """The wake-up index: the timers due in one minute bucket. The wake-up sweep (one
    recurring schedule, D49) invokes the check function every minute, which fans that
    minute's bucket out to its users."""

    class Meta:
        table_name = C.local_table_name(C.TIMERS)
        region = "us-east-1"

    bucket = UnicodeAttribute(hash_key=True)  # yyyy-mm-ddThh:mm (UTC)
    ref = UnicodeAttribute(range_key=True)  # user, trigger, key
    user_id = UnicodeAttribute()
    trigger_id = UnicodeAttribute()
    key = UnicodeAttribute(null=True)
    due = NumberAttribute()
    expires_at = TTLAttribute(null=True)


class DedupRow(_Base):
    """The dedup store (docs/decisions.md D42): the fingerprints of the dedup window that
    a heavy user's profile moved out, one item each (about 60 bytes: one write unit),
    gone with the window (TTL). Written before the profile write that drops them; read
    (BatchGetItem, strongly consistent) only for the users whose profile says they
    spilled."""

    class Meta:
        table_name = C.local_table_name(C.DEDUP)
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)  # the profile that moved it out
    fp = UnicodeAttribute(range_key=True)  # the message fingerprint (16 hex digits)
    # its received minute + DEDUP_WINDOW_SECONDS (nudge.adapters.profiles.DynamoDedup)
    expires_at = TTLAttribute()


DEAD_LETTERS_PARTITION = "dead-letters/"


def dead_letter_partition(queue: str) -> str:
    """The timers table's partition of a queue's dead-letter entries (no minute bucket,
    `yyyy-mm-ddThh:mm`, can be named so); the IAM grants name it too."""
    return DEAD_LETTERS_PARTITION + queue


class DeadLetterRow(_Base):
    """A dead-letter entry (nudge.domain.dead_letters): an item type of the timers table,
    in a partition per queue (`dead-letters/events`, `dead-letters/actions`) that no
    minute bucket can be named, sorted by time, expiring with the DLQ's retention by the
    table's TTL (docs/decisions.md D40). Its keys are the timers table's."""

    class Meta:
        table_name = C.local_table_name(C.TIMERS)
        region = "us-east-1"

    bucket = UnicodeAttribute(hash_key=True)  # dead-letters/<queue>
    ref = UnicodeAttribute(range_key=True)  # <epoch ms, 13 digits>/<message id>
    queue = UnicodeAttribute()
    message_id = UnicodeAttribute()
    group = UnicodeAttribute()
    receive_count = NumberAttribute(null=True)
    moved_by = UnicodeAttribute()
    error_type = UnicodeAttribute()
    error = UnicodeAttribute(default="")
    body = UnicodeAttribute(default="")
    body_bytes = NumberAttribute(default=0)
    at = NumberAttribute()
    expires_at = TTLAttribute(null=True)


MODELS: dict[str, type[Model]] = {
    C.PROFILES: ProfileRow,
    C.KEYS: KeyRow,
    C.DELIVERIES: DeliveryRow,
    C.INBOX: InboxRow,
    C.SUPPRESSIONS: SuppressionRow,
    C.TIMERS: TimerRow,
    C.DEDUP: DedupRow,
}
# Item types kept in another model's table (the same key schema and TTL attribute):
# bound with that table.
ITEM_TYPES: dict[str, tuple[type[Model], ...]] = {C.TIMERS: (DeadLetterRow,)}
TABLE_ENV = {
    C.PROFILES: C.ENV_PROFILES_TABLE,
    C.KEYS: C.ENV_KEYS_TABLE,
    C.DELIVERIES: C.ENV_DELIVERIES_TABLE,
    C.INBOX: C.ENV_INBOX_TABLE,
    C.SUPPRESSIONS: C.ENV_SUPPRESSIONS_TABLE,
    C.TIMERS: C.ENV_TIMERS_TABLE,
    C.DEDUP: C.ENV_DEDUP_TABLE,
}


KeyType = Literal["S", "N", "B"]  # what DynamoDB allows a key attribute to be


def _key_type(attr_type: str) -> KeyType:
    if attr_type == "S":
        return "S"
    if attr_type == "N":
        return "N"
    if attr_type == "B":
        return "B"
    raise ValueError(f"a key attribute of type {attr_type!r}: DynamoDB keys are S, N or B")


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: KeyType


@dataclass(frozen=True)
class TableSpec:
    logical: str
    partition_key: KeySpec
    sort_key: KeySpec | None
    ttl_attribute: str | None
    env_var: str


def table_specs() -> list[TableSpec]:
    specs = []
    for logical, model in MODELS.items():
        attrs = model.get_attributes()
        hash_key = range_key = ttl = None
        for attr in attrs.values():
            if attr.is_hash_key:
                hash_key = KeySpec(attr.attr_name, _key_type(attr.attr_type))
            elif attr.is_range_key:
                range_key = KeySpec(attr.attr_name, _key_type(attr.attr_type))
            if isinstance(attr, TTLAttribute):
                ttl = attr.attr_name
        assert hash_key is not None
        specs.append(TableSpec(logical, hash_key, range_key, ttl, TABLE_ENV[logical]))
    return specs


def bind_tables(names: Mapping[str, str] | None = None) -> None:
    """Point the models at their tables: those `names` gives (logical name → table name,
    from a function's validated settings, as each adapter's constructor passes its own),
    or, without `names`, every table the environment names (TableSettings: local mode's
    tools and the moto tests). Region and endpoint are boto3's (AwsSettings)."""
    aws = AwsSettings()
    tables = TableSettings().names() if names is None else names
    bound = [(logical, model) for logical, model in MODELS.items()]
    bound += [(logical, model) for logical, models in ITEM_TYPES.items() for model in models]
    for logical, model in bound:
        name = tables.get(logical)
        if name and (model.Meta.table_name != name or model.Meta.region != aws.region):
            model.Meta.table_name = name
            model.Meta.region = aws.region
            model._connection = None  # PynamoDB caches the connection per model
        if getattr(model.Meta, "host", None) != aws.endpoint_url:
            model.Meta.host = aws.endpoint_url
            model._connection = None


def bind_table(logical: str, name: str | None) -> None:
    """One model's table: `name` (a function's settings), or the environment's without."""
    bind_tables(None if name is None else {logical: name})
