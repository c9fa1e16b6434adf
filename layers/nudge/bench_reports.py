"""The reports' latency over a synthetic archive (docs/measurement.md, "Where it runs").

A seeded shop's history (`generate`): users first seen across the period, sessions of
page views, product views and cart adds, orders; about half the cart adds abandoned,
each exposing the user to the shipped cart experiment (`Experiment Viewed`, variant by
nudge's hash) 15 minutes later, its reminder followed by `Email Delivered` and sometimes
`Email Opened`, and an order within the attribution window more often after a reminder;
a few lines delivered twice, as Firehose's retries leave them. The lines are written as
Firehose writes them (JSON lines, one object per arrival hour under
`events/YYYY/MM/DD/HH/`) to an S3 bucket of moto's, read by the DuckDB engine; a first
`count(*)` fills its Parquet cache (timed apart), then each report runs `runs` times:
the median and the fastest are reported.

    python -m nudge.bench_reports [--events 1000000] [--users 50000] [--days 182] [--runs 3]

Needs moto (a development dependency) and the `stats`-free report code only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nudge.domain.archive import COLUMN_NAMES, archive_line, iso_ms
from nudge.domain.clock import SettableClock
from nudge.domain.cohorts import CohortQuery, FunnelQuery, cohort_report, funnel_report
from nudge.domain.experiment_report import experiment_report
from nudge.domain.ports import QueryEngine
from nudge.domain.triggers.experiments import draw
from nudge.domain.triggers.model import Experiment

BUCKET = "nudge-bench-archive"
REGION = "us-east-1"
START = datetime(2026, 1, 1, tzinfo=UTC)
# the shipped experiment (triggers/default.yaml), so the report reads like the real one
EXPERIMENT = Experiment.model_validate(
    {
        "id": "cart_abandonment_holdout",
        "name": "Cart reminder against a holdout",
        "variants": [
            {"name": "holdout", "weight": 10, "holdout": True},
            {"name": "reminder", "weight": 90},
        ],
        "goal": {"event": "Order Completed", "within": "72h"},
    }
)
ABANDON = 0.5  # a cart add not ordered in its session
P_ORDER_AFTER = {"holdout": 0.10, "reminder": 0.14}  # an order within the window
P_OPEN = 0.3  # a reminder opened
DUPLICATES = 0.005  # lines delivered twice


@dataclass
class Archive:
    """The generated lines by arrival hour, and what was generated."""

    hours: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0
    users: int = 0
    exposures: int = 0
    end: datetime = START

    def add(self, rng: random.Random, row: dict[str, Any]) -> None:
        line = archive_line(row)
        hour = row["received_at"][:13].replace("-", "/").replace("T", "/")
        self.hours[hour].append(line)
        if rng.random() < DUPLICATES:
            self.hours[hour].append(line)
        self.events += 1


class _User:
    """One user's events, each a full archive row."""

    def __init__(self, archive: Archive, rng: random.Random, user: str) -> None:
        self.archive, self.rng, self.user = archive, rng, user
        self.n = 0

    def emit(self, at: datetime, type_: str, event: str | None, **props: Any) -> None:
        self.n += 1
        row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
        received = at + timedelta(seconds=self.rng.uniform(0.05, 2.0))
        row.update(
            v=1,
            message_id=f"{self.user}-{self.n}",
            type=type_,
            event=event,
            user_id=self.user,
            timestamp=iso_ms(at),
            received_at=iso_ms(received),
            properties=props,
            traits={"email": f"{self.user}@example.com"} if type_ == "identify" else {},
            context={"library": {"name": "bench"}},
            historical=False,
        )
        self.archive.add(self.rng, row)
        self.archive.end = max(self.archive.end, received)

    def session(self, t: datetime) -> datetime:
        """A visit: a page, product views, maybe a cart add (ordered, or abandoned and
        then exposed to the experiment); returns when it ended."""
        rng = self.rng
        self.emit(t, "page", None, path="/")
        product = f"sku-{int(rng.paretovariate(1.2)) % 2000}"
        for _ in range(rng.randint(1, 3)):
            t += timedelta(seconds=rng.uniform(10, 120))
            self.emit(t, "track", "Product Viewed", product_id=product, price=30)
        if rng.random() < 0.35:
            t += timedelta(seconds=rng.uniform(10, 60))
            self.emit(t, "track", "Product Added", product_id=product, price=30)
            if rng.random() >= ABANDON:
                t += timedelta(seconds=rng.uniform(60, 300))
                self.emit(
                    t, "track", "Order Completed", order_id=f"o-{self.user}-{self.n}", revenue=30
                )
            else:
                self.abandoned(t)
        return t

    def abandoned(self, t: datetime) -> None:
        rng = self.rng
        variant = draw(EXPERIMENT, self.user).name
        exposed = t + timedelta(minutes=15)
        self.emit(
            exposed,
            "track",
            "Experiment Viewed",
            experiment_id=EXPERIMENT.id,
            experiment_name=EXPERIMENT.name,
            variation_id=variant,
            variation_name=variant,
            trigger_id="cart_abandonment",
        )
        self.archive.exposures += 1
        if variant == "reminder":
            self.emit(
                exposed + timedelta(seconds=3),
                "track",
                "Email Delivered",
                trigger_id="cart_abandonment",
            )
            if rng.random() < P_OPEN:
                opened = exposed + timedelta(minutes=rng.uniform(1, 600))
                self.emit(opened, "track", "Email Opened", trigger_id="cart_abandonment")
        if rng.random() < P_ORDER_AFTER[variant]:
            at = exposed + timedelta(hours=rng.uniform(0.1, 71))
            self.emit(
                at,
                "track",
                "Order Completed",
                order_id=f"o-{self.user}-{self.n}",
                revenue=round(rng.uniform(10, 200), 2),
            )


