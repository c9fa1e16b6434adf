"""DynamoDB tables as PynamoDB models. The CDK app and local mode read their key schemas
from here (table_specs), so infrastructure and code cannot drift."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pynamodb.attributes import (
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.models import Model

from nudge import constants as C


class _Base(Model):
    class Meta:
        table_name = "unbound"
        region = "us-east-1"


class ProfileRow(_Base):
    """The hot per-user item: one JSON document, written once per user per SQS batch."""

    class Meta:
        table_name = C.local_table_name(C.PROFILES)
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    state = UnicodeAttribute()
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


MODELS: dict[str, type[Model]] = {C.PROFILES: ProfileRow, C.KEYS: KeyRow}
TABLE_ENV = {C.PROFILES: C.ENV_PROFILES_TABLE, C.KEYS: C.ENV_KEYS_TABLE}


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: str  # "S" | "N" | "B"


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
        for name, attr in attrs.items():
            spec = KeySpec(attr.attr_name, attr.attr_type)
            if attr.is_hash_key:
                hash_key = spec
            elif attr.is_range_key:
                range_key = spec
            if isinstance(attr, TTLAttribute):
                ttl = attr.attr_name
            del name
        assert hash_key is not None
        specs.append(TableSpec(logical, hash_key, range_key, ttl, TABLE_ENV[logical]))
    return specs


def bind_tables() -> None:
    """Point the models at the tables named in the environment (set by CDK or local mode)."""
    from nudge.adapters.aws import region

    for logical, model in MODELS.items():
        name = os.environ.get(TABLE_ENV[logical])
        if name and (model.Meta.table_name != name or model.Meta.region != region()):
            model.Meta.table_name = name
            model.Meta.region = region()
            model._connection = None  # PynamoDB caches the connection per model
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if getattr(model.Meta, "host", None) != endpoint:
            model.Meta.host = endpoint
            model._connection = None
