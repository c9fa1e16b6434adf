"""Behavioral segments: k-means over standardized behavioral features, k chosen by
silhouette, clusters named from their centroids (docs/personalization.md, "Segments").

Features per user (FEATURES): days since the last activity, orders, revenue, sessions,
session minutes, page views (pages, screens and product views), cart adds and cart
abandonments. Each is log1p-transformed (counts and amounts are heavy-tailed: one user
with 500 orders would otherwise be a cluster of their own) and standardized
(StandardScaler: mean 0, variance 1).

Determinism: the rows are sorted by their feature values (then user id) before fitting,
so the result does not depend on the order users were read in; KMeans and the
silhouette sample use a fixed seed. k is the value in [k_min, k_max] with the best
silhouette score (computed on a sample of at most `silhouette_sample` users), the
smaller k on a tie; with fewer distinct users than k_min + 1 there is one cluster. With
more than `selection_sample` users, k is chosen on a seeded sample of them and the
model of that k is then fitted on all (the silhouettes reported are the sample's).

Naming (`name_clusters`): each archetype of ARCHETYPES has a gate on the cluster's raw
means (a "frequent buyer" cluster averages two orders or more) and an affinity, a
weighted sum of the centroid's standardized coordinates. Pairs (cluster, eligible
archetype) are taken by decreasing affinity, ties by the cluster's centroid and the
archetype's order, and each archetype names one cluster; a cluster left without one
takes its best eligible archetype's name with a suffix (" 2", " 3", ...). "casual
browsers" is always eligible, so every cluster gets a name, and names are unique.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SEGMENTS_VERSION = 1
FEATURES = (
    "recency_days",
    "orders",
    "revenue",
    "sessions",
    "session_minutes",
    "page_views",
    "cart_adds",
    "abandonments",
)
_I = {name: i for i, name in enumerate(FEATURES)}
DEFAULT_K_MIN = 2
DEFAULT_K_MAX = 8
DEFAULT_SILHOUETTE_SAMPLE = 3_000  # silhouette is O(n^2) in time and memory
DEFAULT_SELECTION_SAMPLE = 20_000  # users k is chosen on (then fitted on all)
DEFAULT_SEED = 0
N_INIT = 4


@dataclass(frozen=True)
class UserFeatures:
    user_id: str
    recency_days: float
    orders: float
    revenue: float
    sessions: float
    session_minutes: float
    page_views: float
    cart_adds: float
    abandonments: float

    def row(self) -> list[float]:
        return [max(0.0, float(getattr(self, name))) for name in FEATURES]


@dataclass(frozen=True)
class Archetype:
    name: str
    gate: Callable[[dict[str, float]], bool]  # on the cluster's raw feature means
    affinity: Callable[[dict[str, float]], float]  # on its standardized centroid


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "frequent buyers",
        lambda m: m["orders"] >= 2,
        lambda z: z["orders"] + 0.5 * z["revenue"],
    ),
    Archetype(
        "lapsed customers",
        lambda m: m["orders"] >= 1 and m["recency_days"] >= 30,
        lambda z: z["recency_days"] + 0.5 * z["orders"],
    ),
    Archetype(
        "one-time buyers",
        lambda m: 1 <= m["orders"] < 2,
        lambda z: z["orders"],
    ),
    Archetype(
        "cart abandoners",
        lambda m: m["abandonments"] >= 0.5,
        lambda z: z["abandonments"] + 0.5 * z["cart_adds"] - 0.5 * z["orders"],
    ),
    Archetype(
        "engaged browsers",
        lambda m: m["orders"] < 1 and (m["sessions"] >= 3 or m["page_views"] >= 10),
        lambda z: z["page_views"] + z["sessions"] + z["session_minutes"],
    ),
    Archetype(
        "new visitors",
        lambda m: m["orders"] < 1 and m["sessions"] <= 1.5,
        lambda z: -(z["sessions"] + z["page_views"]) - 0.5 * z["recency_days"],
    ),
    Archetype("casual browsers", lambda m: True, lambda z: -1.0),
)


@dataclass
class Cluster:
    name: str
    size: int
    z: list[float]  # the centroid, standardized
    means: dict[str, float]  # the members' raw feature means


@dataclass
class SegmentModel:
    k: int
    silhouette: float | None
    silhouettes: dict[int, float]
    clusters: list[Cluster]
    assignments: dict[str, str]  # user id -> segment name
    scaler_mean: list[float] = field(default_factory=list)  # of log1p(features)
    scaler_scale: list[float] = field(default_factory=list)

    def to_dict(self, *, trained_at_ms: int) -> dict[str, Any]:
        """The artifact (without the per-user assignments, which go to the profiles)."""
        return {
            "version": SEGMENTS_VERSION,
            "trained_at_ms": trained_at_ms,
            "features": list(FEATURES),
            "transform": "log1p, then standardized with mean and scale",
            "mean": self.scaler_mean,
            "scale": self.scaler_scale,
            "k": self.k,
            "silhouette": self.silhouette,
            "silhouettes": {str(k): v for k, v in sorted(self.silhouettes.items())},
            "clusters": [
                {"name": c.name, "size": c.size, "centroid": c.z, "means": c.means}
                for c in self.clusters
            ],
        }


def _as_named(vector: Sequence[float]) -> dict[str, float]:
    return {name: float(vector[i]) for i, name in enumerate(FEATURES)}


def name_clusters(
    z_centroids: Sequence[Sequence[float]], means: Sequence[dict[str, float]]
) -> list[str]:
    """One unique name per cluster, by the rule of the module's docstring."""
    keys = [tuple(round(float(v), 9) for v in c) for c in z_centroids]
    pairs = []
    for ci, (zc, m) in enumerate(zip(z_centroids, means, strict=True)):
        z = _as_named(zc)
        for ai, arch in enumerate(ARCHETYPES):
            if arch.gate(m):
                pairs.append((-arch.affinity(z), keys[ci], ai, ci))
    pairs.sort()
    names: dict[int, str] = {}
    taken: set[int] = set()
    for _neg, _key, ai, ci in pairs:
        if ci in names or ai in taken:
            continue
        names[ci] = ARCHETYPES[ai].name
        taken.add(ai)
    used: dict[str, int] = {}
    for name in names.values():
        used[name] = 1
    for ci in sorted(set(range(len(z_centroids))) - set(names), key=lambda c: keys[c]):
        best = next(ARCHETYPES[ai].name for _n, _k, ai, c in pairs if c == ci)
        used[best] = used.get(best, 1) + 1
        names[ci] = f"{best} {used[best]}"
    return [names[ci] for ci in range(len(z_centroids))]


