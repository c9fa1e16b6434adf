"""`nudge bench`: what an event costs, measured on this machine (README, "Performance").

Four measurements, printed as one JSON object (`--json`, progress on stderr) or a table:

- core: the processor's CPU per event, no I/O. For each event: its SQS body parsed as the
  process function parses it (json.loads + Event.model_validate), Profile.apply,
  Engine.on_events over the default triggers, and the profile serialized as the store
  writes it (the store's own encode_state of its stored document: orjson, then zlib)
  — against json.loads of the same body, in the same process and run. One event per call, and SQS batches of 10 folded per user.
- aws: the AWS requests of each event through the real handlers in local mode (LocalMode
  with its pollers run inline and its Scheduler emulation firing the wake-ups as the
  clock follows the events): ingest → events queue → process → wake-ups → check →
  process → actions queue → deliver. Counted at botocore (BaseClient._make_api_call),
  with DynamoDB write and read units computed from the items' sizes in the requests and
  responses, SQS requests in 64 KB chunks and Firehose records in 5 KB units.
- local: local mode end to end, in this process: Segment's Python SDK (gzip, 100 events
  per request) against `nudge dev`; accepted events/s, events/s until every queue is
  drained, and the latency from an event's acceptance to the in-app message it fires.
- cost: dollars per million events at AWS list prices from the counts above.

Three workloads of Segment events that exercise every default trigger: sparse (many users
over days), dense (many users in one hour), heavy (one user, many events in a day).
"""

from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import gc
import gzip
import json
import math
import os
import platform
import random
import re
import socket
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from nudge import constants as C

# ---- prices and billing rules (us-east-1 list prices; free tiers ignored) --------------------
PRICES = {
    "http_api_per_request": 1.00 / 1e6,
    "lambda_per_request": 0.20 / 1e6,
    "lambda_per_gb_s_arm64": 0.0000133334,
    "sqs_fifo_per_request": 0.50 / 1e6,
    "dynamodb_per_write_unit": 0.625 / 1e6,
    "dynamodb_per_read_unit": 0.125 / 1e6,
    "scheduler_per_invocation": 1.00 / 1e6,
    "firehose_per_gb": 0.029,
    "s3_per_put": 0.005 / 1000,
    "secrets_manager_per_call": 0.05 / 10_000,
    "ses_per_mail": 0.10 / 1000,
    "sns_mobile_push_per_publish": 0.50 / 1e6,
}
SQS_BILLING_CHUNK = 64 * 1024  # each 64 KB of a request's payload is one request
FIREHOSE_RECORD_UNIT = 5 * 1024  # Firehose bills each record rounded up to 5 KB
FIREHOSE_BUFFER_BYTES = 64 * 1024 * 1024  # the stack's buffering hint (infra/constructs/archive.py)
DDB_WRITE_UNIT = 1024
DDB_READ_UNIT = 4096
GB = 1024**3

ASSUMPTIONS = [
    "Prices: us-east-1 list prices, free tiers ignored.",
    "Workloads: each request of 100 events is sent at its last event's time (the lag is "
    "reported per workload). At 10,000 events over 7 days the sparse workload's requests are "
    "about 100 minutes apart: a session's events often share a batch (one profile write for "
    "several events), and short timers (dwell 5 min, cart 15 min) are often due already when "
    "their events arrive, so they fire at once rather than through a wake-up. The dense "
    "workload (a request every ~36 s) is the one where events arrive as they happen. So that "
    "messages go out as for events that arrive as they happen, the default triggers run with "
    "`lateness: 7d` (default 1h: an episode decided later than that counts without a message).",
    "moto answers a Query by sorting the whole table; while the AWS requests are counted a "
    "Query reads its partition only, as DynamoDB does (same results), so the check and "
    "deliver durations do not grow with the tables.",
    "Local mode appends each Firehose call to the hour's S3 object, copying it whole inside "
    "PutRecordBatch; while the AWS requests are counted moto writes one object per call "
    "instead (its own behavior), so the process durations do not grow with the archive.",
    "Local mode's own calls (the pollers' receives and deletes, settle's queue attribute "
    "reads, the Scheduler emulation's list/get/delete) are counted apart and not billed.",
    "HTTP API: one request per ingest call (a gzip batch of 100 events is far under the "
    "512 KB metering unit).",
    "Lambda: measured handler durations in local mode (the AWS calls are round trips to "
    "the in-process moto server, not to AWS), rounded up to 1 ms per invocation, times the "
    "memory each function has in infra/constructs; init (cold start) time not included.",
    "SQS FIFO: every request the handlers make, each 64 KB of payload one request. The "
    "Lambda event source mappings poll SQS themselves: counted as Lambda makes them, one "
    "ReceiveMessage (64 KB chunks of the batch) and one DeleteMessageBatch per batch handed "
    "to the function. Their empty long polls (a few per minute per queue, whatever the "
    "traffic) are a fixed cost, not per event, and not counted.",
    "DynamoDB on demand: a write is billed by the larger of the item before and after, "
    "1 write unit per KB (transactions twice); reads by the returned item size, 4 KB per "
    "unit (a Query sums its items first), halved when eventually consistent; a read that "
    "finds no item still costs 1 unit (0.5 eventually consistent); a failed conditional "
    "write is billed like a write. UpdateItem is sized by the item before the update.",
    "EventBridge Scheduler bills invocations. The wake-up sweep (one recurring schedule, "
    "every minute) is a fixed cost whatever the traffic, shown apart as "
    "`fixed_usd_per_month`: 43,200 Scheduler invocations, as many check invocations "
    "(each priced at the median measured duration of the check invocations that had timers, "
    "more than an empty minute takes) and a strongly consistent Query of 1 read unit each. "
    "Local mode skips the minutes whose bucket is empty; the per-event figures hold what "
    "a minute with timers adds: the check function's duration, reads and sends. A "
    "deferred action put "
    "back on the queue); CreateSchedule and the other API calls are not billed, and "
    "schedules delete themselves after they fire (ActionAfterCompletion=DELETE).",
    "Firehose: ingestion $0.029/GB with every record rounded up to 5 KB; S3 PUTs as one "
    "object per 64 MB buffer (the 300 s interval adds a fixed ~12 PUTs an hour, not per "
    "event); S3 storage, Glue and Athena not included.",
    "Sending is shown apart: SES $0.10 per 1,000 mails, SNS mobile push $0.50 per million "
    "(SMS prices depend on the country: counted, not priced). CloudWatch logs and metrics "
    "and X-Ray are not included.",
]


# ---- configuration -------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    events: int = 10_000  # per workload (sparse, dense)
    sparse_users: int = 2_000
    sparse_days: int = 7
    dense_users: int = 1_000
    heavy_events: int = 10_000
    client_batch: int = 100  # events per ingest request, as Segment's SDKs send them
    local_events: int = 5_000
    local_users: int = 200
    core_rounds: int = 3  # at most; fewer once a mode has taken core_budget_s
    core_budget_s: float = 20.0
    latency_samples: int = 10  # end to end, one at a time, with nothing queued
    tail_days: int = 3  # the clock runs on after the last event so that every timer fires
    seed: int = 7


DEFAULT = BenchConfig()
QUICK = BenchConfig(
    events=1_000,
    sparse_users=200,
    dense_users=100,
    heavy_events=1_000,
    local_events=1_000,
    local_users=40,
    core_rounds=2,
    latency_samples=5,
)
TINY = BenchConfig(  # the test's: seconds
    events=100,
    sparse_users=10,
    sparse_days=3,
    dense_users=10,
    heavy_events=100,
    local_events=100,
    local_users=5,
    core_rounds=1,
    latency_samples=1,
)

WRITE_KEY = "wk_bench"
ADMIN_KEY = "ak_bench"


# ---- DynamoDB item sizes (developer guide, "DynamoDB item sizes and formats") -----------------
def _number_size(text: str) -> int:
    """1 byte per two significant digits (leading and trailing zeroes trimmed) + 1."""
    mantissa = re.split("[eE]", text.strip().lstrip("+-"))[0].replace(".", "")
    significant = mantissa.strip("0") or "0"
    return (len(significant) + 1) // 2 + 1


