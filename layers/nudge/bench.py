"""`nudge bench`: the performance benchmark of SPEC §9, printed as JSON.

- core: events per second per core folding state (and evaluating triggers, when the
  engine is present) with no I/O;
- aws: AWS requests per event through the real handlers under moto, counted at the
  botocore level (BaseClient._make_api_call, which PynamoDB also goes through);
- local: end-to-end local-mode throughput (Segment-style batches over HTTP → profile);
- cost: modeled cost per million events at AWS list prices from the counts above.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from nudge.domain.events import Event, normalize_event
from nudge.domain.profile import Profile

# AWS list prices (us-east-1, 2026-11; ../shared/NOTES.md)
PRICE = {
    "http_api_per_request": 1.00 / 1e6,
    "lambda_per_request": 0.20 / 1e6,
    "lambda_per_gb_s_arm": 0.0000133334,
    "sqs_fifo_per_request": 0.50 / 1e6,
    "ddb_per_wru": 0.625 / 1e6,
    "ddb_per_rru": 0.125 / 1e6,
    "scheduler_per_invocation": 1.00 / 1e6,
    "ses_per_mail": 0.10 / 1000,
}
AWS_CALL_LATENCY_S = 0.008  # typical in-region latency of one AWS API call, for Lambda duration
LAMBDA_MEMORY_GB = 0.5
CLIENT_BATCH = 100  # events per HTTP request, as Segment's SDKs send them

PRODUCTS = [f"p{i}" for i in range(200)]
NAMES = [
    "Product Viewed",
    "Product Viewed",
    "Product Viewed",
    "Page Viewed",
    "Product Added",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
    "Product Removed",
    "Song Played",
]


def synthetic_events(
    n: int, users: int, *, seed: int = 7, start: datetime | None = None, peak: bool = False
) -> list[dict[str, Any]]:
    """A mixed e-commerce workload in Segment format: each user browses in sessions (a
    few to fifteen events, seconds apart), sessions hours to days apart; some sessions add
    to the cart, some order. With `peak`, every user has one session and they all start
    within the same ten minutes (a campaign or traffic peak). Sorted by time."""
    rng = random.Random(seed)
    t0 = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    per_user = [n // users + (1 if u < n % users else 0) for u in range(users)]
    out: list[dict[str, Any]] = []
    i = 0
    for u, count in enumerate(per_user):
        t = t0 + (
            timedelta(seconds=rng.randint(0, 600))
            if peak
            else timedelta(minutes=rng.randint(0, 180))
        )
        left = count
        if rng.random() < 0.6 and left > 0:  # most users are known: an identify with an address
            out.append(
                {
                    "messageId": f"bench-{seed}-{i}",
                    "userId": f"user-{u}",
                    "timestamp": t.isoformat(),
                    "type": "identify",
                    "traits": {"email": f"user-{u}@example.com"},
                }
            )
            i += 1
            left -= 1
        while left > 0:
            session = left if peak else min(left, rng.randint(3, 15))
            for _k in range(session):
                name = rng.choice(NAMES)
                props: dict[str, Any] = {
                    "product_id": rng.choice(PRODUCTS[:40]),
                    "price": rng.randint(5, 200),
                }
                if name == "Order Completed":
                    props = {
                        "revenue": rng.randint(20, 400),
                        "products": [{"product_id": rng.choice(PRODUCTS[:40])}],
                    }
                ev: dict[str, Any] = {
                    "messageId": f"bench-{seed}-{i}",
                    "userId": f"user-{u}",
                    "timestamp": t.isoformat(),
                }
                if name == "Page Viewed":
                    ev.update(type="page", name="Home")
                else:
                    ev.update(type="track", event=name, properties=props)
                out.append(ev)
                i += 1
                t += timedelta(seconds=rng.randint(5, 90))
            left -= session
            t += timedelta(hours=rng.choice([2, 6, 20, 30, 60]))
    out.sort(key=lambda e: (e["timestamp"], e["messageId"]))
    return out


def _normalized(raw: list[dict[str, Any]]) -> list[Event]:
    return [
        normalize_event(r, kind=None, received_at=datetime.fromisoformat(r["timestamp"]))
        for r in raw
    ]


def bench_core(n: int = 20_000, users: int = 200) -> dict[str, Any]:
    events = _normalized(synthetic_events(n, users))
    by_user: dict[str, list[Event]] = {}
    for ev in events:
        by_user.setdefault(ev.profile_id, []).append(ev)
    engine = _engine()
    profiles = {u: Profile(u) for u in by_user}
    batches = [(u, evs[i : i + 10]) for u, evs in by_user.items() for i in range(0, len(evs), 10)]
    started = time.process_time()
    for user, batch in batches:
        p = profiles[user]
        fresh = p.apply(batch)
        if engine is not None:
            engine.on_events(p, fresh, batch[-1].timestamp)
    cpu = time.process_time() - started
    sizes = [len(json.dumps(p.to_dict(), separators=(",", ":"))) for p in profiles.values()]
    return {
        "events": n,
        "events_per_second_per_core": round(n / cpu),
        "with_trigger_engine": engine is not None,
        "profile_bytes_median": int(statistics.median(sizes)),
        "profile_bytes_max": max(sizes),
    }


def _engine() -> Any:
    try:
        from nudge.domain.triggers.engine import Engine
        from nudge.domain.triggers.loader import load_triggers
    except ImportError:
        return None
    from nudge.local.lambdas import repo_root

    return Engine(load_triggers(repo_root() / "triggers"))


@contextmanager
def count_aws_calls() -> Iterator[Counter[str]]:
    """Counts every AWS API call made through botocore (boto3 and PynamoDB alike)."""
    import botocore.client

    counts: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        counts[f"{self.meta.service_model.service_name}:{operation_name}"] += 1
        return original(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


class MotoStack:
    """The stack's handlers under moto's mock_aws, driven the way AWS drives them, with
    every AWS call they make counted."""

    def __init__(self) -> None:
        from moto import mock_aws

        self._mock = mock_aws()

    def __enter__(self) -> MotoStack:
        import boto3

        from nudge import constants as C
        from nudge import runtime
        from nudge.adapters.aws import reset_clients
        from nudge.adapters.keys import create_key
        from nudge.domain.clock import SettableClock
        from nudge.local.emulation import provision, set_fake_credentials
        from nudge.local.lambdas import Function, repo_root

        set_fake_credentials()
        for k, v in {
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }.items():
            os.environ.setdefault(k, v)
        self._mock.start()
        reset_clients()
        self.res = provision(None)
        env = self.res.env()
        env.pop("AWS_ENDPOINT_URL")
        os.environ.pop("AWS_ENDPOINT_URL", None)
        root = repo_root()
        env.update(
            {
                C.ENV_TRIGGERS_PATH: str(root / "triggers"),
                C.ENV_TEMPLATES_PATH: str(root / "templates"),
                C.ENV_CONFIG_PATH: str(root / "config"),
                C.ENV_PUBLIC_URL: "https://nudge.example.com",
            }
        )
        os.environ.update(env)
        self.clock = SettableClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), frozen=True)
        self._previous_clock = runtime.clock()
        runtime.set_clock(self.clock)
        self.key = create_key("write", key="wk_bench")
        self.fns = {n: Function(n) for n in (C.FN_INGEST, C.FN_PROCESS, C.FN_CHECK, C.FN_DELIVER)}
        for fn in self.fns.values():
            fn.module.deps.cache_clear()
        self.sqs = boto3.client("sqs")
        self.counts: Counter[str] = Counter()
        self.invocations: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        return self

    def __exit__(self, *exc: object) -> None:
        from nudge import runtime
        from nudge.adapters.aws import reset_clients

        runtime.set_clock(self._previous_clock)
        self._mock.stop()
        reset_clients()

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        with count_aws_calls() as c:
            out = self.fns[name].invoke(event)
        self.counts += c
        self.invocations[name] += 1
        return out

    def ingest(self, batch: list[dict[str, Any]]) -> None:
        import base64

        from nudge.local.lambdas import http_event

        auth = "Basic " + base64.b64encode(f"{self.key}:".encode()).decode()
        event = http_event(
            method="POST",
            path="/v1/batch",
            query="",
            headers={"authorization": auth},
            body=json.dumps({"batch": batch}).encode(),
            source_ip="127.0.0.1",
            now_ms=0,
        )
        assert self.invoke("ingest", event)["statusCode"] == 200

    def drain(self, logical: str, function: str) -> None:
        from nudge.local.lambdas import sqs_event

        url = self.res.queue_urls[logical]
        arn = self.res.queue_arns[logical]
        while True:
            msgs = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            if not msgs:
                return
            out = self.invoke(function, sqs_event(msgs, arn))
            assert not out["batchItemFailures"], out
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )

    def fire_timers_until(self, until: datetime) -> None:
        """The Scheduler's part: due schedules in deadline order, deleted once fired."""
        import boto3

        from nudge import constants as C
        from nudge.adapters.scheduler import parse_at

        sched = boto3.client("scheduler")
        while True:
            due = []
            for page in sched.get_paginator("list_schedules").paginate(GroupName=C.SCHEDULE_GROUP):
                for summary in page["Schedules"]:
                    full = sched.get_schedule(Name=summary["Name"], GroupName=C.SCHEDULE_GROUP)
                    when = parse_at(full["ScheduleExpression"])
                    if when <= until:
                        due.append((when, summary["Name"], full))
            if not due:
                return
            when, name, full = min(due, key=lambda d: (d[0], d[1]))
            if when > self.clock.now():
                self.clock.set(when)
            target = full["Target"]
            if target["Arn"].startswith("arn:aws:sqs:"):
                self.sqs.send_message(
                    QueueUrl=self.res.queue_urls[C.ACTIONS_QUEUE],
                    MessageBody=target["Input"],
                    MessageGroupId=target["SqsParameters"]["MessageGroupId"],
                    MessageDeduplicationId=name,
                )
            else:
                self.invoke("check", json.loads(target["Input"]))
            sched.delete_schedule(Name=name, GroupName=C.SCHEDULE_GROUP)
            self.drain(C.EVENTS_QUEUE, "process")


