"""The profile store on DynamoDB through PynamoDB: one JSON document per user, stored
zlib-compressed and written with optimistic locking (PynamoDB's VersionAttribute makes
every save conditional); and the dedup store, where a heavy user's profile moves the
fingerprints it cannot keep (docs/decisions.md D42)."""

from __future__ import annotations

import json
import queue
import threading
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from nudge import constants as C
from nudge.adapters.tables import DedupRow, ProfileRow, bind_table
from nudge.domain.clock import Clock, SystemClock, from_ms, to_ms
from nudge.domain.erase import TOMBSTONE_DAYS
from nudge.domain.errors import ConcurrentUpdateError, DependencyUnavailableError
from nudge.domain.ports import ScoreChange, StoredProfile
from nudge.domain.profile import Profile
from nudge.domain.sizes import encode_document

ZLIB_LEVEL = 6  # zlib's default: ~40 us for a 3 KB document, 2-3x smaller


def encode_state(doc: dict[str, Any]) -> bytes:
    """The stored form of a profile document: compact JSON in UTF-8 (non-ASCII text takes
    its UTF-8 bytes, not 6-12 bytes of \\u escapes: the profile's size caps are stated in
    these bytes, nudge.domain.sizes), zlib-compressed. Documents written with escapes
    read the same."""
    return zlib.compress(encode_document(doc), ZLIB_LEVEL)


def stored_document(profile: Profile) -> dict[str, Any]:
    """The profile's document as the store writes it (then encode_state): its stored form
    without the train function's fields, which are attributes of the item."""
    doc = profile.to_dict()
    for name in TRAINED_FIELDS:
        doc.pop(name, None)
    return doc


def decode_item(item: dict[str, Any]) -> dict[str, Any] | None:
    """The profile document of a raw DynamoDB item (boto3's low-level shape, as the AWS
    CLI shows it): `packed` (zlib JSON) or, written before compression, `state`."""
    if "packed" in item:
        doc = dict(json.loads(zlib.decompress(item["packed"]["B"])))
    elif "state" in item:
        doc = dict(json.loads(item["state"]["S"]))
    else:
        return None
    for name in TRAINED_FIELDS:  # the train function's, beside the document
        if "S" in item.get(name, {}):
            doc[name] = item[name]["S"]
    return doc


# The train function's fields: attributes of the item, not part of the packed document
TRAINED_FIELDS = ("segment", "rfm_score")
SCORE_WRITERS = 16  # UpdateItem calls in flight while training writes scores
SCAN_SEGMENTS = 4  # parallel Scan segments when training reads every profile


def _to_domain(row: ProfileRow) -> StoredProfile:
    if row.packed is not None:
        doc = json.loads(zlib.decompress(row.packed))
    else:
        doc = json.loads(row.state or "{}")
    profile = Profile.from_dict(doc)
    # written before they were attributes, they were in the document: kept until training
    # writes them (an item without the attributes keeps the document's values)
    if row.segment is not None or row.rfm_score is not None:
        profile.segment, profile.rfm_score = row.segment, row.rfm_score
    return StoredProfile(profile, row.version)


class DynamoDedup:
    """The dedup store: one DedupRow per fingerprint a profile moved out, keyed by the
    profile's id, expiring with the dedup window. `table`: the function's (None: the
    environment's)."""

    def __init__(self, *, table: str | None = None) -> None:
        bind_table(C.DEDUP, table)

    def put(self, user_id: str, fingerprints: Mapping[str, int]) -> None:
        """Stores fingerprint -> received minute (BatchWriteItem, 25 a request; PynamoDB
        sends the unprocessed ones again). A put of one stored before changes nothing."""
        with DedupRow.batch_write() as batch:
            for fp, minute in fingerprints.items():
                expires = minute * 60 + C.DEDUP_WINDOW_SECONDS
                batch.save(DedupRow(user_id, fp, expires_at=datetime.fromtimestamp(expires, UTC)))

    def find(self, user_ids: Sequence[str], fingerprints: Collection[str]) -> dict[str, int]:
        """Those of the fingerprints stored under any of the ids, with their received
        minute (BatchGetItem, strongly consistent: one read unit a key)."""
        keys = [(uid, fp) for uid in dict.fromkeys(user_ids) for fp in fingerprints]
        found: dict[str, int] = {}
        for row in DedupRow.batch_get(keys, consistent_read=True):
            expires = int(row.expires_at.timestamp())
            minute = (expires - C.DEDUP_WINDOW_SECONDS) // 60
            found[row.fp] = max(found.get(row.fp, minute), minute)
        return found

    def erase_user(self, user_id: str) -> int:
        """Deletes every fingerprint stored under the id (erase); how many."""
        rows = list(
            DedupRow.query(user_id, consistent_read=True, attributes_to_get=["user_id", "fp"])
        )
        with DedupRow.batch_write() as batch:
            for row in rows:
                batch.delete(row)
        return len(rows)


