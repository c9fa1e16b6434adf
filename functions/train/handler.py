"""train: invoked by a recurring EventBridge Scheduler schedule (hourly by default) and,
in local mode, by `POST /_local/train` and the local clock. Reads every profile and the
archive's recent interactions, computes RFM scores, k-means segments and the catalog
(nudge.learn.train), saves the artifacts under models/ of the archive bucket and writes
each user's segment and RFM score where it changed.

Scheduler invokes it asynchronously: a run that raises is retried by Lambda (the
function's EventInvokeConfig, infra/constructs/training.py) and then kept, with its
error, on the training failures queue. A failed run saves nothing but its summary
(`models/train_run.json.gz`): the last good artifacts and scores stay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge import runtime
from nudge.adapters.archive import S3ArchiveLines
from nudge.adapters.erased import S3ErasedIds
from nudge.adapters.models import S3ModelStore
from nudge.adapters.profiles import DynamoProfileStore
from nudge.constants import RECS_HIT_RATE, RECS_REJECTED
from nudge.domain.ports import ArchiveLines, ModelStore, ProfileScores
from nudge.learn.train import TrainConfig, TrainingError, run_training
from nudge.observability import logger, metrics, tracer
from nudge.settings import TrainSettings


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

    @classmethod
    def from_settings(cls, s: TrainSettings) -> Deps:
        return cls(
            profiles=DynamoProfileStore(table=s.profiles_table),
            archive=S3ArchiveLines(s.archive_bucket),
            models=S3ModelStore(s.models_bucket, cache_seconds=0),
            config=TrainConfig(window_days=s.window_days, k_min=s.k_min, k_max=s.k_max),
            erased=S3ErasedIds(s.archive_bucket).digests,
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
    logger.info("train run", extra={"summary": summary})
    return summary