def _per(counts: Counter[str], n: int) -> dict[str, Any]:
    by_service: Counter[str] = Counter()
    for k, v in counts.items():
        by_service[k.split(":")[0]] += v
    return {
        "requests_per_event": round(sum(counts.values()) / max(n, 1), 4),
        "by_service_per_event": {k: round(v / max(n, 1), 4) for k, v in sorted(by_service.items())},
        "by_operation_per_event": {k: round(v / max(n, 1), 4) for k, v in sorted(counts.items())},
    }


def bench_aws() -> dict[str, Any]:
    """AWS requests per event through the real ingest and process handlers under moto."""
    results: dict[str, Any] = {}
    for label, (users, per_user) in {
        "one_user_10_events_per_batch": (1, 10),
        "ten_users_1_event_each": (10, 1),
    }.items():
        with MotoStack() as stack:
            rounds = 20
            for r in range(rounds):
                stack.ingest(
                    [
                        {
                            "type": "track",
                            "userId": f"b{u}",
                            "event": "Song Played",
                            "properties": {"n": r},
                            "messageId": f"{label}-{r}-{u}-{k}",
                        }
                        for u in range(users)
                        for k in range(per_user)
                    ]
                )
                stack.drain("events", "process")
            total = rounds * users * per_user
            results[label] = {
                "events": total,
                **_per(stack.counts, total),
                "process_invocations_per_event": round(stack.invocations["process"] / total, 4),
            }
    return results