def attribute_value_size(value: dict[str, Any]) -> int:
    """The size of one typed attribute value (its name not included)."""
    ((tag, v),) = value.items()
    if tag == "S":
        return len(v.encode("utf-8"))
    if tag == "N":
        return _number_size(v)
    if tag == "B":
        return len(v) if isinstance(v, bytes | bytearray) else len(base64.b64decode(v))
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(s.encode("utf-8")) for s in v)
    if tag == "NS":
        return sum(_number_size(n) for n in v)
    if tag == "BS":
        return sum(attribute_value_size({"B": b}) for b in v)
    if tag == "L":  # 3 bytes, and 1 byte per element
        return 3 + sum(1 + attribute_value_size(e) for e in v)
    if tag == "M":  # 3 bytes, and per element its name and 1 byte
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_value_size(e) for k, e in v.items())
    raise ValueError(f"not a DynamoDB attribute value: {tag}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    """An item's size as DynamoDB bills it: the UTF-8 lengths of the attribute names plus
    the sizes of their values."""
    return sum(len(name.encode("utf-8")) + attribute_value_size(v) for name, v in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / DDB_WRITE_UNIT))


def read_units(size: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size / DDB_READ_UNIT))
    return float(units) if consistent else units / 2


# ---- workloads ------------------------------------------------------------------------------
CATALOG = [(f"sku-{i:03d}", f"Product {i}", 5 + (i * 37) % 195) for i in range(300)]
SESSION_GAP_S = 45 * 60  # sessions of one user start at least this far apart


@dataclass
class Workload:
    """Segment events in time order; timestamps are offsets (seconds) from the start, so
    the same workload can be laid on any clock."""

    name: str
    description: str
    users: int
    span_s: float
    events: list[tuple[float, dict[str, Any]]]  # (offset, event without timestamp)

    def materialize(self, start: datetime) -> list[dict[str, Any]]:
        return [
            {**ev, "timestamp": (start + timedelta(seconds=off)).isoformat()}
            for off, ev in self.events
        ]


class _UserStream:
    """One user's events: behaviors that exercise the default triggers."""

    def __init__(self, rng: random.Random, user: str, gap_scale: float) -> None:
        self.rng = rng
        self.user = user
        self.gap_scale = gap_scale
        self.cart: list[str] = []
        self.out: list[tuple[float, dict[str, Any]]] = []

    def _emit(self, t: float, body: dict[str, Any]) -> None:
        self.out.append((t, {"userId": self.user, **body}))

    def _product(self) -> tuple[str, str, int]:
        return self.rng.choice(CATALOG[:120])

    def _gap(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high) * self.gap_scale

    def identify(self, t: float, n: int) -> None:
        self._emit(
            t,
            {
                "type": "identify",
                "traits": {"email": f"{self.user}@example.com", "name": f"User {n}"},
            },
        )

    def behavior(self, t: float) -> list[tuple[float, dict[str, Any]]]:
        """One step of a session: (gap before, event) pairs."""
        rng = self.rng
        kind = rng.choices(
            ["browse", "repeat_view", "dwell", "cart", "order", "remove"],
            weights=[30, 18, 14, 18, 10, 10],
        )[0]
        pid, name, price = self._product()
        view = {
            "type": "track",
            "event": "Product Viewed",
            "properties": {"product_id": pid, "name": name, "price": price},
        }
        if kind == "browse":
            steps = [(self._gap(5, 40), {"type": "page", "name": "Home", "properties": {}})]
            steps += [(self._gap(10, 60), view)]
            return steps
        if kind == "repeat_view":  # the same product three times: repeat_product_view
            steps = [(self._gap(10, 60), view), (self._gap(15, 120), view)]
            steps.append((self._gap(15, 120), view))
            return steps
        if kind == "dwell":  # a product page and nothing for over 5 minutes
            return [(self._gap(5, 30), view), (rng.uniform(6 * 60, 12 * 60), {})]
        if kind == "cart":  # an add and no order: cart_abandonment after 15 minutes
            self.cart.append(pid)
            add = {
                "type": "track",
                "event": "Product Added",
                "properties": {"product_id": pid, "name": name, "price": price, "quantity": 1},
            }
            return [(self._gap(5, 40), view), (self._gap(10, 60), add)]
        if kind == "order":
            self.cart.append(pid)
            items = list(dict.fromkeys(self.cart))[-5:]
            self.cart.clear()
            return [
                (
                    self._gap(5, 40),
                    {
                        "type": "track",
                        "event": "Product Added",
                        "properties": {"product_id": pid, "price": price, "quantity": 1},
                    },
                ),
                (self._gap(20, 90), {"type": "track", "event": "Checkout Started"}),
                (
                    self._gap(30, 120),
                    {
                        "type": "track",
                        "event": "Order Completed",
                        "properties": {
                            "order_id": f"o-{self.user}-{int(t)}",
                            "revenue": price * len(items),
                            "products": [{"product_id": p} for p in items],
                        },
                    },
                ),
            ]
        # remove
        gone = self.cart.pop(rng.randrange(len(self.cart))) if self.cart else pid
        return [
            (
                self._gap(5, 40),
                {"type": "track", "event": "Product Removed", "properties": {"product_id": gone}},
            )
        ]

    def session(self, t: float, budget: int) -> float:
        """Fills one session with `budget` events from t; returns when it ended."""
        while budget > 0:
            for gap, ev in self.behavior(t):
                t += gap
                if not ev:  # a pause
                    continue
                if budget == 0:
                    break
                self._emit(t, ev)
                budget -= 1
        return t


def generate(
    name: str,
    description: str,
    *,
    events: int,
    users: int,
    span: timedelta,
    seed: int,
    sessions_of: Callable[[int], int],
    email_share: float = 0.6,
    gap_scale: float = 1.0,
) -> Workload:
    rng = random.Random(f"{seed}-{name}")
    span_s = span.total_seconds()
    counts = [1] * users
    weights = [rng.paretovariate(2.5) for _ in range(users)]
    for u in rng.choices(range(users), weights=weights, k=max(0, events - users)):
        counts[u] += 1
    out: list[tuple[float, dict[str, Any]]] = []
    for u, budget in enumerate(counts):
        stream = _UserStream(rng, f"{name}-u{u}", gap_scale)
        k = max(1, min(sessions_of(budget), budget))
        starts = sorted(rng.uniform(0, span_s * 0.95) for _ in range(k))
        shares = [budget // k + (1 if i < budget % k else 0) for i in range(k)]
        t_end = 0.0
        first = True
        for start, share in zip(starts, shares, strict=True):
            t = max(start, t_end + SESSION_GAP_S) if not first else start
            if first and rng.random() < email_share and share > 0:
                stream.identify(t, u)
                share -= 1
            first = False
            t_end = stream.session(t, share)
        evs = stream.out
        last = max((off for off, _ in evs), default=0.0)
        if last > span_s:  # the user's sessions ran past the span: compress them into it
            t0 = evs[0][0]
            factor = (span_s - t0) / (last - t0) if last > t0 else 1.0
            evs = [(t0 + (off - t0) * factor, ev) for off, ev in evs]
        out.extend(evs)
    out.sort(key=lambda x: x[0])
    numbered = [
        (off, {**ev, "messageId": f"{name}-{i}"}) for i, (off, ev) in enumerate(out[:events])
    ]
    return Workload(name, description, users, span_s, numbered)


def workloads(cfg: BenchConfig) -> list[Workload]:
    return [
        generate(
            "sparse",
            f"{cfg.events:,} events of {cfg.sparse_users:,} users in sessions spread over "
            f"{cfg.sparse_days} days: cart adds without orders, repeat views of one product, "
            "product pages dwelt on over 5 minutes, users with an email inactive for 48 h",
            events=cfg.events,
            users=cfg.sparse_users,
            span=timedelta(days=cfg.sparse_days),
            seed=cfg.seed,
            sessions_of=lambda n: 1 + n // 6,
        ),
        generate(
            "dense",
            f"{cfg.events:,} events of {cfg.dense_users:,} users, one session each, all "
            "within one hour (the same behaviors)",
            events=cfg.events,
            users=cfg.dense_users,
            span=timedelta(hours=1),
            seed=cfg.seed,
            sessions_of=lambda n: 1,
        ),
        generate(
            "heavy",
            f"one user with {cfg.heavy_events:,} events in a day (the same behaviors, "
            "sessions back to back)",
            events=cfg.heavy_events,
            users=1,
            span=timedelta(days=1),
            seed=cfg.seed,
            sessions_of=lambda n: max(1, n // 100),
            email_share=1.0,
            gap_scale=0.3,
        ),
    ]


def requests_of(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def _ts(ev: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ev["timestamp"])


def bench_start(now: datetime) -> datetime:
    """Workloads start at the next 09:00 UTC, so every run sees the same hours of the day
    (quiet hours defer email and push at night)."""
    day = now.astimezone(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return day if day > now + timedelta(minutes=5) else day + timedelta(days=1)


# ---- core: CPU per event, no I/O ---------------------------------------------------------------
def _engine() -> Any:
    from nudge.domain.triggers.engine import Engine
    from nudge.domain.triggers.loader import load_triggers
    from nudge.local.lambdas import repo_root

    return Engine(load_triggers(repo_root() / "triggers"))


def sqs_bodies(events: list[dict[str, Any]], client_batch: int) -> list[tuple[str, datetime]]:
    """Each event as a queue body of its own (normalized, Event.to_json: the format the
    process function reads beside the ingest function's per-user EventsMessage), with
    the time its request arrives (its last event's time): the core is measured per event
    against json.loads of the same body."""
    from nudge.domain.events import normalize_event

    out = []
    for chunk in requests_of(events, client_batch):
        received = _ts(chunk[-1])
        for raw in chunk:
            out.append((normalize_event(raw, kind=None, received_at=received).to_json(), received))
    return out


def _core_pass(
    bodies: list[tuple[str, datetime]], parse: Any, engine: Any, batch: int
) -> dict[str, float]:
    """One pass over fresh profiles; seconds spent in each step. The profile is serialized
    as the store writes it: the store's own functions, compression included (the item's
    `packed` attribute)."""
    from nudge.adapters.profiles import encode_state, stored_document
    from nudge.domain.events import Event
    from nudge.domain.profile import Profile
    from nudge.domain.sizes import encode_document

    profiles: dict[str, Profile] = {}
    clock = time.perf_counter
    parse_s = apply_s = engine_s = ser_s = 0.0
    started = clock()
    for i in range(0, len(bodies), batch):
        group = bodies[i : i + batch]
        t0 = clock()
        by_user: dict[str, list[Event]] = {}
        for body, _ in group:
            parsed = parse(body)
            by_user.setdefault(parsed.user_id, []).extend(parsed.events)
        t1 = clock()
        parse_s += t1 - t0
        now = group[-1][1]
        for user, evs in by_user.items():
            t1 = clock()
            p = profiles.get(user)
            if p is None:
                p = profiles[user] = Profile(user_id=user)
            fresh = p.apply(evs)
            t2 = clock()
            if fresh:
                engine.on_events(p, fresh, now)
            t3 = clock()
            encode_state(stored_document(p))
            t4 = clock()
            apply_s += t2 - t1
            engine_s += t3 - t2
            ser_s += t4 - t3
    total = clock() - started
    sizes = sorted(len(encode_document(stored_document(p))) for p in profiles.values())
    states = sorted(len(encode_document(p.triggers)) for p in profiles.values())
    return {
        "parse": parse_s,
        "apply": apply_s,
        "engine": engine_s,
        "serialize": ser_s,
        "total": total,
        "profile_json_p50": float(sizes[len(sizes) // 2]),
        "profile_json_max": float(sizes[-1]),
        "trigger_state_json_p50": float(states[len(states) // 2]),
        "trigger_state_json_max": float(states[-1]),
    }


def _loads_pass(bodies: list[tuple[str, datetime]], min_seconds: float = 0.25) -> float:
    """json.loads of every body: the fastest of as many loops as fit in min_seconds (one
    loop of 10,000 small bodies takes a few ms, less than a scheduler's time slice)."""
    loads = json.loads
    gc.collect()
    best = math.inf
    began = time.perf_counter()
    while best == math.inf or time.perf_counter() - began < min_seconds:
        started = time.perf_counter()
        for body, _ in bodies:
            loads(body)
        best = min(best, time.perf_counter() - started)
    return best


def bench_core(workload: Workload, cfg: BenchConfig) -> dict[str, Any]:
    """Per-event µs of each step against json.loads of the same bodies, rounds interleaved
    (yardstick, core, yardstick, core...), each from a collected heap; the fastest of
    each is reported (timeit's convention: the others measured the machine's noise),
    with the median core time beside it."""
    from nudge.domain.messages import parse_message as parse

    engine = _engine()
    start = bench_start(datetime(2026, 3, 1, tzinfo=UTC))
    bodies = sqs_bodies(workload.materialize(start), cfg.client_batch)
    n = len(bodies)
    out: dict[str, Any] = {"events": n}
    for label, batch in (("one_event_per_call", 1), ("sqs_batches_of_10", C.PROCESS_BATCH_SIZE)):
        loads_s: list[float] = []
        passes: list[dict[str, float]] = []
        began = time.perf_counter()
        while len(passes) < cfg.core_rounds and (
            not passes or time.perf_counter() - began < cfg.core_budget_s
        ):
            loads_s.append(_loads_pass(bodies))
            gc.collect()
            passes.append(_core_pass(bodies, parse, engine, batch))
        us = 1e6 / n
        loads_us = min(loads_s) * us
        best = min(passes, key=lambda p: p["total"])
        total_us = best["total"] * us
        out[label] = {
            "json_loads_us": round(loads_us, 2),
            "parse_us": round(best["parse"] * us, 2),
            "apply_us": round(best["apply"] * us, 2),
            "engine_us": round(best["engine"] * us, 2),
            "serialize_us": round(best["serialize"] * us, 2),
            "total_us": round(total_us, 2),
            "total_us_median": round(statistics.median(p["total"] for p in passes) * us, 2),
            "ratio_to_json_loads": round(total_us / loads_us, 1),
            "events_per_second_per_core": round(1e6 / total_us),
            # the trigger engine alone: events it evaluates per second against every
            # default trigger (Engine.on_events, the fold and (de)serialization aside)
            "engine_evaluations_per_second": round(1e6 / max(best["engine"] * us, 1e-9)),
            "rounds": len(passes),
        }
        out["profile_json_bytes_p50"] = int(best["profile_json_p50"])
        out["profile_json_bytes_max"] = int(best["profile_json_max"])
        out["trigger_state_json_bytes_p50"] = int(best["trigger_state_json_p50"])
        out["trigger_state_json_bytes_max"] = int(best["trigger_state_json_max"])
    out["body_bytes_mean"] = round(statistics.fmean(len(b) for b, _ in bodies), 1)
    return out


def anchors(workload: Workload) -> dict[str, Any]:
    """Plain Python yardsticks on this machine, to read the other figures against."""
    bodies = sqs_bodies(workload.materialize(datetime(2026, 3, 1, 9, tzinfo=UTC)), 100)
    n = len(bodies)
    loads = _loads_pass(bodies) * 1e6 / n
    objs = [json.loads(b) for b, _ in bodies]
    dumps = math.inf
    for _ in range(5):
        started = time.perf_counter()
        for o in objs:
            json.dumps(o, separators=(",", ":"))
        dumps = min(dumps, (time.perf_counter() - started) * 1e6 / n)
    raw = json.dumps({"batch": workload.materialize(datetime(2026, 3, 1, tzinfo=UTC))[:100]})
    started = time.perf_counter()
    for _ in range(20):
        gzip.compress(raw.encode())
    gz = (time.perf_counter() - started) * 1e6 / 20 / 100
    return {
        "workload": workload.name,
        "json_loads_us_per_event": round(loads, 2),
        "json_dumps_us_per_event": round(dumps, 2),
        "gzip_us_per_event": round(gz, 2),
        "event_body_bytes_mean": round(statistics.fmean(len(b) for b, _ in bodies), 1),
    }


# ---- counting AWS requests at botocore --------------------------------------------------------
_tls = threading.local()


@dataclass
class Account:
    """What one payer (a function, an event source mapping, the Scheduler) made AWS do."""

    ops: Counter[str] = field(default_factory=Counter)
    op_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    write_units: float = 0.0
    read_units: float = 0.0
    sqs_requests: int = 0  # billed: 64 KB chunks
    sqs_messages: int = 0
    firehose_records: int = 0
    firehose_bytes: int = 0
    firehose_billed_bytes: int = 0
    scheduler_api_calls: int = 0
    scheduler_invocations: int = 0
    ses_mails: int = 0
    sns_push: int = 0
    sns_sms: int = 0
    secrets_calls: int = 0
    aws_seconds: float = 0.0

    def add(self, other: Account) -> None:
        for k, v in vars(other).items():
            if isinstance(v, dict):  # ops and op_seconds: added per key
                mine = getattr(self, k)
                for key, n in v.items():
                    mine[key] += n
            else:
                setattr(self, k, getattr(self, k) + v)


@dataclass
class Invocations:
    count: int = 0
    durations: list[float] = field(default_factory=list)  # seconds, accounting excluded
    records: int = 0  # SQS records handed in
    batch_chunks: int = 0  # ReceiveMessage requests the batches cost (64 KB chunks)


def _sqs_payload(entries: Sequence[dict[str, Any]], body_key: str) -> int:
    size = 0
    for e in entries:
        size += len(str(e.get(body_key) or "").encode())
        for name, attr in (e.get("MessageAttributes") or {}).items():
            size += len(name) + len(str(attr.get("DataType", "")))
            size += len(str(attr.get("StringValue") or "").encode())
    return size


def _records_payload(records: Sequence[dict[str, Any]]) -> int:
    """The payload of a Lambda SQS event's records (what ReceiveMessage returned)."""
    size = 0
    for r in records:
        size += len((r.get("body") or "").encode())
        for name, attr in (r.get("messageAttributes") or {}).items():
            size += len(name) + len(str(attr.get("dataType", "")))
            size += len(str(attr.get("stringValue") or "").encode())
    return size


def _chunks(size: int) -> int:
    return max(1, math.ceil(size / SQS_BILLING_CHUNK))


class Meter:
    """Counts every AWS call made through botocore (boto3 and PynamoDB alike), by payer:
    inside a handler invocation the function; outside, the local machinery that stands
    in for AWS (the pollers for Lambda's event source mappings, the Scheduler emulation),
    which is not billed as such — the event source mappings are modeled per batch."""

    def __init__(self, local: Any) -> None:
        from nudge.adapters.tables import table_specs

        res = local.resources
        self.local = local
        self.accounts: dict[str, Account] = defaultdict(Account)
        self.unbilled: Counter[str] = Counter()
        self.invocations: dict[str, Invocations] = defaultdict(Invocations)
        self.inbox_writes: dict[str, float] = {}
        self.on_ingest: Callable[[dict[str, Any], Any, float], None] | None = None
        self._lock = threading.Lock()
        self._sizes: dict[tuple[str, str], int] = {}
        self._paused = 0
        self.keys: dict[str, list[str]] = {}
        for spec in table_specs():
            names = [spec.partition_key.name] + ([spec.sort_key.name] if spec.sort_key else [])
            self.keys[res.tables[spec.logical]] = names
        self.inbox_table = res.tables[C.INBOX]
        self.profiles_table = res.tables[C.PROFILES]
        self.queue_of_url = {url: logical for logical, url in res.queue_urls.items()}
        for name, url in res.queues.items():
            self.queue_of_url.setdefault(url, name)
        self._original: Any = None

    # -- lifecycle
    def __enter__(self) -> Meter:
        import botocore.client

        meter = self
        # _make_api_call is private (botocore-stubs leave it out): the one method every
        # client call goes through, so the one place to meter them all
        original = self._original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

        def metered(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if meter._paused:
                return original(client, operation_name, api_params)
            t0 = time.perf_counter()
            response: Any = None
            failed = None
            try:
                response = original(client, operation_name, api_params)
                return response
            except Exception as err:
                failed = err
                raise
            finally:
                t1 = time.perf_counter()
                meter._record(
                    client.meta.service_model.service_name,
                    operation_name,
                    api_params,
                    response,
                    failed,
                    t1 - t0,
                    t1,
                )
                _tls.overhead = getattr(_tls, "overhead", 0.0) + time.perf_counter() - t1

        botocore.client.BaseClient._make_api_call = metered  # type: ignore[attr-defined]
        for fn in self.local.functions.values():
            fn.handler = self._wrap(fn.name, fn.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import botocore.client

        botocore.client.BaseClient._make_api_call = self._original  # type: ignore[attr-defined]
        for fn in self.local.functions.values():
            fn.handler = getattr(fn.handler, "__wrapped__", fn.handler)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def _wrap(self, name: str, handler: Callable[[dict[str, Any], Any], Any]) -> Any:
        meter = self

        def invoked(event: dict[str, Any], context: Any) -> Any:
            previous = getattr(_tls, "fn", None), getattr(_tls, "overhead", 0.0)
            _tls.fn, _tls.overhead = name, 0.0
            t0 = time.perf_counter()
            result = None
            try:
                result = handler(event, context)
                return result
            finally:
                t1 = time.perf_counter()
                took = t1 - t0 - _tls.overhead
                _tls.fn, _tls.overhead = previous
                records = event.get("Records") if isinstance(event, dict) else None
                with meter._lock:
                    inv = meter.invocations[name]
                    inv.count += 1
                    inv.durations.append(max(took, 0.0))
                    if records:
                        inv.records += len(records)
                        inv.batch_chunks += _chunks(_records_payload(records))
                if name == C.FN_INGEST and meter.on_ingest is not None:
                    meter.on_ingest(event, result, t1)

        # attr-defined: a function attribute, as functools.wraps sets it (__exit__ reads it)
        invoked.__wrapped__ = handler  # type: ignore[attr-defined]
        return invoked

    # -- accounting
    def _payer(self, service: str, op: str, params: dict[str, Any], response: Any) -> str | None:
        fn = getattr(_tls, "fn", None)
        if fn is not None:
            return str(fn)
        # outside any handler: the local stand-ins for AWS
        if service == "sqs" and op in ("SendMessage", "SendMessageBatch"):
            queue = self.queue_of_url.get(params.get("QueueUrl", ""), "")
            # the Scheduler emulation: a deferred action put back on the actions queue, or
            # a target that failed for good into the scheduler's dead-letter queue
            return "scheduler:deferrals" if queue == C.ACTIONS_QUEUE else "scheduler:dead_letters"
        queue = self.queue_of_url.get(params.get("QueueUrl", ""), "?")
        self.unbilled[f"{service}:{op}" + (f" ({queue})" if service == "sqs" else "")] += 1
        return None

    def _record(
        self,
        service: str,
        op: str,
        params: dict[str, Any],
        response: Any,
        failed: BaseException | None,
        seconds: float,
        done_at: float,
    ) -> None:
        with self._lock:
            payer = self._payer(service, op, params, response)
            if payer is None:
                return
            acc = self.accounts[payer]
            acc.ops[f"{service}:{op}"] += 1
            acc.op_seconds[f"{service}:{op}"] += seconds
            acc.aws_seconds += seconds
            if service == "dynamodb":
                self._dynamodb(acc, op, params, response, failed, done_at)
            elif service == "sqs":
                if op == "SendMessageBatch":
                    acc.sqs_requests += _chunks(
                        _sqs_payload(params.get("Entries", []), "MessageBody")
                    )
                    acc.sqs_messages += len(params.get("Entries", []))
                elif op == "SendMessage":
                    acc.sqs_requests += _chunks(_sqs_payload([params], "MessageBody"))
                    acc.sqs_messages += 1
                    if payer == "scheduler:deferrals":
                        acc.scheduler_invocations += 1
                elif op == "ReceiveMessage":
                    msgs = (response or {}).get("Messages", [])
                    acc.sqs_requests += _chunks(_sqs_payload(msgs, "Body"))
                else:
                    acc.sqs_requests += 1
            elif service == "scheduler":
                acc.scheduler_api_calls += 1
            elif service == "firehose":
                records = params.get("Records") or (
                    [params["Record"]] if "Record" in params else []
                )
                for r in records:
                    n = len(r.get("Data") or b"")
                    acc.firehose_records += 1
                    acc.firehose_bytes += n
                    acc.firehose_billed_bytes += max(1, math.ceil(n / FIREHOSE_RECORD_UNIT)) * (
                        FIREHOSE_RECORD_UNIT
                    )
            elif service in ("sesv2", "ses") and op in ("SendEmail", "SendRawEmail"):
                dest = params.get("Destination") or {}
                acc.ses_mails += max(
                    1,
                    sum(
                        len(dest.get(k) or [])
                        for k in ("ToAddresses", "CcAddresses", "BccAddresses")
                    ),
                )
            elif service == "sns" and op == "Publish":
                if params.get("PhoneNumber"):
                    acc.sns_sms += 1
                else:
                    acc.sns_push += 1
            elif service == "secretsmanager":
                acc.secrets_calls += 1

    def _key(self, table: str, item: dict[str, Any]) -> tuple[str, str]:
        names = self.keys.get(table, [])
        return table, json.dumps([item.get(n) for n in names], sort_keys=True, default=str)

    def _put(self, table: str, item: dict[str, Any], failed: bool, factor: int = 1) -> float:
        size = item_size(item)
        key = self._key(table, item)
        before = self._sizes.get(key, 0)
        if not failed:
            self._sizes[key] = size
        return factor * write_units(max(size, before))

    def _delete(self, table: str, key_item: dict[str, Any], failed: bool, factor: int = 1) -> float:
        key = self._key(table, key_item)
        before = self._sizes.get(key, 0)
        if not failed:
            self._sizes.pop(key, None)
        return factor * write_units(before)

    def _dynamodb(
        self,
        acc: Account,
        op: str,
        params: dict[str, Any],
        response: Any,
        failed: BaseException | None,
        done_at: float,
    ) -> None:
        table = params.get("TableName", "")
        bad = failed is not None
        if op == "PutItem":
            acc.write_units += self._put(table, params["Item"], bad)
            if not bad and table == self.inbox_table:
                user = params["Item"].get("user_id", {}).get("S", "")
                self.inbox_writes.setdefault(user, done_at)
        elif op == "UpdateItem":
            key = self._key(table, params["Key"])
            acc.write_units += write_units(self._sizes.get(key, 0))
        elif op == "DeleteItem":
            acc.write_units += self._delete(table, params["Key"], bad)
        elif op == "BatchWriteItem":
            for name, requests in params.get("RequestItems", {}).items():
                for r in requests:
                    if "PutRequest" in r:
                        acc.write_units += self._put(name, r["PutRequest"]["Item"], bad)
                    elif "DeleteRequest" in r:
                        acc.write_units += self._delete(name, r["DeleteRequest"]["Key"], bad)
        elif op == "TransactWriteItems":
            for t in params.get("TransactItems", []):
                if "Put" in t:
                    acc.write_units += self._put(t["Put"]["TableName"], t["Put"]["Item"], bad, 2)
                elif "Delete" in t:
                    acc.write_units += self._delete(
                        t["Delete"]["TableName"], t["Delete"]["Key"], bad, 2
                    )
                elif "Update" in t:
                    key = self._key(t["Update"]["TableName"], t["Update"]["Key"])
                    acc.write_units += 2 * write_units(self._sizes.get(key, 0))
                elif "ConditionCheck" in t:
                    key = self._key(t["ConditionCheck"]["TableName"], t["ConditionCheck"]["Key"])
                    acc.write_units += 2 * write_units(self._sizes.get(key, 0))
        elif bad:
            return
        elif op == "GetItem":
            item = (response or {}).get("Item")
            acc.read_units += read_units(
                item_size(item) if item else 0, consistent=bool(params.get("ConsistentRead"))
            )
        elif op == "BatchGetItem":
            found = (response or {}).get("Responses", {})
            unprocessed = (response or {}).get("UnprocessedKeys", {})
            for name, request in params.get("RequestItems", {}).items():
                consistent = bool(request.get("ConsistentRead"))
                items = found.get(name, [])
                for item in items:
                    acc.read_units += read_units(item_size(item), consistent=consistent)
                missing = (
                    len(request.get("Keys", []))
                    - len(items)
                    - len(unprocessed.get(name, {}).get("Keys", []))
                )
                acc.read_units += max(0, missing) * read_units(0, consistent=consistent)
        elif op in ("Query", "Scan"):
            items = (response or {}).get("Items", [])
            acc.read_units += read_units(
                sum(item_size(i) for i in items), consistent=bool(params.get("ConsistentRead"))
            )
        elif op == "TransactGetItems":
            for item in (response or {}).get("Responses", []):
                acc.read_units += 2 * read_units(item_size(item.get("Item") or {}), consistent=True)


# ---- local mode ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_mode(*, background_pollers: bool) -> Iterator[Any]:
    """`nudge dev` in this process on free ports; moto's state is reset afterwards, so the
    next one starts empty."""
    import tempfile

    from nudge.local.server import LocalConfig, LocalMode

    with tempfile.TemporaryDirectory(prefix="nudge-bench-") as tmp:
        local = LocalMode(
            LocalConfig(
                port=_free_port(),
                aws_port=_free_port(),
                write_key=WRITE_KEY,
                admin_key=ADMIN_KEY,
                background_pollers=background_pollers,
                triggers_path=str(_bench_triggers(Path(tmp))),
                # the event path only: the hourly train run is not a cost per event, nor
                # is the catalog read (on AWS once per container and 5 minutes)
                train_schedule=None,
                extra_env={C.ENV_MODELS_BUCKET: ""},
            )
        )
        try:
            local.start()
            yield local
        finally:
            local.stop()
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()


BENCH_LATENESS = "7d"


def _bench_triggers(root: Path) -> Path:
    """The default triggers with `lateness: 7d` (see ASSUMPTIONS): a workload request
    holds up to ~100 minutes of events, which the default 1 h lateness would count without
    sending; the bench measures traffic that arrives as it happens."""
    import yaml

    from nudge.local.lambdas import repo_root

    source = repo_root() / "triggers"
    doc = yaml.safe_load((source / "default.yaml").read_text())
    for trigger in doc["triggers"]:
        trigger["lateness"] = BENCH_LATENESS
    (root / "triggers").mkdir()
    (root / "triggers" / "default.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "templates").symlink_to(source.parent / "templates")
    return root / "triggers"


@contextlib.contextmanager
def partition_queries() -> Iterator[None]:
    """moto 5.2 answers every Query by sorting all the items of the table
    (Table.all_items), so as the wake-up index and the delivery log grow, every Query of
    the check and deliver functions gets slower, and their measured durations with it;
    DynamoDB reads the one partition. While the AWS requests are counted, a Query on a
    table (not an index) reads its partition only: the same results, in the same order.
    Local mode end to end runs without this (as `nudge dev` does)."""
    from moto.dynamodb.models.table import Table

    original_query, original_all = Table.query, Table.all_items
    current = threading.local()

    def all_items(self: Table) -> Any:
        if getattr(current, "table", None) is self:
            part = self.items.get(current.hash_key)
            if part is None:
                return []
            items = list(part.values()) if self.range_key_attr else [part]
            return sorted(items, key=lambda x: x.range_key) if self.range_key_attr else items
        return original_all(self)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        current.table, current.hash_key = self, hash_key
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            current.table = current.hash_key = None

    # method-assign: moto's Table patched while the requests are counted
    Table.query, Table.all_items = query, all_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query, Table.all_items = original_query, original_all  # type: ignore[method-assign]


@contextlib.contextmanager
def unbuffered_firehose() -> Iterator[None]:
    """Local mode makes moto's Firehose append each call's records to the hour's object
    (rewritten whole, up to 4 MB: nudge.local.emulation) so that reads see few objects;
    that copy runs inside PutRecordBatch, where the process function waits for it, and it
    grows with the archive (AWS buffers asynchronously). While the AWS requests are
    counted, moto writes one object per call again (its own behavior)."""
    import moto.firehose.models as fm

    original = getattr(fm, "_nudge_original_put_s3_records", None)
    if original is None:
        yield
        return
    buffered = fm.FirehoseBackend.put_s3_records
    # method-assign: moto's backend patched while the requests are counted
    fm.FirehoseBackend.put_s3_records = original  # type: ignore[method-assign]
    try:
        yield
    finally:
        fm.FirehoseBackend.put_s3_records = buffered  # type: ignore[method-assign]


def lambda_memory_mb() -> dict[str, int]:
    """Each function's memory as infra/constructs gives it (NudgeFunction(name=C.FN_...,
    memory_size=N), the construct's default when absent)."""
    from nudge.local.lambdas import repo_root

    folder = repo_root() / "infra" / "constructs"
    default = 512
    found: dict[str, int] = {}
    function_py = folder / "function.py"
    if function_py.is_file():
        for node in ast.walk(ast.parse(function_py.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                args = node.args.kwonlyargs
                for arg, dflt in zip(args, node.args.kw_defaults, strict=True):
                    if (
                        arg.arg == "memory_size"
                        and isinstance(dflt, ast.Constant)
                        and isinstance(dflt.value, int)
                    ):
                        default = dflt.value
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "NudgeFunction"):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            name = kw.get("name")
            if not (isinstance(name, ast.Attribute) and hasattr(C, name.attr)):
                continue
            mem = kw.get("memory_size")
            found[getattr(C, name.attr)] = (
                mem.value
                if isinstance(mem, ast.Constant) and isinstance(mem.value, int)
                else default
            )
    if not found:
        raise RuntimeError(f"no NudgeFunction found in {folder}: cannot read memory sizes")
    return found


class Progress:
    """The bench's phases on stderr. On a terminal, one rich display: a line per phase,
    a bar for a counted one (`task`), a spinner for the others (`note`), each with its
    time. Elsewhere (a log, a pipe), a line per phase and per tenth of a counted one,
    with the time since the start."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.perf_counter()
        self._bar: Any = None
        self._open: Any = None  # the spinner of the phase a note started

    def _display(self) -> Any:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TimeElapsedColumn

            self._bar = Progress(
                SpinnerColumn(finished_text="[green]✓"),
                "[progress.description]{task.description}",
                BarColumn(),
                "{task.fields[count]}",
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
        return self._bar

    def _close_phase(self) -> None:
        if self._open is not None:
            self._bar.update(self._open, total=1, completed=1)
            self._open = None

    def _line(self, text: str) -> None:
        at = time.perf_counter() - self.started
        print(f"bench [{at:5.0f} s] {text}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def task(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        if self.tty:
            bar = self._display()
            self._close_phase()
            task = bar.add_task(label, total=total, count=f"0/{total:,}")
            done = [0]

            def advance_bar(n: int) -> None:
                done[0] += n
                bar.update(task, advance=n, count=f"{done[0]:,}/{total:,}")

            yield advance_bar
            bar.update(task, completed=total)
            return
        count = [0, 0]

        def advance(n: int) -> None:
            count[0] += n
            tenth = int(10 * count[0] / max(total, 1))
            if tenth > count[1]:
                count[1] = tenth
                self._line(f"{label}: {count[0]:,}/{total:,}")

        self._line(f"{label} ...")
        yield advance

    def note(self, text: str) -> None:
        """A phase that is not counted: it lasts until the next phase starts."""
        if self.tty:
            bar = self._display()
            self._close_phase()
            self._open = bar.add_task(text, total=None, count="")
            return
        self._line(text)

    def close(self) -> None:
        if self._bar is not None:
            self._close_phase()
            self._bar.stop()
            self._bar = None


# ---- aws: requests per event through the real handlers ------------------------------------
EVENT_PATH = (C.FN_INGEST, C.FN_PROCESS, C.FN_CHECK, "esm:events")
MINUTES_PER_MONTH = 30 * 24 * 60  # the wake-up sweep's invocations (D49)
DELIVERY = (C.FN_DELIVER, "esm:actions", "scheduler:deferrals", "scheduler:dead_letters")


def _post(session: Any, url: str, batch: list[dict[str, Any]]) -> None:
    body = gzip.compress(json.dumps({"batch": batch}, separators=(",", ":")).encode())
    r = session.post(
        f"{url}/v1/batch",
        data=body,
        auth=(WRITE_KEY, ""),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=60,
    )
    r.raise_for_status()
    if r.json().get("details"):
        raise RuntimeError(f"the ingest function rejected bench events: {r.text[:500]}")


def _modeled_accounts(meter: Meter) -> dict[str, Account]:
    """The functions' accounts, plus what AWS itself does around them: the event source
    mappings (one ReceiveMessage and one DeleteMessageBatch per batch). The wake-up
    sweep's Scheduler invocations are a fixed cost (cost_model's fixed_usd_per_month)."""
    accounts: dict[str, Account] = defaultdict(Account)
    for name, acc in meter.accounts.items():
        accounts[name].add(acc)
    for fn, queue in ((C.FN_PROCESS, "events"), (C.FN_DELIVER, "actions")):
        inv = meter.invocations.get(fn, Invocations())
        esm = accounts[f"esm:{queue}"]
        esm.ops["sqs:ReceiveMessage"] += inv.count
        esm.ops["sqs:DeleteMessageBatch"] += inv.count
        esm.sqs_requests += inv.batch_chunks + inv.count
    return accounts


def _per_event(accounts: dict[str, Account], names: Sequence[str], n: int) -> dict[str, Any]:
    total = Account()
    for name in names:
        if name in accounts:
            total.add(accounts[name])
    by_service: Counter[str] = Counter()
    for op, v in total.ops.items():
        by_service[op.split(":")[0]] += v

    def per(x: float) -> float:
        return round(x / n, 4)

    return {
        "aws_requests": per(sum(total.ops.values())),
        "aws_requests_by_service": {k: per(v) for k, v in sorted(by_service.items())},
        "dynamodb_write_units": per(total.write_units),
        "dynamodb_read_units": per(total.read_units),
        "sqs_billed_requests": per(total.sqs_requests),
        "sqs_messages": per(total.sqs_messages),
        "scheduler_api_calls": per(total.scheduler_api_calls),
        "scheduler_invocations": per(total.scheduler_invocations),
        "firehose_records": per(total.firehose_records),
        "firehose_billed_kb": round(total.firehose_billed_bytes / 1024 / n, 4),
        "firehose_bytes": per(total.firehose_bytes),
        "ses_mails": per(total.ses_mails),
        "sns_push": per(total.sns_push),
        "sns_sms": per(total.sns_sms),
        "secrets_manager_calls": per(total.secrets_calls),
        "by_payer": {
            name: {op: per(v) for op, v in sorted(accounts[name].ops.items())}
            for name in names
            if name in accounts and accounts[name].ops
        },
    }


def _lambda_figures(meter: Meter, memory: dict[str, int], n: int) -> dict[str, Any]:
    out = {}
    for fn, inv in sorted(meter.invocations.items()):
        if not inv.count:
            continue
        ms = [d * 1000 for d in inv.durations]
        billed = sum(math.ceil(x) for x in ms)
        acc = meter.accounts.get(fn, Account())
        calls = sum(acc.ops.values())
        out[fn] = {
            "invocations_per_event": round(inv.count / n, 4),
            "memory_mb": memory.get(fn, 512),
            "duration_ms_p50": round(statistics.median(ms), 2),
            "duration_ms_mean": round(statistics.fmean(ms), 2),
            "billed_gb_s_per_event": billed / 1000 * memory.get(fn, 512) / 1024 / n,
            "aws_calls_per_invocation": round(calls / inv.count, 2),
            "aws_call_ms_mean": round(acc.aws_seconds * 1000 / calls, 2) if calls else 0.0,
            "share_of_duration_in_aws_calls": round(
                acc.aws_seconds / max(sum(inv.durations), 1e-9), 2
            ),
            "records_per_batch": round(inv.records / inv.count, 2) if inv.records else None,
            "local_aws_call_ms_by_operation": {
                op: round(acc.op_seconds[op] * 1000 / k, 2) for op, k in sorted(acc.ops.items())
            },
        }
    return out


def _scan(local: Any, table: str) -> list[dict[str, Any]]:
    import boto3

    ddb = boto3.client(
        "dynamodb", endpoint_url=local.resources.endpoint_url, region_name=local.resources.region
    )
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page.get("Items", []))
    return items


def bench_aws(
    workload: Workload, cfg: BenchConfig, memory: dict[str, int], progress: Progress
) -> dict[str, Any]:
    """The workload through local mode with its pollers run inline: for each request the
    clock moves to its last event's time (the wake-ups due on the way fire first, in
    deadline order, through the Scheduler emulation), the request goes to the ingest
    function over HTTP and the queues are drained; at the end the clock runs on
    `tail_days` so that every timer armed fires."""
    import requests

    started = time.perf_counter()
    with (
        local_mode(background_pollers=False) as local,
        partition_queries(),
        unbuffered_firehose(),
        Meter(local) as meter,
    ):
        start = bench_start(local.clock.now())
        events = workload.materialize(start)
        chunks = requests_of(events, cfg.client_batch)
        session = requests.Session()
        lags: list[float] = []
        with progress.task(f"aws {workload.name}", len(chunks)) as advance:
            for chunk in chunks:
                at = _ts(chunk[-1])
                if at > local.clock.now() + timedelta(seconds=1):
                    local.move_clock({"set": at.isoformat()})
                else:  # a wake-up that fired took the clock past it (the clock runs on)
                    local.move_clock({"advance_seconds": 0})
                sent = local.clock.now()
                lags.extend((sent - _ts(ev)).total_seconds() for ev in chunk)
                _post(session, local.url, chunk)
                local.settle()
                advance(1)
        progress.note(f"aws {workload.name}: the clock runs {cfg.tail_days} days on (timers fire)")
        local.move_clock({"advance_seconds": cfg.tail_days * 86_400})
        local.settle()
        with meter.paused():
            profiles = _scan(local, meter.profiles_table)
            deliveries = _scan(local, local.resources.tables[C.DELIVERIES])
    n = len(events)
    accounts = _modeled_accounts(meter)
    sizes = sorted(item_size(i) for i in profiles)
    statuses: Counter[str] = Counter()
    by_trigger: Counter[str] = Counter()
    for d in deliveries:
        statuses[f"{d['channel']['S']}:{d['status']['S']}"] += 1
        by_trigger[d["trigger_id"]["S"]] += 1
    process = meter.invocations.get(C.FN_PROCESS, Invocations())
    check_acc = accounts.get(C.FN_CHECK, Account())
    out = {
        "events": n,
        "users": workload.users,
        "span_hours": round(workload.span_s / 3600, 1),
        "requests": len(chunks),
        "arrival_lag_s": {
            "p50": round(statistics.median(lags), 1),
            "max": round(max(lags), 1),
            "note": "each request is sent at its last event's time",
        },
        "event_path_per_event": _per_event(accounts, EVENT_PATH, n),
        "delivery_per_event": _per_event(accounts, DELIVERY, n),
        "lambda": _lambda_figures(meter, memory, n),
        "process_batches": {
            "invocations": process.count,
            "records_per_batch": round(process.records / max(process.count, 1), 2),
        },
        "timers": {
            "wake_ups_fired": meter.invocations.get(C.FN_CHECK, Invocations()).count,
            "timer_messages_per_event": round(check_acc.sqs_messages / n, 4),
        },
        "actions": {
            "per_event": round(sum(by_trigger.values()) / n, 4),
            "by_trigger": dict(sorted(by_trigger.items())),
            "outcomes": dict(sorted(statuses.items())),
        },
        "profile_items": {
            "count": len(sizes),
            "bytes_p50": sizes[len(sizes) // 2] if sizes else 0,
            "bytes_p90": sizes[int(len(sizes) * 0.9)] if sizes else 0,
            "bytes_max": sizes[-1] if sizes else 0,
        },
        "local_calls_not_billed": dict(sorted(meter.unbilled.items())),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out["cost"] = cost_model(out, accounts, n)
    return out


# ---- cost -------------------------------------------------------------------------------------
def cost_model(aws: dict[str, Any], accounts: dict[str, Account], n: int) -> dict[str, Any]:
    """Dollars per million events, itemized, from the counted requests and units."""
    per_m = 1e6 / n
    lam = aws["lambda"]

    def lambda_cost(fns: Sequence[str]) -> tuple[float, float]:
        reqs = sum(lam[f]["invocations_per_event"] for f in fns if f in lam)
        gb_s = sum(lam[f]["billed_gb_s_per_event"] for f in fns if f in lam)
        return reqs * PRICES["lambda_per_request"] * 1e6, gb_s * PRICES[
            "lambda_per_gb_s_arm64"
        ] * 1e6

    def sum_of(names: Sequence[str]) -> Account:
        total = Account()
        for name in names:
            if name in accounts:
                total.add(accounts[name])
        return total

    ev = sum_of(EVENT_PATH)
    ingest_calls = lam.get(C.FN_INGEST, {}).get("invocations_per_event", 0.0)
    # the check function's requests are the sweep's, every minute: in the fixed cost
    req, _ = lambda_cost((C.FN_INGEST, C.FN_PROCESS))
    _, dur = lambda_cost((C.FN_INGEST, C.FN_PROCESS, C.FN_CHECK))
    event_path = {
        "api_gateway_http": ingest_calls * PRICES["http_api_per_request"] * 1e6,
        "lambda_requests": req,
        "lambda_duration": dur,
        "sqs_fifo": ev.sqs_requests * per_m * PRICES["sqs_fifo_per_request"],
        "dynamodb_writes": ev.write_units * per_m * PRICES["dynamodb_per_write_unit"],
        "dynamodb_reads": ev.read_units * per_m * PRICES["dynamodb_per_read_unit"],
        "scheduler": ev.scheduler_invocations * per_m * PRICES["scheduler_per_invocation"],
        "firehose": ev.firehose_billed_bytes * per_m / GB * PRICES["firehose_per_gb"],
        "s3_puts": ev.firehose_bytes * per_m / FIREHOSE_BUFFER_BYTES * PRICES["s3_per_put"],
    }
    dl = sum_of(DELIVERY)
    req, dur = lambda_cost((C.FN_DELIVER,))
    delivery = {
        "lambda_requests": req,
        "lambda_duration": dur,
        "sqs_fifo": dl.sqs_requests * per_m * PRICES["sqs_fifo_per_request"],
        "dynamodb_writes": dl.write_units * per_m * PRICES["dynamodb_per_write_unit"],
        "dynamodb_reads": dl.read_units * per_m * PRICES["dynamodb_per_read_unit"],
        "scheduler": dl.scheduler_invocations * per_m * PRICES["scheduler_per_invocation"],
        "secrets_manager": dl.secrets_calls * per_m * PRICES["secrets_manager_per_call"],
    }
    sending = {
        "ses": dl.ses_mails * per_m * PRICES["ses_per_mail"],
        "sns_mobile_push": dl.sns_push * per_m * PRICES["sns_mobile_push_per_publish"],
    }

    def rounded(d: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 4) for k, v in d.items()}

    sweep = sweep_cost_per_month(lam.get(C.FN_CHECK))
    return {
        "usd_per_million_events": round(sum(event_path.values()), 2),
        "event_path": rounded(event_path),
        "fixed_usd_per_month": round(sum(sweep.values()), 4),
        "fixed": {"wake_up_sweep": rounded(sweep)},
        "delivery_excluding_sending_usd_per_million_events": round(sum(delivery.values()), 2),
        "delivery": rounded(delivery),
        "sending_usd_per_million_events": rounded(sending),
        "messages_per_million_events": {
            "email": round(dl.ses_mails * per_m),
            "push": round(dl.sns_push * per_m),
            "sms_not_priced": round(dl.sns_sms * per_m),
        },
    }


def sweep_cost_per_month(check: dict[str, Any] | None) -> dict[str, float]:
    """The wake-up sweep's month (D49): an invocation every minute, whatever the traffic,
    each a Query of at least 1 read unit; `check`: the check function's measured figures
    (its median duration, rounded up to the ms, prices every minute: an upper bound, an
    empty minute takes less; None: 1 ms at 512 MB)."""
    ms = math.ceil(check["duration_ms_p50"]) if check else 1
    memory_gb = (check["memory_mb"] if check else 512) / 1024
    n = MINUTES_PER_MONTH
    return {
        "scheduler": n * PRICES["scheduler_per_invocation"],
        "lambda_requests": n * PRICES["lambda_per_request"],
        "lambda_duration": n * ms / 1000 * memory_gb * PRICES["lambda_per_gb_s_arm64"],
        "dynamodb_reads": n * PRICES["dynamodb_per_read_unit"],
    }


# ---- local mode end to end ----------------------------------------------------------------
FIRE_MARK = re.compile(rb'"messageId":\s*"fire-([^"]+)"')


def local_workload(
    events: int, users: int, seed: int
) -> list[tuple[str, str, dict[str, Any], str]]:
    """(user, event, properties, messageId) in send order: each user browses, adds to the
    cart, and views one product a third time somewhere in the run (repeat_product_view
    fires at once; with no device the push falls back to the in-app inbox). Users are
    interleaved, as many concurrent users would be."""
    rng = random.Random(f"{seed}-local")
    per_user = [events // users + (1 if u < events % users else 0) for u in range(users)]
    streams: list[list[tuple[str, str, dict[str, Any], str]]] = []
    for u, count in enumerate(per_user):
        user = f"local-u{u}-{seed}"
        hot = {"product_id": f"hot-{u}", "name": "Bench Lamp", "price": 40}
        seq: list[tuple[str, dict[str, Any]]] = []
        for _ in range(max(0, count - 3)):
            pid, name, price = rng.choice(CATALOG)
            kind = rng.choices(["Product Viewed", "Page Viewed", "Product Added"], [6, 3, 1])[0]
            if kind == "Page Viewed":
                seq.append((kind, {"name": "Home"}))
            else:
                seq.append((kind, {"product_id": pid, "name": name, "price": price}))
        positions = sorted(rng.sample(range(len(seq) + 3), 3))
        for p in positions:
            seq.insert(p, ("Product Viewed", hot))
        stream = []
        views = 0
        for i, (name, props) in enumerate(seq):
            mid = f"local-{seed}-{u}-{i}"
            if props is hot:
                views += 1
                if views == 3:
                    mid = f"fire-{user}"
            stream.append((user, name, props, mid))
        streams.append(stream)
    out = []
    heads = [0] * users
    remaining = list(range(users))
    while remaining:
        k = rng.randrange(len(remaining))
        u = remaining[k]
        out.append(streams[u][heads[u]])
        heads[u] += 1
        if heads[u] == len(streams[u]):
            remaining[k] = remaining[-1]
            remaining.pop()
    return out


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def _unloaded_latencies(
    client: Any, local: Any, meter: Meter, accepted: dict[str, float], cfg: BenchConfig
) -> list[float]:
    """The same trigger with nothing queued: two views processed, then the third alone."""
    out = []
    for k in range(cfg.latency_samples):
        user = f"idle-u{k}-{cfg.seed}"
        props = {"product_id": f"idle-{k}", "name": "Bench Lamp", "price": 40}
        for i in range(2):
            client.track(
                user_id=user, event="Product Viewed", properties=props, message_id=f"idle-{k}-{i}"
            )
        client.flush()
        local.settle(60)
        client.track(
            user_id=user, event="Product Viewed", properties=props, message_id=f"fire-{user}"
        )
        client.flush()
        deadline = time.perf_counter() + 30
        while user not in meter.inbox_writes and time.perf_counter() < deadline:
            time.sleep(0.002)
        if user in meter.inbox_writes and user in accepted:
            out.append((meter.inbox_writes[user] - accepted[user]) * 1000)
    return out


def bench_local(cfg: BenchConfig, progress: Progress) -> dict[str, Any]:
    """`nudge dev` as a developer runs it (pollers in the background), driven by
    Segment's Python SDK with gzip, 100 events per request. Acceptance is when the ingest
    function returned 200 for the request holding the event; the in-app message
    appears when the deliver function's inbox write returns (both seen in-process, so
    nothing polls the server while it is measured); the inboxes are read through the API
    afterwards to check."""
    import logging

    import requests
    from segment.analytics import Client  # type: ignore[import-untyped]  # no stubs, no py.typed

    logging.getLogger("segment").setLevel(logging.CRITICAL)
    plan = local_workload(cfg.local_events, cfg.local_users, cfg.seed)
    accepted: dict[str, float] = {}
    accept_times: list[float] = []
    errors: list[str] = []
    counted: list[Callable[[int], None]] = [lambda n: None]  # the progress bar, once it runs

    def on_ingest(event: dict[str, Any], result: Any, t: float) -> None:
        if not isinstance(result, dict) or int(result.get("statusCode", 0)) != 200:
            return
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        with contextlib.suppress(OSError):
            raw = gzip.decompress(raw)
        for m in FIRE_MARK.finditer(raw):
            accepted.setdefault(m.group(1).decode(), t)
        accept_times.append(t)
        counted[0](raw.count(b'"messageId"'))

    with local_mode(background_pollers=True) as local, Meter(local) as meter:
        meter.on_ingest = on_ingest
        client = Client(
            WRITE_KEY,
            host=local.url,
            upload_size=cfg.client_batch,
            gzip=True,
            max_queue_size=len(plan) + 1,
            on_error=lambda err, batch: errors.append(repr(err)),
        )
        with progress.task("local end to end (Segment SDK): accepted", len(plan)) as advance:
            counted[0] = advance
            t0 = time.perf_counter()
            for user, name, props, mid in plan:
                if name == "Page Viewed":
                    client.page(user_id=user, name=props["name"], message_id=mid)
                else:
                    client.track(user_id=user, event=name, properties=props, message_id=mid)
            client.flush()
            t_flushed = time.perf_counter()
            counted[0] = lambda n: None
        progress.note("local end to end: waiting for the queues to drain")
        local.settle(600)
        t_settled = time.perf_counter()
        last_accept = max(accept_times) if accept_times else t_flushed
        retries = {p.function.name: p.failures for p in local.pollers}
        unloaded = _unloaded_latencies(client, local, meter, accepted, cfg)
        client.shutdown()
        with meter.paused():
            s = requests.Session()
            verified = 0
            for user in sorted({u for u, *_ in plan}):
                r = s.get(
                    f"{local.url}/v1/users/{user}/messages",
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                    timeout=30,
                )
                r.raise_for_status()
                if any(m.get("trigger") == "repeat_product_view" for m in r.json()["messages"]):
                    verified += 1
        inbox = dict(meter.inbox_writes)
    loaded = {u: t for u, t in accepted.items() if not u.startswith("idle-")}
    latencies = [(inbox[u] - t) * 1000 for u, t in loaded.items() if u in inbox]
    n = len(plan)
    return {
        "events": n,
        "users": cfg.local_users,
        "client": f"segment-analytics-python, gzip, upload_size={cfg.client_batch}",
        "accepted_events_per_second": round(n / (last_accept - t0)),
        "end_to_end_events_per_second": round(n / (t_settled - t0)),
        "seconds_to_accept": round(last_accept - t0, 2),
        "seconds_to_settle": round(t_settled - t0, 2),
        "inapp_latency_ms": {
            "samples": len(latencies),
            "p50": round(_quantile(latencies, 0.5), 1) if latencies else None,
            "p99": round(_quantile(latencies, 0.99), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
        },
        "inapp_latency_unloaded_ms": {
            "samples": len(unloaded),
            "p50": round(_quantile(unloaded, 0.5), 1) if unloaded else None,
            "max": round(max(unloaded), 1) if unloaded else None,
            "note": "one event at a time, nothing queued: the third view of a user whose "
            "first two were processed before",
        },
        "handler_retries": retries,
        "inapp_messages_expected": len(loaded),
        "inapp_messages_verified_via_api": verified,
        "sdk_errors": errors[:5],
        "note": "as `nudge dev` runs: moto in a process of its own; the handlers, the "
        "pollers, the HTTP server and the SDK share this one (one GIL; "
        f"{os.cpu_count()} cores): this measures the code path, not AWS",
    }


# ---- the run ---------------------------------------------------------------------------------
SUMMARY_KEYS = (
    "core_ratio_to_json_loads",
    "write_units_per_event",
    "read_units_per_event",
    "sqs_requests_per_event",
    "scheduler_calls_per_event",
    "usd_per_million_events",
    "usd_per_million_events_dense",
    "fixed_usd_per_month",
    "local_events_per_second",
    "local_p99_ms",
    "heavy_user_item_bytes",
)
DEFINITIONS = {
    "core_ratio_to_json_loads": "sparse, one event per call: (parse + Profile.apply + "
    "Engine.on_events + serialization) µs / json.loads µs of the same SQS bodies, same run",
    "write_units_per_event": "sparse, event path (ingest, process, check): DynamoDB write "
    "units from item sizes",
    "read_units_per_event": "sparse, event path: DynamoDB read units from returned item sizes",
    "sqs_requests_per_event": "sparse, event path: billed SQS requests (64 KB chunks), the "
    "event source mapping's ReceiveMessage and DeleteMessageBatch per batch included",
    "scheduler_calls_per_event": "sparse, event path: EventBridge Scheduler API calls the "
    "functions make, and invocations billed per event (the wake-up sweep's, every minute, "
    "are a fixed cost: fixed_usd_per_month)",
    "usd_per_million_events": "sparse, event path (HTTP API, Lambda, SQS, DynamoDB, "
    "Firehose, S3), sending and delivery excluded; the wake-up sweep's fixed monthly cost "
    "apart (fixed_usd_per_month)",
    "fixed_usd_per_month": "the wake-up sweep: 43,200 Scheduler and check invocations a "
    "month, whatever the traffic (an upper bound: each minute priced at the median duration "
    "of the check invocations that had timers; X-Ray and CloudWatch Logs not included)",
    "usd_per_million_events_dense": "the same for the dense workload",
    "local_events_per_second": "local mode end to end: events / (first send → every queue "
    "drained), Segment's SDK with gzip",
    "local_p99_ms": "local mode: event accepted → in-app message written, p99 under that load",
    "heavy_user_item_bytes": "the heavy user's profile item as stored (DynamoDB item size) "
    "after the heavy workload",
}


@contextlib.contextmanager
def _quiet_environment() -> Iterator[None]:
    """Powertools off (no tracing, no metrics printed, warnings only), as local mode and
    the tests run the handlers; restored afterwards."""
    values = {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "versions": {p: version(p) for p in ("moto", "boto3", "pydantic", "pynamodb")},
    }


def run(cfg: BenchConfig, *, progress: Progress) -> dict[str, Any]:
    started = time.perf_counter()
    with _quiet_environment():
        memory = lambda_memory_mb()
        loads = workloads(cfg)
        result: dict[str, Any] = {
            "summary": {},
            "definitions": DEFINITIONS,
            "machine": machine(),
            "config": asdict(cfg),
            "anchors": {},
            "workloads": {},
        }
        for w in loads:
            progress.note(f"core {w.name}: {len(w.events):,} events, {cfg.core_rounds} rounds")
            result["workloads"][w.name] = {
                "description": w.description,
                "core": bench_core(w, cfg),
            }
        result["anchors"] = anchors(loads[0])
        for w in loads:
            result["workloads"][w.name]["aws"] = bench_aws(w, cfg, memory, progress)
        result["local"] = bench_local(cfg, progress)
    result["lambda_memory_mb"] = memory
    result["prices"] = PRICES
    result["assumptions"] = ASSUMPTIONS
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    wl = result["workloads"]
    sparse = wl["sparse"]["aws"]
    path = sparse["event_path_per_event"]
    result["summary"] = {
        "core_ratio_to_json_loads": wl["sparse"]["core"]["one_event_per_call"][
            "ratio_to_json_loads"
        ],
        "write_units_per_event": path["dynamodb_write_units"],
        "read_units_per_event": path["dynamodb_read_units"],
        "sqs_requests_per_event": path["sqs_billed_requests"],
        "scheduler_calls_per_event": round(
            path["scheduler_api_calls"] + path["scheduler_invocations"], 4
        ),
        "usd_per_million_events": sparse["cost"]["usd_per_million_events"],
        "usd_per_million_events_dense": wl["dense"]["aws"]["cost"]["usd_per_million_events"],
        "fixed_usd_per_month": sparse["cost"]["fixed_usd_per_month"],
        "local_events_per_second": result["local"]["end_to_end_events_per_second"],
        "local_p99_ms": result["local"]["inapp_latency_ms"]["p99"],
        "heavy_user_item_bytes": wl["heavy"]["aws"]["profile_items"]["bytes_max"],
    }
    return result


# ---- output -----------------------------------------------------------------------------------
TABLE_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core µs/event, 1 per call", ("core", "one_event_per_call", "total_us")),
    ("  json.loads µs/event", ("core", "one_event_per_call", "json_loads_us")),
    ("  ratio to json.loads", ("core", "one_event_per_call", "ratio_to_json_loads")),
    ("  parse µs", ("core", "one_event_per_call", "parse_us")),
    ("  Profile.apply µs", ("core", "one_event_per_call", "apply_us")),
    ("  Engine.on_events µs", ("core", "one_event_per_call", "engine_us")),
    ("  serialization µs", ("core", "one_event_per_call", "serialize_us")),
    ("  events/s per core", ("core", "one_event_per_call", "events_per_second_per_core")),
    ("core µs/event, batches of 10", ("core", "sqs_batches_of_10", "total_us")),
    ("  ratio to json.loads", ("core", "sqs_batches_of_10", "ratio_to_json_loads")),
    ("AWS requests/event", ("aws", "event_path_per_event", "aws_requests")),
    ("DynamoDB write units/event", ("aws", "event_path_per_event", "dynamodb_write_units")),
    ("DynamoDB read units/event", ("aws", "event_path_per_event", "dynamodb_read_units")),
    ("SQS billed requests/event", ("aws", "event_path_per_event", "sqs_billed_requests")),
    ("Scheduler API calls/event", ("aws", "event_path_per_event", "scheduler_api_calls")),
    ("Scheduler invocations/event", ("aws", "event_path_per_event", "scheduler_invocations")),
    ("Firehose records/event", ("aws", "event_path_per_event", "firehose_records")),
    ("events per process batch", ("aws", "process_batches", "records_per_batch")),
    ("profile item bytes p50", ("aws", "profile_items", "bytes_p50")),
    ("profile item bytes max", ("aws", "profile_items", "bytes_max")),
    ("actions/event", ("aws", "actions", "per_event")),
    ("$/M events, event path", ("aws", "cost", "usd_per_million_events")),
    ("$/month fixed (wake-up sweep)", ("aws", "cost", "fixed_usd_per_month")),
    (
        "$/M events, delivery (no sending)",
        ("aws", "cost", "delivery_excluding_sending_usd_per_million_events"),
    ),
    ("$/M events, SES", ("aws", "cost", "sending_usd_per_million_events", "ses")),
)


def _dig(d: Any, path: Sequence[str]) -> Any:
    for k in path:
        d = d[k]
    return round(d, 4) if isinstance(d, float) else d


def report_tables(r: dict[str, Any]) -> list[Any]:
    """The report for people, as rich renderables: the summary, the workloads side by
    side, the sparse event path's costs, local mode end to end."""
    from rich.table import Table
    from rich.text import Text

    def titled(title: str, table: Table) -> list[Any]:
        return [Text(""), Text(title, style="bold"), table]

    m = r["machine"]
    heading = (
        f"nudge bench — {m['cpus_usable']} cores, Python {m['python']} ({m['machine']}), "
        f"{r['elapsed_s']} s"
    )
    summary = Table(show_header=False)
    summary.add_column(no_wrap=True)
    summary.add_column(justify="right", style="bold")
    for k in SUMMARY_KEYS:
        summary.add_row(k, str(r["summary"][k]))
    names = list(r["workloads"])
    per = Table()
    per.add_column("", no_wrap=True)
    for n in names:
        per.add_column(n, justify="right")
    for label, path in TABLE_ROWS:
        per.add_row(label, *(str(_dig(r["workloads"][n], path)) for n in names))
    costs = Table(show_header=False)
    costs.add_column(no_wrap=True)
    costs.add_column(justify="right")
    for k, v in r["workloads"]["sparse"]["aws"]["cost"]["event_path"].items():
        costs.add_row(k, f"{v:.4f}")
    loc = r["local"]
    lat, idle = loc["inapp_latency_ms"], loc["inapp_latency_unloaded_ms"]
    local = Table(show_header=False)
    local.add_column(no_wrap=True)
    local.add_column(justify="right")
    local.add_row("accepted events/s", str(loc["accepted_events_per_second"]))
    local.add_row("end to end events/s", str(loc["end_to_end_events_per_second"]))
    local.add_row(
        "event accepted → in-app message, ms",
        f"p50 {lat['p50']}, p99 {lat['p99']}, max {lat['max']}",
    )
    local.add_row(
        "in-app messages read back",
        f"{loc['inapp_messages_verified_via_api']}/{loc['inapp_messages_expected']}",
    )
    local.add_row("nothing queued: latency p50, ms", str(idle["p50"]))
    anchors = ", ".join(f"{k} {v}" for k, v in r["anchors"].items())
    return [
        Text(heading, style="bold"),
        *titled("summary (sparse workload unless the key says otherwise)", summary),
        *titled("per workload (event path)", per),
        *titled("sparse event path, $ per million events", costs),
        *titled(
            f"local mode end to end ({loc['events']:,} events, {loc['users']} users, "
            f"{loc['client']})",
            local,
        ),
        Text(""),
        Text(f"anchors: {anchors}", style="dim"),
        Text("`nudge bench --json` has every figure, the prices and the assumptions.", style="dim"),
    ]


def render_table(r: dict[str, Any]) -> str:
    """The report for people as plain text (what `nudge bench` prints, without colours)."""
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None, highlight=False)
    for part in report_tables(r):
        console.print(part)
    return out.getvalue()


def config_from(args: argparse.Namespace) -> BenchConfig:
    cfg = QUICK if getattr(args, "quick", False) else DEFAULT
    changes = {
        k: v
        for k, v in {
            "events": getattr(args, "events", None),
            "heavy_events": getattr(args, "events", None),
            "sparse_users": getattr(args, "users", None),
            "local_events": getattr(args, "local_events", None),
            "local_users": getattr(args, "local_users", None),
            "core_rounds": getattr(args, "rounds", None),
        }.items()
        if v is not None
    }
    return replace(cfg, **changes)


def main(
    *, json_output: bool = False, quick: bool = False, config: BenchConfig | None = None
) -> int:
    """Runs the bench: progress on stderr, the report on stdout (`json_output`: one JSON
    object and nothing else)."""
    from nudge.cli_output import out_console, print_json

    # the handlers log to stdout (as on Lambda): stdout is kept for the report alone
    out = sys.stdout
    cfg = config or (QUICK if quick else DEFAULT)
    progress = Progress(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = run(cfg, progress=progress)
    finally:
        progress.close()
    if json_output:
        print_json(result)
    else:
        console = out_console(out)
        for part in report_tables(result):
            console.print(part)
    return 0


def bench(
    json_output: Annotated[
        bool,
        typer.Option("--json", help="print the report as one JSON object (progress on stderr)"),
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="smaller workloads (a few minutes)")
    ] = False,
    events: Annotated[
        int | None,
        typer.Option(help=f"events per workload (default {DEFAULT.events:,})", show_default=False),
    ] = None,
    users: Annotated[
        int | None,
        typer.Option(
            help=f"users of the sparse workload (default {DEFAULT.sparse_users:,})",
            show_default=False,
        ),
    ] = None,
    local_events: Annotated[
        int | None,
        typer.Option(
            help=f"events sent end to end (default {DEFAULT.local_events:,})", show_default=False
        ),
    ] = None,
    local_users: Annotated[
        int | None,
        typer.Option(help=f"their users (default {DEFAULT.local_users})", show_default=False),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(help=f"core rounds (default {DEFAULT.core_rounds})", show_default=False),
    ] = None,
) -> None:
    """Performance benchmark: what an event costs, measured on this machine.

    A table for people, or --json: one JSON object with every figure, the prices and the
    assumptions. Progress on stderr. The default run takes about 25 minutes; --quick a
    few."""
    args = argparse.Namespace(
        quick=quick,
        events=events,
        users=users,
        local_events=local_events,
        local_users=local_users,
        rounds=rounds,
    )
    raise typer.Exit(main(json_output=json_output, config=config_from(args)))


def register(app: typer.Typer) -> None:
    """Adds `bench` to the `nudge` app (the module's docstring is its long help)."""
    app.command("bench", epilog=__doc__)(bench)


if __name__ == "__main__":  # python -m nudge.bench [OPTIONS]: the same as `nudge bench`
    from nudge.cli import main as cli_main

    sys.exit(cli_main(["bench", *sys.argv[1:]]))
