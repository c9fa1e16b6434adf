"""The train function under moto: from an archive in S3 and a profiles table to
artifacts under models/ and segment and RFM score on each profile; a second run with
nothing new writes nothing; a failing step keeps the last artifacts; training and a
concurrent profile save never undo each other."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from nudge import constants as C
from nudge.adapters.models import S3ModelStore
from nudge.adapters.profiles import DynamoProfileStore, decode_item
from nudge.domain.errors import ConcurrentUpdateError
from nudge.domain.ports import ScoreChange, StoredProfile
from nudge.domain.profile import Profile
from nudge.learn import train as training
from nudge.learn.train import CATALOG, SEGMENTS, TRAIN_RUN
from nudge.local.emulation import Resources

from tests.integration.conftest import Fn
from tests.train_support import Shop

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def seed(aws: Resources, shop: Shop) -> None:
    store = DynamoProfileStore()
    for p in shop.profiles():
        store.save(StoredProfile(p, None))
    s3 = boto3.client("s3")
    lines = shop.lines()
    half = len(lines) // 2
    # two hours of the archive: one object as Firehose writes it on AWS (GZIP), one plain
    s3.put_object(
        Bucket=aws.archive_bucket,
        Key=f"{C.ARCHIVE_PREFIX}2026/03/01/10/nudge-archive-1",
        Body=gzip.compress(b"".join(lines[:half])),
    )
    s3.put_object(
        Bucket=aws.archive_bucket,
        Key=f"{C.ARCHIVE_PREFIX}2026/03/02/11/nudge-archive-2",
        Body=b"".join(lines[half:]),
    )
    # an object of an hour before the window, which the run must not read
    s3.put_object(
        Bucket=aws.archive_bucket,
        Key=f"{C.ARCHIVE_PREFIX}2025/01/01/00/old",
        Body=lines[0].replace(b"Product Viewed", b"Product Added"),
    )


def artifact(aws: Resources, name: str) -> dict[str, Any]:
    body = boto3.client("s3").get_object(
        Bucket=aws.archive_bucket, Key=f"{C.MODELS_PREFIX}{name}.json.gz"
    )["Body"]
    return dict(json.loads(gzip.decompress(body.read())))


def raw_item(aws: Resources, user: str) -> dict[str, Any]:
    return boto3.client("dynamodb").get_item(
        TableName=aws.tables[C.PROFILES], Key={"user_id": {"S": user}}
    )["Item"]


@pytest.fixture
def train_fn(aws: Resources, clock: Any) -> Fn:
    return Fn(C.FN_TRAIN)


def test_training_writes_artifacts_and_each_users_scores(aws: Resources, train_fn: Fn) -> None:
    shop = Shop.make(NOW)
    seed(aws, shop)
    summary = train_fn({})
    assert summary["ok"] and summary["users"] == 60 and summary["profile_writes"] == 60
    assert summary["items"] == 10 and summary["k"] == 3
    assert set(summary["segments"]) == {"frequent buyers", "cart abandoners", "new visitors"}
    segments = artifact(aws, SEGMENTS)
    assert segments["k"] == 3 and len(segments["clusters"]) == 3
    assert artifact(aws, CATALOG)["items"]["p1"]["name"] == "Product 1"
    assert artifact(aws, TRAIN_RUN)["profile_writes"] == 60
    store = DynamoProfileStore()
    for user in shop.events:
        got = store.get(user)
        assert got is not None
        if shop.kind_of(user) == "buyer":
            assert got.profile.segment == "frequent buyers"
            assert got.profile.rfm_score is not None and len(got.profile.rfm_score) == 3
        else:
            assert got.profile.rfm_score is None
    item = raw_item(aws, "buyer-0")
    assert item["segment"] == {"S": "frequent buyers"}
    assert decode_item(item)["segment"] == "frequent buyers"  # type: ignore[index]


def test_a_second_run_with_nothing_new_writes_nothing(aws: Resources, train_fn: Fn) -> None:
    seed(aws, Shop.make(NOW))
    train_fn({})
    versions = {u: raw_item(aws, u)["version"] for u in ("buyer-1", "adder-1", "visitor-1")}
    again = train_fn({})
    assert again["ok"] and again["profile_writes"] == 0
    assert {u: raw_item(aws, u)["version"] for u in versions} == versions


def test_a_failing_step_keeps_the_last_artifacts(
    aws: Resources, train_fn: Fn, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(aws, Shop.make(NOW))
    train_fn({})
    good = artifact(aws, SEGMENTS), artifact(aws, CATALOG)

    def broken(data: Any, out: Any, store: Any) -> None:
        out.artifacts[SEGMENTS] = {"version": 0}  # computed, then the step fails
        raise RuntimeError("the step broke")

    monkeypatch.setattr(training, "STEPS", (*training.STEPS, ("items", broken)))
    store = DynamoProfileStore()
    stored = store.get("adder-2")
    assert stored is not None
    stored.profile.segment = "someone else's"
    store.save(stored)
    with pytest.raises(training.TrainingError):
        train_fn({})
    assert (artifact(aws, SEGMENTS), artifact(aws, CATALOG)) == good
    run = artifact(aws, TRAIN_RUN)
    assert run["ok"] is False and run["errors"] == ["items: RuntimeError: the step broke"]
    assert raw_item(aws, "adder-2")["segment"] == {"S": "someone else's"}  # not written


def test_a_save_that_read_before_training_is_retried_and_keeps_the_scores(aws: Resources) -> None:
    store = DynamoProfileStore()
    shop = Shop.make(NOW, per_kind=1)
    for p in shop.profiles():
        store.save(StoredProfile(p, None))
    read_before = store.get("buyer-0")
    assert read_before is not None
    assert store.write_scores([ScoreChange("buyer-0", "frequent buyers", "555")]) == 1
    read_before.profile.event_counts["Later"] = 1
    with pytest.raises(ConcurrentUpdateError):
        store.save(read_before)  # would have erased training's values: refused
    again = store.get("buyer-0")
    assert again is not None and again.profile.segment == "frequent buyers"
    again.profile.event_counts["Later"] = 1
    store.save(again)  # the retry keeps them
    after = store.get("buyer-0")
    assert after is not None
    assert (after.profile.segment, after.profile.rfm_score) == ("frequent buyers", "555")
    assert after.profile.event_counts["Later"] == 1
    # the packed document does not hold them: only the item's own attributes do
    packed = json.loads(zlib.decompress(raw_item(aws, "buyer-0")["packed"]["B"]))
    assert "segment" not in packed and "rfm_score" not in packed


def test_training_never_creates_an_erased_user(aws: Resources) -> None:
    store = DynamoProfileStore()
    assert store.write_scores([ScoreChange("gone", "new visitors", None)]) == 0
    assert "Item" not in boto3.client("dynamodb").get_item(
        TableName=aws.tables[C.PROFILES], Key={"user_id": {"S": "gone"}}
    )


def test_a_score_set_to_none_is_removed(aws: Resources) -> None:
    store = DynamoProfileStore()
    user = "buyer-0"
    store.save(StoredProfile(Profile(user), None))
    store.write_scores([ScoreChange(user, "frequent buyers", "545")])
    store.write_scores([ScoreChange(user, "frequent buyers", None)])
    assert "rfm_score" not in raw_item(aws, user)
    got = store.get(user)
    assert got is not None and got.profile.rfm_score is None


def test_readers_load_an_artifact_once_per_cache_period(aws: Resources) -> None:
    ticks = [0.0]
    writer = S3ModelStore(aws.archive_bucket)
    reader = S3ModelStore(aws.archive_bucket, cache_seconds=60, monotonic=lambda: ticks[0])
    assert reader.load(CATALOG) is None
    writer.save(CATALOG, {"items": {"p1": {"name": "A"}}})
    assert reader.load(CATALOG) is None  # the answer is cached for the period
    ticks[0] = 61
    assert reader.load(CATALOG) == {"items": {"p1": {"name": "A"}}}
    for _ in range(5):
        reader.load(CATALOG)
    assert reader.gets == 2
    ticks[0] = 200
    assert reader.load(CATALOG) == {"items": {"p1": {"name": "A"}}}  # unchanged: revalidated
    assert reader.gets == 3


def test_the_parallel_scan_yields_every_profile_once(aws: Resources) -> None:
    store = DynamoProfileStore()
    users = [f"scan-{i}" for i in range(450)]
    for u in users:
        store.save(StoredProfile(Profile(u), None))
    assert sorted(p.user_id for p in store.scan()) == sorted(users)


def test_the_archive_reader_reads_every_object_of_the_window_a_few_at_a_time(
    aws: Resources,
) -> None:
    from nudge.adapters.archive import S3ArchiveLines

    s3 = boto3.client("s3")
    for hour in range(5):
        for part in range(7):
            body = b"".join(f'{{"n":"{hour}-{part}-{i}"}}\n'.encode() for i in range(3))
            s3.put_object(
                Bucket=aws.archive_bucket,
                Key=f"{C.ARCHIVE_PREFIX}2026/03/02/{hour + 6:02d}/part-{part}",
                Body=gzip.compress(body) if part % 2 else body,
            )
    reader = S3ArchiveLines(aws.archive_bucket, readers=3)
    got = list(
        reader.lines(
            since=datetime(2026, 3, 2, 7, 30, tzinfo=UTC),
            until=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        )
    )
    expected = {f"{h}-{p}-{i}" for h in (1, 2, 3) for p in range(7) for i in range(3)}
    assert sorted(json.loads(line)["n"] for line in got) == sorted(expected)
    assert reader.objects == 21