def bench_mixed(events: int = 1000, users: int = 100, *, peak: bool = False) -> dict[str, Any]:
    """The default triggers on a mixed e-commerce workload: events through ingest and
    process, timers fired by a simulated Scheduler, actions through deliver."""
    from nudge import constants as C

    raw = synthetic_events(events, users, seed=5, peak=peak)
    with MotoStack() as stack:
        for i in range(0, len(raw), 20):
            chunk = raw[i : i + 20]
            when = datetime.fromisoformat(chunk[-1]["timestamp"])
            stack.fire_timers_until(when)
            if when > stack.clock.now():
                stack.clock.set(when)
            stack.ingest(chunk)
            stack.drain(C.EVENTS_QUEUE, "process")
        stack.fire_timers_until(stack.clock.now() + timedelta(days=3))
        event_counts = Counter(stack.counts)
        sched_calls = sum(v for k, v in event_counts.items() if k.startswith("scheduler:"))
        with count_aws_calls() as deliver_calls:
            stack.drain(C.ACTIONS_QUEUE, "deliver")
        statuses: Counter[str] = Counter()
        from nudge.adapters.tables import DeliveryRow

        for row in DeliveryRow.scan():
            statuses[row.status] += 1
        delivered = statuses.get("sent", 0)
        deliver_total = sum(deliver_calls.values())
        return {
            "events": events,
            "users": users,
            "span_hours": round(
                (
                    datetime.fromisoformat(raw[-1]["timestamp"])
                    - datetime.fromisoformat(raw[0]["timestamp"])
                ).total_seconds()
                / 3600,
                1,
            ),
            "scheduler_calls_per_event": round(sched_calls / events, 4),
            "scheduler_calls": dict(
                sorted((k, v) for k, v in event_counts.items() if k.startswith("scheduler:"))
            ),
            **_per(event_counts, events),
            "process_invocations_per_event": round(stack.invocations["process"] / events, 4),
            "actions": sum(statuses.values()),
            "delivery_statuses": dict(statuses),
            "aws_requests_per_delivered_message": round(deliver_total / max(delivered, 1), 2),
            "aws_requests_per_action": round(deliver_total / max(sum(statuses.values()), 1), 2),
            "deliver_by_operation": dict(sorted(deliver_calls.items())),
        }


