"""The profile store on DynamoDB through PynamoDB: one JSON document per user, written
with optimistic locking (PynamoDB's VersionAttribute makes every save conditional)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from nudge.adapters.tables import ProfileRow, bind_tables
from nudge.domain.errors import ConcurrentUpdateError
from nudge.domain.ports import StoredProfile
from nudge.domain.profile import Profile


def _to_domain(row: ProfileRow) -> StoredProfile:
    return StoredProfile(Profile.from_dict(json.loads(row.state)), row.version)


class DynamoProfileStore:
    def __init__(self) -> None:
        bind_tables()

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

    @staticmethod
    def _row(stored: StoredProfile) -> ProfileRow:
        row = ProfileRow(
            stored.profile.user_id,
            state=json.dumps(stored.profile.to_dict(), separators=(",", ":"), sort_keys=True),
            updated_at=int(time.time()),
        )
        if stored.version is not None:
            row.version = stored.version
        return row
