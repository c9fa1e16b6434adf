"""The profile store on DynamoDB through PynamoDB: one JSON document per user, stored
zlib-compressed and written with optimistic locking (PynamoDB's VersionAttribute makes
every save conditional)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from nudge import constants as C
from nudge.adapters.tables import ProfileRow, bind_table
from nudge.domain.clock import Clock, SystemClock, from_ms, to_ms
from nudge.domain.erase import TOMBSTONE_DAYS
from nudge.domain.errors import ConcurrentUpdateError
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile
from nudge.domain.sizes import encode_document

ZLIB_LEVEL = 6  # zlib's default: ~40 us for a 3 KB document, 2-3x smaller


def encode_state(doc: dict[str, Any]) -> bytes:
    """The stored form of a profile document: compact JSON in UTF-8 (non-ASCII text takes
    its UTF-8 bytes, not 6-12 bytes of \\u escapes: the profile's size caps are stated in
    these bytes, nudge.domain.sizes), zlib-compressed. Documents written with escapes
    read the same."""
    return zlib.compress(encode_document(doc), ZLIB_LEVEL)


def decode_item(item: dict[str, Any]) -> dict[str, Any] | None:
    """The profile document of a raw DynamoDB item (boto3's low-level shape, as the AWS
    CLI shows it): `packed` (zlib JSON) or, written before compression, `state`."""
    if "packed" in item:
        return dict(json.loads(zlib.decompress(item["packed"]["B"])))
    if "state" in item:
        return dict(json.loads(item["state"]["S"]))
    return None


def _to_domain(row: ProfileRow) -> StoredProfile:
    if row.packed is not None:
        doc = json.loads(zlib.decompress(row.packed))
    else:
        doc = json.loads(row.state or "{}")
    return StoredProfile(Profile.from_dict(doc), row.version)


class DynamoProfileStore:
    """`table`: the profiles table of the function's settings (None: the environment's,
    nudge.adapters.tables.bind_tables); `clock` stamps `updated_at`."""

    def __init__(self, *, table: str | None = None, clock: Clock | None = None) -> None:
        bind_table(C.PROFILES, table)
        self._clock: Clock = clock or SystemClock()

    def get(self, user_id: str) -> StoredProfile | None:
        try:
            return _to_domain(ProfileRow.get(user_id, consistent_read=True))
        except DoesNotExist:
            return None

    def get_many(self, user_ids: Iterable[str]) -> dict[str, StoredProfile]:
        keys = list(dict.fromkeys(u for u in user_ids if u))
        if not keys:
            return {}
        if len(keys) == 1:
            one = self.get(keys[0])
            return {keys[0]: one} if one else {}
        return {
            row.user_id: _to_domain(row) for row in ProfileRow.batch_get(keys, consistent_read=True)
        }

    def save(self, stored: StoredProfile) -> None:
        row = self._row(stored)
        try:
            row.save()
        except PutError as err:
            if err.cause_response_code == "ConditionalCheckFailedException":
                raise ConcurrentUpdateError(
                    f"profile {stored.profile.user_id} changed concurrently"
                ) from err
            raise
        stored.version = row.version

    def delete(self, user_id: str) -> None:
        ProfileRow(user_id).delete()

    def save_all(self, stored: Sequence[StoredProfile]) -> None:
        rows = [self._row(s) for s in stored]
        try:
            with TransactWrite(connection=ProfileRow._get_connection().connection) as tx:
                for row in rows:
                    tx.save(row)
        except TransactWriteError as err:
            if (
                "ConditionalCheckFailed" in str(err.cause_response_message)
                or err.cause_response_code == "TransactionCanceledException"
            ):
                raise ConcurrentUpdateError("a merged profile changed concurrently") from err
            raise
        for s, row in zip(stored, rows, strict=True):
            s.version = row.version

    def _row(self, stored: StoredProfile) -> ProfileRow:
        row = ProfileRow(
            stored.profile.user_id,
            packed=encode_state(stored.profile.to_dict()),
            updated_at=to_ms(self._clock.now()) // 1000,
        )
        if stored.profile.erased:  # a tombstone lasts until nothing in flight can return
            erased_at = from_ms(int(stored.profile.extra[Profile.ERASED]))
            row.expires_at = erased_at + timedelta(days=TOMBSTONE_DAYS)
        if stored.version is not None:
            row.version = stored.version
        return row