def bench_engine(n: int = 20_000, users: int = 200) -> dict[str, Any]:
    """Trigger evaluations per second per core (the four default triggers), no I/O."""
    engine = _engine()
    if engine is None:
        return {}
    events = _normalized(synthetic_events(n, users, seed=9))
    profiles: dict[str, Profile] = {}
    folded = []
    for ev in events:
        p = profiles.setdefault(ev.profile_id, Profile(ev.profile_id))
        folded.append((p, p.apply([ev])))
    started = time.process_time()
    before = engine.evaluations()
    for p, fresh in folded:
        engine.on_events(p, fresh, fresh[0].timestamp if fresh else datetime.now(UTC))
    cpu = time.process_time() - started
    evaluations = engine.evaluations() - before
    return {
        "events": n,
        "evaluations": evaluations,
        "evaluations_per_second_per_core": round(evaluations / cpu),
        "events_per_second_per_core": round(n / cpu),
    }


def cost_model(mixed: dict[str, Any], core: dict[str, Any]) -> dict[str, Any]:
    """Dollars per million events at list prices, from the request counts measured on the
    mixed workload (ingest, process, timers, delivery) and the measured profile size
    (DynamoDB bills a write by the item's size: 1 write unit per KB)."""
    ops = mixed["by_operation_per_event"]
    events = mixed["events"]
    wru_per_put = max(1, math.ceil(core["profile_bytes_median"] / 1024))
    puts = sum(v for k, v in ops.items() if k in ("dynamodb:PutItem", "dynamodb:UpdateItem"))
    index_writes = ops.get("dynamodb:BatchWriteItem", 0.0)  # wake-up index items, small
    reads = sum(
        v for k, v in ops.items() if k.startswith("dynamodb:") and ("Get" in k or "Query" in k)
    )
    sqs_sends = sum(v for k, v in ops.items() if k.startswith("sqs:Send"))
    deliver_ops = mixed["deliver_by_operation"]
    deliver_writes = sum(v for k, v in deliver_ops.items() if "Put" in k) / events
    deliver_reads = sum(v for k, v in deliver_ops.items() if "Get" in k or "Query" in k) / events
    deliver_batches = deliver_ops.get("sqs:ReceiveMessage", 0) / events
    emails = deliver_ops.get("sesv2:SendEmail", 0) / events
    sms_push = deliver_ops.get("sns:Publish", 0) / events
    invocations = 1 / CLIENT_BATCH + mixed["process_invocations_per_event"] + deliver_batches
    cpu_s = 1 / core["events_per_second_per_core"]
    gb_s = (cpu_s + mixed["requests_per_event"] * AWS_CALL_LATENCY_S) * LAMBDA_MEMORY_GB
    per_event = {
        "api_gateway_http": (1 / CLIENT_BATCH) * PRICE["http_api_per_request"],
        "lambda_requests": invocations * PRICE["lambda_per_request"],
        "lambda_duration": gb_s * PRICE["lambda_per_gb_s_arm"],
        # sends, plus the event source mappings' ReceiveMessage + DeleteMessageBatch per batch
        "sqs_fifo": (sqs_sends + 2 * (mixed["process_invocations_per_event"] + deliver_batches))
        * PRICE["sqs_fifo_per_request"],
        "dynamodb_writes": (puts * wru_per_put + index_writes * 2 + deliver_writes)
        * PRICE["ddb_per_wru"],
        "dynamodb_reads": (reads * wru_per_put / 4 + deliver_reads) * PRICE["ddb_per_rru"],
        "scheduler": mixed["scheduler_calls_per_event"] * PRICE["scheduler_per_invocation"],
        "ses": emails * PRICE["ses_per_mail"],
        "sns_not_included": 0.0 * sms_push,
    }
    return {
        "workload": "mixed_workload_peak_10_minutes: default triggers, timers and delivery included",
        "assumptions": {
            "aws_call_latency_s": AWS_CALL_LATENCY_S,
            "lambda_memory_gb": LAMBDA_MEMORY_GB,
            "write_units_per_profile_write": wru_per_put,
            "client_batch": CLIENT_BATCH,
            "messages_sent_per_event": round(mixed["delivery_statuses"].get("sent", 0) / events, 4),
            "sns_sms_push_prices": "not included (per destination country / platform)",
        },
        "usd_per_million_events": round(sum(per_event.values()) * 1e6, 2),
        "breakdown_usd_per_million": {
            k: round(v * 1e6, 3) for k, v in per_event.items() if k != "sns_not_included"
        },
    }


