"""The train run: one read of the inputs, a sequence of steps, then the artifacts and the
users' scores written (docs/personalization.md, "Training").

1. read: every profile (ProfileScores.scan) and the archive's lines of the last
   `window_days` (ArchiveLines), in one pass each (nudge.domain.training);
2. steps (STEPS, in order): each reads the TrainData and adds to the TrainOutput:
   `rfm` (scores), `segments` (k-means), `catalog` (merged into the previous one);
3. if every step succeeded: each artifact is saved (ModelStore), then each user whose
   segment or RFM score changed gets them written (ProfileScores.write_scores). If a step
   (or the read) failed, nothing is saved or written: the last good artifacts and scores
   stay. Either way the run's summary is saved as the artifact `train_run`.

A step is `(name, function(data, output, store))`; to add one (the recommender's item
model), append it to STEPS, e.g.

    def items_step(data: TrainData, out: TrainOutput, store: ModelStore) -> None:
        model = fit_item_model(data.interactions, now_ms=data.now_ms)
        out.artifacts[ITEMS] = model.to_dict()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nudge.domain.catalog import ARTIFACT as CATALOG_ARTIFACT
from nudge.domain.catalog import Catalog
from nudge.domain.clock import iso, to_ms
from nudge.domain.errors import NudgeError
from nudge.domain.ports import ArchiveLines, ModelStore, ProfileScores, ScoreChange
from nudge.domain.rfm import RfmInput, rfm_scores
from nudge.domain.training import ArchiveExtract, Interaction, ProfileFacts, trained_profiles
from nudge.learn.segments import (
    DEFAULT_K_MAX,
    DEFAULT_K_MIN,
    DEFAULT_SEED,
    DEFAULT_SILHOUETTE_SAMPLE,
    UserFeatures,
    fit_segments,
)

# Artifact names (ModelStore)
SEGMENTS = "segments"
CATALOG = CATALOG_ARTIFACT
CATALOG_STAMPS = "catalog_stamps"  # when each catalog attribute was seen (train only)
ITEMS = "items"  # the recommender's item model
TRAIN_RUN = "train_run"

DAY_MS = 86_400_000
DEFAULT_WINDOW_DAYS = 90


class TrainingError(NudgeError):
    """A train run failed: nothing it computed was saved (the summary says why)."""

    code = "training_failed"

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message, [{"error": e} for e in summary.get("errors", [])])
        self.summary = summary


@dataclass(frozen=True)
class TrainConfig:
    window_days: int = DEFAULT_WINDOW_DAYS  # how much of the archive is read
    k_min: int = DEFAULT_K_MIN
    k_max: int = DEFAULT_K_MAX
    silhouette_sample: int = DEFAULT_SILHOUETTE_SAMPLE
    seed: int = DEFAULT_SEED


@dataclass
class TrainData:
    """The inputs every step reads (read once per run)."""

    now_ms: int
    config: TrainConfig
    profiles: list[ProfileFacts]
    interactions: list[Interaction]  # (user_id, item_id, event, t_ms), by user and time
    catalog: Catalog  # the products described in the window (catalog_step merges it)
    abandonments: dict[str, int]  # user -> cart abandonments in the window
    lines: int = 0  # archive lines read
    unreadable: int = 0  # product lines skipped: not an archive record of this version


@dataclass
class TrainOutput:
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)  # user -> segment name
    rfm: dict[str, str] = field(default_factory=dict)  # user -> "545"
    stats: dict[str, Any] = field(default_factory=dict)  # for the run's summary


Step = Callable[[TrainData, TrainOutput, ModelStore], None]


def rfm_step(data: TrainData, out: TrainOutput, store: ModelStore) -> None:
    out.rfm = rfm_scores(
        (RfmInput(p.user_id, p.last_order_ms, p.orders, p.revenue) for p in data.profiles),
        now_ms=data.now_ms,
    )
    out.stats["rfm_scored"] = len(out.rfm)


def features_of(data: TrainData) -> list[UserFeatures]:
    return [
        UserFeatures(
            user_id=p.user_id,
            recency_days=(
                max(0, data.now_ms - p.last_seen_ms) / DAY_MS if p.last_seen_ms is not None else 0.0
            ),
            orders=p.orders,
            revenue=max(0.0, p.revenue),
            sessions=p.sessions,
            session_minutes=p.session_seconds / 60,
            page_views=p.page_views,
            cart_adds=p.cart_adds,
            abandonments=data.abandonments.get(p.user_id, 0),
        )
        for p in data.profiles
    ]


def segments_step(data: TrainData, out: TrainOutput, store: ModelStore) -> None:
    cfg = data.config
    model = fit_segments(
        features_of(data),
        k_min=cfg.k_min,
        k_max=cfg.k_max,
        silhouette_sample=cfg.silhouette_sample,
        seed=cfg.seed,
    )
    out.segments = model.assignments
    out.artifacts[SEGMENTS] = model.to_dict(trained_at_ms=data.now_ms)
    out.stats.update(
        k=model.k,
        silhouette=model.silhouette,
        segments={c.name: c.size for c in model.clusters},
    )


def catalog_step(data: TrainData, out: TrainOutput, store: ModelStore) -> None:
    previous = Catalog.from_dict(store.load(CATALOG), store.load(CATALOG_STAMPS))
    catalog = previous.absorb(data.catalog)
    out.artifacts[CATALOG] = catalog.to_dict()
    out.artifacts[CATALOG_STAMPS] = catalog.stamps_dict()
    out.stats["items"] = len(catalog)


VALIDATION_DAYS = 1  # the most recent day: held out, the candidate model is scored on it
VALIDATION_USERS = 2_000  # users scored (a deterministic sample beyond that)
VALIDATION_K = 10
_CODES = {"Product Viewed": "v", "Product Added": "a", "Order Completed": "p"}


def _recent(history: list[Interaction], limit: int = 20) -> list[list[Any]]:
    """A user's interactions in the profile's `recent_items` shape (newest first)."""
    return [[item, _CODES.get(event, "v"), t] for _u, item, event, t in history[::-1][:limit]]


def _hit_rate(
    model: Any, cases: Sequence[tuple[list[list[Any]], str]], *, popularity: bool = False
) -> float | None:
    """HR@10 of `model` served as the api serves it (nudge.domain.recommend, without
    exploration): the share of cases whose next item is among the 10 shown."""
    from nudge.domain.recommend import recommend

    if not cases:
        return None
    hits = 0
    for recent, target in cases:
        shown = recommend(
            model,
            [] if popularity else recent,
            exclude=[r[0] for r in recent],
            limit=VALIDATION_K,
            exploration=0.0,
            diversity=False,
        )
        hits += any(item["item_id"] == target for item in shown)
    return round(hits / len(cases), 4)


def validation_cases(
    interactions: Sequence[Interaction], cutoff_ms: int
) -> tuple[list[Interaction], list[tuple[list[list[Any]], str]]]:
    """The interactions before `cutoff_ms` (to fit on), and for each user with some, the
    first item after the cutoff they had not touched before (what to predict)."""
    before = [i for i in interactions if i[3] < cutoff_ms]
    by_user: dict[str, list[Interaction]] = {}
    for i in before:
        by_user.setdefault(i[0], []).append(i)
    cases: dict[str, tuple[list[list[Any]], str]] = {}
    for user, item, _event, t in interactions:  # sorted by user and time
        if t < cutoff_ms or user in cases or user not in by_user:
            continue
        if any(h[1] == item for h in by_user[user]):
            continue
        cases[user] = (_recent(by_user[user]), item)
    chosen = sorted(cases)
    if len(chosen) > VALIDATION_USERS:  # a deterministic sample
        step = len(chosen) / VALIDATION_USERS
        chosen = [chosen[int(n * step)] for n in range(VALIDATION_USERS)]
    return before, [cases[u] for u in chosen]


def items_step(data: TrainData, out: TrainOutput, store: ModelStore) -> None:
    """The recommender's item model (nudge.learn.items) on the window's interactions, the
    catalog's categories for its diversity rule and category boost, validated before it
    is served (docs/personalization.md, "Continuous validation"): a candidate fitted
    without the most recent day is scored on that day (HR@10, as served) against
    popularity and against the model in service; the new model (fitted on everything)
    replaces the one in service only when the candidate is not worse."""
    from nudge.domain.recommend import ItemModel
    from nudge.learn.items import fit_item_model

    categories = {
        pid: str(attrs["category"])
        for pid, attrs in data.catalog.items.items()
        if isinstance(attrs, dict) and attrs.get("category")
    }
    cutoff = data.now_ms - VALIDATION_DAYS * DAY_MS
    before, cases = validation_cases(data.interactions, cutoff)
    report: dict[str, Any] = {"users": len(cases), "k": VALIDATION_K}
    serving: ItemModel | None = None
    stored = store.load(ITEMS)
    if stored is not None:
        try:
            serving = ItemModel.from_dict(stored)
        except (ValueError, KeyError, TypeError):
            serving = None  # unreadable: anything valid replaces it
    promote = True
    if cases and before:
        candidate = fit_item_model(before, now_ms=cutoff, categories=categories)
        report["hr_candidate"] = _hit_rate(candidate, cases)
        report["hr_popularity"] = _hit_rate(candidate, cases, popularity=True)
        report["hr_serving"] = _hit_rate(serving, cases) if serving is not None else None
        worse = report["hr_serving"] is not None and report["hr_candidate"] < report["hr_serving"]
        promote = not worse
    report["promoted"] = promote
    out.stats["items_validation"] = report
    if promote:
        model = fit_item_model(data.interactions, now_ms=data.now_ms, categories=categories)
        out.artifacts[ITEMS] = model.to_dict()
        out.stats["recommendable_items"] = len(model)


# The steps of a run, in order.
STEPS: tuple[tuple[str, Step], ...] = (
    ("rfm", rfm_step),
    ("segments", segments_step),
    ("catalog", catalog_step),
    ("items", items_step),
)


def read_inputs(
    profiles: ProfileScores,
    archive: ArchiveLines,
    *,
    now: datetime,
    config: TrainConfig,
    erased: frozenset[str] = frozenset(),
) -> TrainData:
    """`erased`: the SHA-256 digests of erased ids (nudge.adapters.erased), whose archived
    events no model learns from."""
    facts = trained_profiles(profiles.scan())
    now_ms = to_ms(now)
    extract = ArchiveExtract(erased=erased)
    for line in archive.lines(since=now - timedelta(days=config.window_days), until=now):
        extract.add_line(line)
    extract.finish(now_ms=now_ms)
    return TrainData(
        now_ms=now_ms,
        config=config,
        profiles=facts,
        interactions=extract.interactions,
        catalog=extract.catalog,
        abandonments=extract.abandonments,
        lines=extract.lines,
        unreadable=extract.unreadable,
    )


def score_changes(data: TrainData, out: TrainOutput) -> list[ScoreChange]:
    """The users whose segment or RFM score differs from what their profile holds."""
    changes = []
    for p in data.profiles:
        segment, score = out.segments.get(p.user_id), out.rfm.get(p.user_id)
        if (segment, score) != (p.segment, p.rfm_score):
            changes.append(ScoreChange(p.user_id, segment, score))
    return changes


def run_training(
    *,
    profiles: ProfileScores,
    archive: ArchiveLines,
    store: ModelStore,
    now: datetime,
    config: TrainConfig | None = None,
    steps: Sequence[tuple[str, Step]] | None = None,
    clock: Callable[[], datetime] | None = None,
    erased: Callable[[], frozenset[str]] | None = None,
) -> dict[str, Any]:
    """Runs the steps (STEPS unless given); returns the run's summary (also saved as
    `train_run`). Raises TrainingError, after saving the summary, when the read or a
    step failed."""
    cfg = config or TrainConfig()
    steps = STEPS if steps is None else steps
    started = time.perf_counter()
    timings: dict[str, float] = {}
    errors: list[str] = []
    data: TrainData | None = None
    out = TrainOutput()
    writes = 0
    try:
        data = read_inputs(
            profiles, archive, now=now, config=cfg, erased=erased() if erased else frozenset()
        )
        timings["read"] = round(time.perf_counter() - started, 3)
        for name, step in steps:
            t0 = time.perf_counter()
            try:
                step(data, out, store)
            except Exception as err:  # a step's failure keeps the last good artifacts
                errors.append(f"{name}: {type(err).__name__}: {err}")
                break
            finally:
                timings[name] = round(time.perf_counter() - t0, 3)
        if not errors:
            t0 = time.perf_counter()
            for name, doc in out.artifacts.items():
                store.save(name, doc)
            changes = score_changes(data, out)
            writes = profiles.write_scores(changes) if changes else 0
            timings["write"] = round(time.perf_counter() - t0, 3)
    except Exception as err:
        errors.append(f"{type(err).__name__}: {err}")
    finished = now + timedelta(seconds=time.perf_counter() - started)
    summary: dict[str, Any] = {
        "started": iso(now),
        "finished": iso(clock() if clock else finished),
        "duration_seconds": round(time.perf_counter() - started, 3),
        "ok": not errors,
        "users": len(data.profiles) if data else 0,
        "archive_lines": data.lines if data else 0,
        "archive_unreadable": data.unreadable if data else 0,
        "interactions": len(data.interactions) if data else 0,
        "items": out.stats.get("items", 0),
        "k": out.stats.get("k"),
        "silhouette": out.stats.get("silhouette"),
        "segments": out.stats.get("segments", {}),
        "rfm_scored": out.stats.get("rfm_scored", 0),
        "items_validation": out.stats.get("items_validation"),
        "profile_writes": writes,
        "artifacts": sorted(out.artifacts) if not errors else [],
        "steps_seconds": timings,
        "errors": errors,
    }
    store.save(TRAIN_RUN, summary)
    if errors:
        raise TrainingError(f"training failed: {errors[0]}", summary)
    return summary