class DynamoProfileStore:
    """`table`: the profiles table of the function's settings (None: the environment's,
    nudge.adapters.tables.bind_tables); `clock` stamps `updated_at`; `dedup`: where a
    fold's evicted fingerprints go and are looked up (the process function's; a store
    without one refuses a save that would move fingerprints out, D42)."""

    def __init__(
        self,
        *,
        table: str | None = None,
        clock: Clock | None = None,
        dedup: DynamoDedup | None = None,
    ) -> None:
        bind_table(C.PROFILES, table)
        self._clock: Clock = clock or SystemClock()
        self._dedup = dedup

    def spilled(self, user_ids: Sequence[str], fingerprints: Collection[str]) -> dict[str, int]:
        return self._dedup_store().find(user_ids, fingerprints)

    def _dedup_store(self) -> DynamoDedup:
        if self._dedup is None:
            raise DependencyUnavailableError("this function's profile store has no dedup table")
        return self._dedup

    def _spill(self, stored: Sequence[StoredProfile]) -> None:
        """The fingerprints the folds moved out, stored before the profiles that drop them."""
        for s in stored:
            if s.profile.evicted:
                self._dedup_store().put(s.profile.user_id, s.profile.evicted)
                s.profile.evicted.clear()

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
        self._spill([stored])
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
        self._spill(stored)
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
            packed=encode_state(stored_document(stored.profile)),
            segment=stored.profile.segment,
            rfm_score=stored.profile.rfm_score,
            updated_at=to_ms(self._clock.now()) // 1000,
        )
        if stored.profile.erased:  # a tombstone lasts until nothing in flight can return
            erased_at = from_ms(int(stored.profile.extra[Profile.ERASED]))
            row.expires_at = erased_at + timedelta(days=TOMBSTONE_DAYS)
        if stored.version is not None:
            row.version = stored.version
        return row

    # ---- training (nudge.domain.ports.ProfileScores) ----------------------------------
    def scan(self) -> Iterator[Profile]:
        """Every profile: a parallel Scan (SCAN_SEGMENTS segments, eventually consistent:
        training is hourly), decoded as the pages come, a few pages held at most."""
        pages: queue.Queue[list[ProfileRow] | BaseException | None] = queue.Queue(maxsize=8)
        stop = threading.Event()  # the reader is gone: segments stop and return

        def put(item: list[ProfileRow] | BaseException | None) -> None:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def segment(i: int) -> None:
            try:
                page: list[ProfileRow] = []
                for row in ProfileRow.scan(segment=i, total_segments=SCAN_SEGMENTS):
                    if stop.is_set():
                        return
                    page.append(row)
                    if len(page) >= 200:
                        put(page)
                        page = []
                put(page)
            except BaseException as err:  # handed to the reader, raised there
                put(err)
            finally:
                put(None)

        with ThreadPoolExecutor(max_workers=SCAN_SEGMENTS) as pool:
            for i in range(SCAN_SEGMENTS):
                pool.submit(segment, i)
            try:
                done = 0
                while done < SCAN_SEGMENTS:
                    item = pages.get()
                    if item is None:
                        done += 1
                    elif isinstance(item, BaseException):
                        raise item
                    else:
                        for row in item:
                            yield _to_domain(row).profile
            finally:
                stop.set()

    def write_scores(self, changes: Sequence[ScoreChange]) -> int:
        """One UpdateItem per user: SET (or REMOVE) the two attributes and add 1 to the
        version, on condition that the item exists (an erased user stays erased). The
        packed document is not touched; a save that read the old version fails and is
        retried with the new values (D3)."""
        if not changes:
            return 0
        with ThreadPoolExecutor(max_workers=min(SCORE_WRITERS, len(changes))) as pool:
            return sum(pool.map(self._write_score, changes))

    def _write_score(self, change: ScoreChange) -> bool:
        actions: list[Action] = [ProfileRow.version.add(1)]
        for attr, value in (
            (ProfileRow.segment, change.segment),
            (ProfileRow.rfm_score, change.rfm_score),
        ):
            actions.append(attr.set(value) if value is not None else attr.remove())
        try:
            ProfileRow._get_connection().update_item(
                change.user_id,
                actions=actions,
                condition=ProfileRow.user_id.exists(),
            )
        except UpdateError as err:
            if err.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