def generate(events: int, users: int, days: int, seed: int = 7) -> Archive:
    """About `events` events of `users` users over `days` days from START."""
    rng = random.Random(seed)
    archive = Archive(users=users)
    period = timedelta(days=days)
    per_user = events / users
    for i in range(users):
        user = _User(archive, rng, f"bench-{i:06d}")
        t = START + period * rng.random()
        user.emit(t, "identify", None)
        budget = max(1, round(rng.expovariate(1 / per_user)))
        while user.n < budget:
            t = user.session(t) + timedelta(hours=rng.expovariate(1 / 36))
            if t > START + period:
                break
    return archive


def upload(archive: Archive, s3: Any) -> None:
    """One object per arrival hour, as Firehose (in moto) writes a PutRecordBatch."""
    s3.create_bucket(Bucket=BUCKET)
    for hour, lines in sorted(archive.hours.items()):
        key = f"events/{hour}/nudge-archive-1-{hour.replace('/', '-')}-bench"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"".join(lines))


def timed(run: Callable[[], Any], runs: int) -> dict[str, float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(seconds), 3), "fastest_s": round(min(seconds), 3)}


def reports(engine: QueryEngine, now: datetime) -> Iterator[tuple[str, Callable[[], Any]]]:
    """The reports timed, by name."""
    yield "count(*) of events", lambda: engine.query("SELECT count(*) FROM events")
    yield "experiment report", lambda: experiment_report(EXPERIMENT, engine)
    yield "cohorts by week", lambda: cohort_report(CohortQuery("week"), engine, now=now)
    steps = ("Product Viewed", "Product Added", "Order Completed")
    yield "3-step funnel, 7 days", lambda: funnel_report(FunnelQuery(steps), engine)
    by_variant = FunnelQuery(steps, by="variant", experiment=EXPERIMENT.id)
    yield "3-step funnel by variant", lambda: funnel_report(by_variant, engine)


def run(archive: Archive, runs: int, only: str | None = None) -> dict[str, Any]:
    """Uploads the archive (moto), warms the DuckDB cache and times each report."""
    import boto3
    from moto import mock_aws

    from nudge.adapters.query_duckdb import DuckDbQueryEngine

    out: dict[str, Any] = {
        "events": archive.events,
        "users": archive.users,
        "exposures": archive.exposures,
        "objects": len(archive.hours),
    }
    with mock_aws(), tempfile.TemporaryDirectory() as cache:
        s3 = boto3.client("s3", region_name=REGION)
        upload(archive, s3)
        engine = DuckDbQueryEngine(
            BUCKET,
            cache_dir=Path(cache),
            s3_client_factory=lambda: boto3.client("s3", region_name=REGION),
            clock=SettableClock(archive.end + timedelta(days=1), frozen=True),
        )
        started = time.perf_counter()
        engine.query("SELECT count(*) FROM events")
        out["cold_cache_s"] = round(time.perf_counter() - started, 1)
        out["reports"] = {
            name: timed(call, runs)
            for name, call in reports(engine, archive.end)
            if only is None or only in name
        }
        report = experiment_report(EXPERIMENT, engine)
        out["experiment"] = {v["name"]: [v["users"], v["conversions"]] for v in report["variants"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nudge.bench_reports", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=182)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help="time only the reports whose name contains this")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    archive = generate(args.events, args.users, args.days)
    generated = round(time.perf_counter() - started, 1)
    result = {**run(archive, args.runs, args.only), "generate_s": generated}
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
