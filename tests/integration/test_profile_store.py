"""The DynamoDB profile store (moto): the document stored zlib-compressed in `packed`,
items written before compression (plain JSON in `state`) still read."""

from __future__ import annotations

import json

import boto3
from nudge import constants as C
from nudge.adapters.profiles import DynamoProfileStore, decode_item, encode_state
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile
from nudge.local.emulation import Resources


def _raw(aws: Resources, user_id: str) -> dict:  # type: ignore[type-arg]
    client = boto3.client("dynamodb")
    key = {"user_id": {"S": user_id}}
    return client.get_item(TableName=aws.tables[C.PROFILES], Key=key)["Item"]


def test_a_profile_is_stored_compressed_and_reads_back_equal(aws: Resources) -> None:
    store = DynamoProfileStore()
    profile = Profile(user_id="u1", traits={"email": "a@example.com"})
    profile.event_counts = {f"Event {i}": i for i in range(200)}
    store.save(StoredProfile(profile, None))
    item = _raw(aws, "u1")
    assert "state" not in item and "packed" in item
    plain = json.dumps(profile.to_dict(), separators=(",", ":"), sort_keys=True)
    assert len(item["packed"]["B"]) < len(plain) / 2
    assert decode_item(item) == profile.to_dict()
    got = store.get("u1")
    assert got is not None and got.profile.to_dict() == profile.to_dict()
    assert store.get_many(["u1", "nobody"])["u1"].profile.to_dict() == profile.to_dict()


def test_an_item_written_before_compression_still_reads(aws: Resources) -> None:
    doc = {"user_id": "old", "event_counts": {"Seen": 3}}
    boto3.client("dynamodb").put_item(
        TableName=aws.tables[C.PROFILES],
        Item={"user_id": {"S": "old"}, "state": {"S": json.dumps(doc)}, "version": {"N": "1"}},
    )
    got = DynamoProfileStore().get("old")
    assert got is not None and got.profile.event_counts == {"Seen": 3}
    store = DynamoProfileStore()
    store.save(got)  # written back compressed, the version check passing
    assert "packed" in _raw(aws, "old") and "state" not in _raw(aws, "old")
    assert decode_item(_raw(aws, "old"))["event_counts"] == {"Seen": 3}  # type: ignore[index]


def test_encode_state_is_deterministic() -> None:
    assert encode_state({"b": 1, "a": [1, 2]}) == encode_state({"a": [1, 2], "b": 1})
