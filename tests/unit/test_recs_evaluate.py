"""`nudge recs evaluate` and nudge.learn.evaluate on generated interactions: the split, the
ranking, the baselines, the CSV's timestamp forms and the command's output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nudge.cli import build_app
from nudge.learn.evaluate import (
    InteractionsFileError,
    als_available,
    evaluate,
    leave_last_out,
    metrics,
    read_interactions,
)
from nudge.learn.items import encode
from typer.testing import CliRunner

from tests.recs_support import interactions, write_csv

ROWS = interactions(users=200)  # about 4,000 interactions


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("recs") / "interactions.csv", ROWS)


@pytest.fixture(scope="module")
def result(csv_path: Path) -> dict[str, object]:
    return evaluate(read_interactions(csv_path), k=10)


def test_the_model_beats_popularity_by_far(result: dict[str, dict[str, float]]) -> None:
    assert 3000 < len(ROWS) < 6000
    assert result["model"]["hr"] >= 3 * result["popularity"]["hr"]
    assert result["model"]["ndcg"] > result["popularity"]["ndcg"]


@pytest.mark.skipif(not als_available(), reason="implicit is not installed")
def test_the_model_beats_als_by_more_than_30_percent(result: dict[str, dict[str, float]]) -> None:
    assert result["model"]["hr"] >= 1.3 * result["als"]["hr"]


def test_leave_last_out_holds_out_each_users_last_item_with_its_trailing_run() -> None:
    rows = [
        ("a", "x", "Product Viewed", 1),
        ("a", "y", "Product Viewed", 2),
        ("a", "x", "Product Viewed", 3),  # x again: not part of the trailing run of z
        ("a", "z", "Product Viewed", 4),
        ("a", "z", "Product Added", 5),
        ("a", "z", "Order Completed", 6),
        ("b", "y", "Product Viewed", 1),  # b's only item: nothing left to learn from
        ("c", "z", "Product Viewed", 9),
        ("c", "y", "Product Viewed", 8),  # out of order in the file
    ]
    data = encode(rows)
    split = leave_last_out(data)

    held = {
        data.user_ids[u]: data.item_ids[i] for u, i in zip(split.users, split.targets, strict=True)
    }
    assert held == {"a": "z", "c": "z"}
    train = sorted(
        (data.user_ids[u], data.item_ids[i], int(t))
        for u, i, t in zip(split.train.users, split.train.items, split.train.times, strict=True)
    )
    assert train == [("a", "x", 1), ("a", "x", 3), ("a", "y", 2), ("c", "y", 8)]


def test_metrics_of_ranks() -> None:
    m = metrics(np.array([0, 1, 9, 10, 500]), 10)
    assert m["hr"] == pytest.approx(0.6)
    assert m["ndcg"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(11)) / 5, abs=1e-4)


@pytest.mark.parametrize("form", ["ms", "iso"])
def test_timestamps_in_seconds_ms_or_iso_read_alike(tmp_path: Path, form: str) -> None:
    rows = ROWS[:300]
    seconds = read_interactions(write_csv(tmp_path / "s.csv", rows))
    other = read_interactions(write_csv(tmp_path / f"{form}.csv", rows, timestamps=form))

    # (seconds lose the milliseconds)
    assert np.array_equal(seconds.times // 1000, other.times // 1000)
    assert seconds.item_ids == other.item_ids and np.array_equal(seconds.codes, other.codes)
    assert set(seconds.codes.tolist()) == {0, 1, 2}


def test_a_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item\n1,2\n")
    with pytest.raises(InteractionsFileError, match="line 1"):
        read_interactions(bad)
    bad.write_text("user_id,item_id,timestamp\n1,2,yesterday\n")
    with pytest.raises(InteractionsFileError, match="line 2"):
        read_interactions(bad)


def test_the_command_prints_the_json_of_spec(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "tiny.csv", ROWS[:600])

    got = CliRunner().invoke(
        build_app(), ["recs", "evaluate", "--interactions", str(path), "--k", "5", "--json"]
    )

    assert got.exit_code == 0, got.output
    doc = json.loads(got.stdout)
    assert set(doc) == {"model", "popularity", "k"} | ({"als"} if als_available() else set())
    assert doc["k"] == 5
    for name in set(doc) - {"k"}:
        assert set(doc[name]) == {"hr", "ndcg"}
        assert 0 <= doc[name]["ndcg"] <= doc[name]["hr"] <= 1


def test_the_command_prints_a_table_and_refuses_a_bad_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "tiny.csv", ROWS[:600])
    got = CliRunner().invoke(build_app(), ["recs", "evaluate", "--interactions", str(path)])
    assert got.exit_code == 0, got.output
    assert "HR@10" in got.stdout and "popularity" in got.stdout

    missing = CliRunner().invoke(
        build_app(), ["recs", "evaluate", "--interactions", str(tmp_path / "none.csv")]
    )
    assert missing.exit_code == 2
