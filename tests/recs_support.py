"""Generated shop interactions for the recommender's tests: power-law popularity within
categories, users whose taste drifts from session to session, and browsing that often
follows an item's usual successor (what a sequence-aware model should pick up)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from nudge.domain.profile import ORDER_COMPLETED, PRODUCT_ADDED, PRODUCT_VIEWED

CATEGORIES = ("shoes", "jackets", "bags", "hats", "socks", "tents")
PER_CATEGORY = 40
START_MS = 1_767_225_600_000  # 2026-01-01
Interaction = tuple[str, str, str, int]


def item_id(category: int, rank: int) -> str:
    return f"{CATEGORIES[category]}-{rank:02d}"


def categories() -> dict[str, str]:
    return {
        item_id(c, r): CATEGORIES[c] for c in range(len(CATEGORIES)) for r in range(PER_CATEGORY)
    }


def interactions(*, users: int = 300, seed: int = 7) -> list[Interaction]:
    rng = random.Random(seed)
    successor = {
        (c, r): rng.randrange(PER_CATEGORY)
        for c in range(len(CATEGORIES))
        for r in range(PER_CATEGORY)
    }
    weights = [1.0 / (r + 1) ** 1.1 for r in range(PER_CATEGORY)]
    out: list[Interaction] = []
    for u in range(users):
        user = f"u{u:04d}"
        t = START_MS + rng.randrange(30 * 86_400_000)
        category = rng.randrange(len(CATEGORIES))
        for _session in range(rng.randint(2, 5)):
            if rng.random() < 0.3:  # taste drifts
                category = rng.randrange(len(CATEGORIES))
            rank = rng.choices(range(PER_CATEGORY), weights)[0]
            for _step in range(rng.randint(3, 7)):
                item = item_id(category, rank)
                out.append((user, item, PRODUCT_VIEWED, t))
                t += rng.randrange(20_000, 120_000)
                if rng.random() < 0.15:
                    out.append((user, item, PRODUCT_ADDED, t))
                    t += 30_000
                    if rng.random() < 0.5:
                        out.append((user, item, ORDER_COMPLETED, t))
                        t += 30_000
                if rng.random() < 0.6:
                    rank = successor[(category, rank)]
                else:
                    rank = rng.choices(range(PER_CATEGORY), weights)[0]
            t += rng.randrange(1, 5) * 86_400_000
    return out


def write_csv(path: Path, rows: list[Interaction], *, timestamps: str = "s") -> Path:
    """`user_id,item_id,timestamp,event`; timestamps in seconds (`s`), ms or ISO 8601."""
    from nudge.domain.clock import from_ms, iso

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "timestamp", "event"])
        for user, item, event, ms in rows:
            stamp = {"s": str(ms // 1000), "ms": str(ms), "iso": iso(from_ms(ms))}[timestamps]
            w.writerow([user, item, stamp, event])
    return path
