"""The train function's handler on in-memory ports (its `deps` argument), without moto:
the run's summary out, the users' scores written; a failed run raises after saving its
summary. The same handler runs against moto in tests/integration/test_train_handler.py."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from nudge import runtime
from nudge.learn.train import TRAIN_RUN, TrainConfig, TrainingError
from nudge.local.lambdas import Function, LambdaContext

from tests.fakes import (
    NOW,
    MemoryArchiveLines,
    MemoryModelStore,
    MemoryProfileScores,
    MemoryProfileStore,
    frozen_clock,
)
from tests.train_support import Shop


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return Function.load_module("train")


@pytest.fixture(autouse=True)
def clock() -> Any:
    previous = runtime.clock()
    runtime.set_clock(frozen_clock())
    yield
    runtime.set_clock(previous)


def test_a_run_returns_its_summary_and_scores_the_users(module: ModuleType) -> None:
    shop = Shop.make(NOW, per_kind=10)
    store = MemoryProfileStore(shop.profiles())
    models = MemoryModelStore()
    deps = module.Deps(
        MemoryProfileScores(store), MemoryArchiveLines(shop.lines()), models, TrainConfig()
    )
    out = module.handler({}, LambdaContext("nudge-train"), deps=deps)
    assert out["ok"] and out["users"] == 30 and out["profile_writes"] == 30
    assert out["started"].startswith("2026-03-02T12:00:00")
    assert store.profile("buyer-1").segment == "frequent buyers"
    assert models.docs[TRAIN_RUN] == out


def test_a_failed_run_raises_after_saving_its_summary(module: ModuleType) -> None:
    models = MemoryModelStore()
    models.fail_saves = {"segments"}
    shop = Shop.make(NOW, per_kind=3)
    store = MemoryProfileStore(shop.profiles())
    deps = module.Deps(
        MemoryProfileScores(store), MemoryArchiveLines(shop.lines()), models, TrainConfig()
    )
    with pytest.raises(TrainingError):
        module.handler({}, LambdaContext("nudge-train"), deps=deps)
    assert models.docs[TRAIN_RUN]["ok"] is False
    assert "OSError: cannot save segments" in models.docs[TRAIN_RUN]["errors"][0]
    assert store.profile("buyer-1").segment is None  # no score written after the failure