def main(*, json_output: bool = False, quick: bool = False) -> int:
    # the handlers log to stdout (as on Lambda); keep stdout for the report alone
    import contextlib
    import sys

    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return _run(out, json_output=json_output, quick=quick)


def _run(out: Any, *, json_output: bool, quick: bool) -> int:
    core = bench_core(5_000 if quick else 20_000)
    aws = bench_aws()
    peak = bench_mixed(300 if quick else 1000, 30 if quick else 100, peak=True)
    result = {
        "core": core,
        "engine": bench_engine(5_000 if quick else 20_000),
        "aws": aws,
        "mixed_workload_spread_over_days": bench_mixed(
            300 if quick else 1000, 30 if quick else 100
        ),
        "mixed_workload_peak_10_minutes": peak,
        "cost": cost_model(peak, core),
    }
    result["local"] = run_local(200 if quick else 1000)
    print(json.dumps(result, indent=2 if not json_output else None), file=out)
    return 0


def _local_sends(s: Any, url: str, users: int) -> dict[str, Any]:
    """Messages through local mode: each user views one product three times, which fires
    repeat_product_view at once (push, falling back to the in-app inbox)."""
    admin = {"Authorization": "Bearer ak_bench"}
    batch = [
        {
            "type": "track",
            "userId": f"send-{u}",
            "event": "Product Viewed",
            "properties": {"product_id": "p-send", "name": "Bench Lamp"},
        }
        for u in range(users)
        for _ in range(3)
    ]
    t0 = time.perf_counter()
    for i in range(0, len(batch), CLIENT_BATCH):
        s.post(
            f"{url}/v1/batch", json={"batch": batch[i : i + CLIENT_BATCH]}, auth=("wk_bench", "")
        ).raise_for_status()
    s.post(f"{url}/_local/settle").raise_for_status()
    took = time.perf_counter() - t0
    delivered = sum(
        1
        for u in range(users)
        if s.get(f"{url}/v1/users/send-{u}/messages", headers=admin).json().get("messages")
    )
    # latency: the event that completes the trigger accepted → the message in the inbox
    latencies = []
    for k in range(5):
        user = f"latency-{k}"
        for _ in range(2):
            s.post(
                f"{url}/v1/track",
                json={
                    "userId": user,
                    "event": "Product Viewed",
                    "properties": {"product_id": "p-lat"},
                },
                auth=("wk_bench", ""),
            )
        s.post(f"{url}/_local/settle")
        t = time.perf_counter()
        s.post(
            f"{url}/v1/track",
            json={"userId": user, "event": "Product Viewed", "properties": {"product_id": "p-lat"}},
            auth=("wk_bench", ""),
        )
        while not s.get(f"{url}/v1/users/{user}/messages", headers=admin).json().get("messages"):
            if time.perf_counter() - t > 30:
                break
            time.sleep(0.005)
        latencies.append(time.perf_counter() - t)
    return {
        "inapp_messages": delivered,
        "sends_per_second": round(delivered / took, 1),
        "event_to_inapp_latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
    }


