"""The archive rewritten without erased users, under moto (nudge.domain.purge through
S3ArchivePurge and the train function's run): a day after the erase, every object that
held an event of theirs is written back without it (GZIP as it was), other objects are
left as they were, the ids stay on the erased list, and the run's summary says so."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from typing import Any

import boto3
from nudge import constants as C
from nudge.adapters.erased import STATE_KEY, S3ArchivePurge, S3ErasedIds, id_digest
from nudge.domain.purge import SETTLE, purge_archive
from nudge.local.emulation import Resources

from tests.integration.conftest import Fn, basic, bearer, drain, http


def line(mid: str, user: str, anon: str | None = None) -> bytes:
    return (json.dumps({"message_id": mid, "user_id": user, "anonymous_id": anon}) + "\n").encode()


def objects(res: Resources) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=res.archive_bucket, Prefix=C.ARCHIVE_PREFIX
    ):
        for o in page.get("Contents", []):
            out[o["Key"]] = s3.get_object(Bucket=res.archive_bucket, Key=o["Key"])["Body"].read()
    return out


def etags(res: Resources) -> dict[str, str]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=res.archive_bucket, Prefix=C.ARCHIVE_PREFIX)
    return {o["Key"]: o["ETag"] for o in listed.get("Contents", [])}


def test_the_purge_rewrites_the_objects_that_hold_the_erased_ids_and_no_other(
    aws: Resources, clock: Any
) -> None:
    s3 = boto3.client("s3")
    hour = f"{C.ARCHIVE_PREFIX}{clock.now():%Y/%m/%d/%H}/"
    zipped, plain, other = f"{hour}a-1", f"{hour}a-2", f"{hour}a-3"
    s3.put_object(
        Bucket=aws.archive_bucket,
        Key=zipped,
        Body=gzip.compress(line("e1", "erin") + line("o1", "otto")),
    )
    s3.put_object(
        Bucket=aws.archive_bucket, Key=plain, Body=line("e2", "anon-e", "anon-e") + line("o2", "o")
    )
    s3.put_object(Bucket=aws.archive_bucket, Key=other, Body=line("o3", "otto"))
    S3ErasedIds(aws.archive_bucket).add(["erin", "anon-e"], at=clock.now())
    before = etags(aws)
    store = S3ArchivePurge(aws.archive_bucket)
    # not a day yet: nothing
    early = purge_archive(store, now=clock.now() + timedelta(hours=1), out_of_time=lambda: False)
    assert early.objects_read == 0 and etags(aws) == before
    # when a run comes a day after the erase
    out = purge_archive(store, now=clock.now() + SETTLE, out_of_time=lambda: False)
    # then the two objects are rewritten without them, GZIP still GZIP, the third untouched
    assert (out.ids_purged, out.objects_rewritten, out.lines_removed) == (2, 2, 2)
    now = objects(aws)
    assert now[zipped][:2] == b"\x1f\x8b" and gzip.decompress(now[zipped]) == line("o1", "otto")
    assert now[plain] == line("o2", "o")
    assert etags(aws)[other] == before[other]
    # the ids stay listed (what nudge archives of them later stays hidden); the state says
    # how far the list is purged, so the next run reads nothing
    assert {id_digest("erin"), id_digest("anon-e")} <= S3ErasedIds(aws.archive_bucket).digests()
    state = json.loads(s3.get_object(Bucket=aws.archive_bucket, Key=STATE_KEY)["Body"].read())
    assert state["current"] is None and state["purged_through"]
    again = purge_archive(store, now=clock.now() + 2 * SETTLE, out_of_time=lambda: False)
    assert again.objects_read == 0


def test_the_train_run_purges_an_erased_users_events_a_day_later(
    aws: Resources, clock: Any
) -> None:
    ingest, process, api, train = Fn(C.FN_INGEST), Fn(C.FN_PROCESS), Fn(C.FN_API), Fn(C.FN_TRAIN)
    batch = [
        {"type": "track", "userId": "erin", "event": "Product Viewed", "messageId": "e1"},
        {"type": "track", "userId": "otto", "event": "Product Viewed", "messageId": "o1"},
    ]
    sent = ingest(http("POST", "/v1/batch", {"batch": batch}, headers={"authorization": basic()}))
    assert sent["statusCode"] == 200
    drain(aws, process)
    assert b'"erin"' in b"".join(objects(aws).values())
    erased = api(http("DELETE", "/v1/users/erin", headers={"authorization": bearer()}))
    assert erased["statusCode"] == 202
    # when the train function runs a day later
    clock.set(clock.now() + SETTLE + timedelta(minutes=5))
    summary = train({})
    # then the archive holds nothing of erin, and otto's event is still there
    assert summary["archive_purge"]["ids_purged"] == 1, summary["archive_purge"]
    archived = b"".join(objects(aws).values())
    assert b'"erin"' not in archived and b'"o1"' in archived