def fit_segments(
    users: Sequence[UserFeatures],
    *,
    k_min: int = DEFAULT_K_MIN,
    k_max: int = DEFAULT_K_MAX,
    silhouette_sample: int = DEFAULT_SILHOUETTE_SAMPLE,
    selection_sample: int = DEFAULT_SELECTION_SAMPLE,
    seed: int = DEFAULT_SEED,
) -> SegmentModel:
    # imported here: scikit-learn takes seconds to import, which local mode's start (it
    # loads the train function) and the functions' tests need not pay
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    if k_min < 1 or k_max < k_min:
        raise ValueError(f"segment k range [{k_min}, {k_max}] is empty")
    if not users:
        return SegmentModel(k=0, silhouette=None, silhouettes={}, clusters=[], assignments={})
    # a canonical row order: by features, then user id (np.lexsort sorts by the last key)
    raw_unsorted = np.array([u.row() for u in users], dtype=np.float64)
    ids_unsorted = np.array([u.user_id for u in users])
    order = np.lexsort((ids_unsorted, *raw_unsorted.T[::-1]))
    raw = raw_unsorted[order]
    ids = ids_unsorted[order]
    scaler = StandardScaler()
    x = scaler.fit_transform(np.log1p(raw))
    n_distinct = len(np.unique(x, axis=0))
    candidates = [k for k in range(max(2, k_min), k_max + 1) if k <= n_distinct - 1]
    silhouettes: dict[int, float] = {}
    best_labels: np.ndarray[Any, Any] = np.zeros(len(ids), dtype=np.int64)
    best_k, best_score = 1, -math.inf
    # k is chosen on a seeded sample of the (sorted) rows when there are many; the model
    # of that k is then fitted on every row
    rng = np.random.RandomState(seed)
    chosen = (
        np.sort(rng.choice(len(ids), selection_sample, replace=False))
        if len(ids) > selection_sample
        else np.arange(len(ids))
    )
    xs = x[chosen]
    for k in candidates:
        labels = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit_predict(xs)
        if len(set(labels.tolist())) < 2:
            continue
        score = float(
            silhouette_score(
                xs, labels, sample_size=min(silhouette_sample, len(xs)), random_state=seed
            )
        )
        silhouettes[k] = round(score, 6)
        if score > best_score + 1e-12:
            best_k, best_score, best_labels = k, score, labels
    if silhouettes and len(chosen) < len(ids):
        best_labels = KMeans(n_clusters=best_k, n_init=N_INIT, random_state=seed).fit_predict(x)
    k = best_k if silhouettes else 1
    z_centroids = []
    means = []
    sizes = []
    for c in range(k):
        members = best_labels == c
        z_centroids.append([round(float(v), 6) for v in x[members].mean(axis=0)])
        means.append(
            {n: round(float(v), 4) for n, v in _as_named(raw[members].mean(axis=0)).items()}
        )
        sizes.append(int(members.sum()))
    names = name_clusters(z_centroids, means)
    clusters = sorted(
        (Cluster(names[c], sizes[c], z_centroids[c], means[c]) for c in range(k)),
        key=lambda cl: cl.name,
    )
    label_names = [names[int(c)] for c in best_labels]
    return SegmentModel(
        k=k,
        silhouette=round(best_score, 6) if silhouettes else None,
        silhouettes=silhouettes,
        clusters=clusters,
        assignments=dict(zip(ids.tolist(), label_names, strict=True)),
        scaler_mean=[round(float(v), 6) for v in scaler.mean_],
        scaler_scale=[round(float(v), 6) for v in scaler.scale_],
    )
