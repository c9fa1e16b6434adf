"""train: invoked by a recurring EventBridge Scheduler schedule (hourly by default) and,
in local mode, by `POST /_local/train` and the local clock. First the archive's purge
step (nudge.domain.purge): the objects that hold events of users erased a day ago are
rewritten without them, a few minutes of it per run at most, and ids purged a day ago
leave the erased list. Then it reads every profile and the archive's recent
interactions, computes RFM scores, k-means segments and the catalog (nudge.learn.train),
saves the artifacts under models/ of the archive bucket and writes each user's segment
and RFM score where it changed.

Scheduler invokes it asynchronously: a run that raises is retried by Lambda (the
function's EventInvokeConfig, infra/constructs/training.py) and then kept, with its
error, on the training failures queue. A failed run saves nothing but its summary
(`models/train_run.json.gz`): the last good artifacts and scores stay."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge import runtime
from nudge.adapters.archive import S3ArchiveLines
from nudge.adapters.erased import S3ArchivePurge, S3ErasedIds
from nudge.adapters.models import S3ModelStore
from nudge.adapters.profiles import DynamoProfileStore
from nudge.constants import RECS_HIT_RATE, RECS_REJECTED
from nudge.domain.ports import ArchiveLines, ModelStore, ProfileScores
from nudge.domain.purge import ArchivePurge, purge_archive
from nudge.learn.train import TrainConfig, TrainingError, run_training
from nudge.observability import logger, metrics, tracer
from nudge.settings import TrainSettings

PURGE_BUDGET_SECONDS = 180.0  # the purge step's at most, and at most a fifth of the run's


@dataclass
class Deps:
    """What the train function talks to. `from_settings` wires the AWS adapters once per
    cold start; a test passes others to `handler`."""

    profiles: ProfileScores
    archive: ArchiveLines
    models: ModelStore
    config: TrainConfig
    # the digests of erased ids (their archived events train nothing); None: none
    erased: Callable[[], frozenset[str]] | None = None
    # the archive's rewrite without erased users (None: not done here)
    purge: ArchivePurge | None = None

    @classmethod
    def from_settings(cls, s: TrainSettings) -> Deps:
        return cls(
            profiles=DynamoProfileStore(table=s.profiles_table),
            archive=S3ArchiveLines(s.archive_bucket),
            models=S3ModelStore(s.models_bucket, cache_seconds=0),
            config=TrainConfig(window_days=s.window_days, k_min=s.k_min, k_max=s.k_max),
            erased=S3ErasedIds(s.archive_bucket).digests,
            purge=S3ArchivePurge(s.archive_bucket),
        )


@cache
def deps() -> Deps:
    """The AWS adapters, built at cold start (local mode and tests clear the cache)."""
    return Deps.from_settings(TrainSettings())


def _cold_start_deps() -> Deps:
    return deps()  # the module's deps(): handler's argument of that name hides it


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(
    event: dict[str, Any], context: LambdaContext, deps: Deps | None = None
) -> dict[str, Any]:
    """`deps` (by keyword: Powertools' tracer passes keywords only) replaces the AWS
    adapters. The event (the schedule's Input) carries nothing the run needs."""
    d = deps if deps is not None else _cold_start_deps()
    clock = runtime.clock()
    purged = _purge(d, clock.now(), context)
    try:
        summary = run_training(
            profiles=d.profiles,
            archive=d.archive,
            store=d.models,
            now=clock.now(),
            config=d.config,
            erased=d.erased,
        )
    except TrainingError as err:
        metrics.add_metric("TrainFailed", MetricUnit.Count, 1)
        logger.error("train run failed", extra={"summary": err.summary})
        raise
    metrics.add_metric("TrainUsers", MetricUnit.Count, summary["users"])
    metrics.add_metric("TrainProfileWrites", MetricUnit.Count, summary["profile_writes"])
    metrics.add_metric("TrainSeconds", MetricUnit.Seconds, summary["duration_seconds"])
    validation = summary.get("items_validation") or {}
    if validation.get("hr_candidate") is not None:  # the recommender, scored on the last day
        metrics.add_metric(RECS_HIT_RATE, MetricUnit.Count, validation["hr_candidate"])
        metrics.add_metric(RECS_REJECTED, MetricUnit.Count, 0 if validation["promoted"] else 1)
    if purged is not None:
        summary["archive_purge"] = purged
    logger.info("train run", extra={"summary": summary})
    return summary


def _purge(d: Deps, now: datetime, context: LambdaContext) -> dict[str, Any] | None:
    """The purge step, within PURGE_BUDGET_SECONDS and a fifth of the invocation's time
    (the rest is training's). Its failure is logged and counted, and training runs all
    the same: the next run takes the pass on again (docs/erase.md)."""
    if d.purge is None:
        return None
    remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: 900_000)()
    budget = min(PURGE_BUDGET_SECONDS, remaining_ms / 1000 / 5)
    started = time.monotonic()

    def out_of_time() -> bool:
        return time.monotonic() - started > budget

    try:
        result = purge_archive(d.purge, now=now, out_of_time=out_of_time)
    except Exception as err:  # training does not wait on it
        metrics.add_metric("PurgeFailed", MetricUnit.Count, 1)
        logger.exception("archive purge failed", extra={"error": repr(err)})
        return {"error": repr(err)}
    metrics.add_metric("PurgedLines", MetricUnit.Count, result.lines_removed)
    return result.view()
