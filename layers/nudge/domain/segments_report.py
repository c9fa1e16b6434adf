"""`GET /v1/reports/segments`: the train function's `segments` artifact and its last run's
summary (`train_run`), as the dashboard and scripts read them (docs/personalization.md,
"Segments"). Before any training there is nothing to show: an empty list, not a 404,
so the route's answer says "not trained yet" and, after a failed first run, why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

SEGMENTS_ARTIFACT = "segments"  # nudge.learn.train.SEGMENTS
TRAIN_RUN_ARTIFACT = "train_run"  # nudge.learn.train.TRAIN_RUN

RUN_FIELDS = (
    "ok",
    "started",
    "finished",
    "duration_seconds",
    "users",
    "errors",
    "items_validation",
)


def _iso_ms(ms: Any) -> str | None:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _named(features: Sequence[str], values: Any) -> dict[str, float]:
    """A centroid as feature -> value (the artifact keeps the standardized one as a list
    in the order of `features`, the raw means as a mapping)."""
    if isinstance(values, Mapping):  # in the order of `features` (the store sorts keys)
        order = [f for f in features if f in values] + [str(k) for k in values if k not in features]
        return {k: float(values[k]) for k in order if isinstance(values[k], int | float)}
    if isinstance(values, Sequence) and not isinstance(values, str):
        return {f: float(v) for f, v in zip(features, values, strict=False)}
    return {}


def segments_report(
    segments: Mapping[str, Any] | None, run: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The segments with their sizes and centroids (standardized, the k-means space, and
    the raw feature means), k and its silhouette, and the last run's outcome; `segments`
    is empty and `trained_at` null before the first successful training."""
    last_run = {f: run.get(f) for f in RUN_FIELDS} if run else None
    if last_run is not None:
        last_run["errors"] = [str(e) for e in (last_run["errors"] or [])]
        last_run["ok"] = bool(last_run["ok"])
    if not segments:
        return {
            "trained_at": None,
            "k": None,
            "silhouette": None,
            "features": [],
            "transform": None,
            "segments": [],
            "last_run": last_run,
        }
    features = [str(f) for f in segments.get("features") or []]
    clusters = segments.get("clusters") or []
    return {
        "trained_at": _iso_ms(segments.get("trained_at_ms")),
        "k": segments.get("k"),
        "silhouette": segments.get("silhouette"),
        "features": features,
        "transform": segments.get("transform"),
        "segments": [
            {
                "name": str(c.get("name", "")),
                "size": int(c.get("size") or 0),
                "centroid": _named(features, c.get("centroid")),
                "means": _named(features, c.get("means")),
            }
            for c in clusters
            if isinstance(c, Mapping)
        ],
        "last_run": last_run,
    }