def run_local(events: int, users: int = 50) -> dict[str, Any]:
    import socket
    import subprocess
    import sys

    import requests

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    port = free()
    aws_port = free()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nudge.cli",
            "dev",
            "--port",
            str(port),
            "--aws-port",
            str(aws_port),
            "--write-key",
            "wk_bench",
            "--admin-key",
            "ak_bench",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        while True:
            try:
                requests.get(f"{url}/health", timeout=1)
                break
            except requests.ConnectionError:
                if time.perf_counter() - started > 30 or proc.poll() is not None:
                    raise RuntimeError("local mode did not start") from None
                time.sleep(0.1)
        startup_s = time.perf_counter() - started
        raw = synthetic_events(events, users, seed=11, start=datetime.now(UTC) - timedelta(days=2))
        s = requests.Session()
        t0 = time.perf_counter()
        latencies = []
        for i in range(0, len(raw), CLIENT_BATCH):
            t = time.perf_counter()
            r = s.post(
                f"{url}/v1/batch", json={"batch": raw[i : i + CLIENT_BATCH]}, auth=("wk_bench", "")
            )
            r.raise_for_status()
            latencies.append(time.perf_counter() - t)
        accepted_s = time.perf_counter() - t0
        s.post(f"{url}/_local/settle").raise_for_status()
        settled_s = time.perf_counter() - t0
        sends = _local_sends(s, url, users=100)
        return {
            **sends,
            "events": events,
            "startup_s": round(startup_s, 2),
            "accepted_events_per_second": round(events / accepted_s),
            "batch_request_latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
            "end_to_end_events_per_second": round(events / settled_s),
            "note": "moto server in the same process: local mode measures the code path, not AWS speed",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
