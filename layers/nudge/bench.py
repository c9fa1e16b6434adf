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
NAMES = ["Product Viewed", "Product Viewed", "Product Viewed", "Page Viewed", "Product Added", "Cart Viewed",
         "Checkout Started", "Order Completed", "Product Removed", "Song Played"]


def synthetic_events(n: int, users: int, *, seed: int = 7, start: datetime | None = None) -> list[dict[str, Any]]:
    """A mixed e-commerce workload in Segment format."""
    rng = random.Random(seed)
    t = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        user = f"user-{rng.randrange(users)}"
        name = rng.choice(NAMES)
        t += timedelta(seconds=rng.randint(1, 90))
        props: dict[str, Any] = {"product_id": rng.choice(PRODUCTS[:40]), "price": rng.randint(5, 200)}
        if name == "Order Completed":
            props = {"revenue": rng.randint(20, 400), "products": [{"product_id": rng.choice(PRODUCTS[:40])}]}
        ev: dict[str, Any] = {"messageId": f"bench-{seed}-{i}", "userId": user, "timestamp": t.isoformat()}
        if name == "Page Viewed":
            ev.update(type="page", name="Home")
        else:
            ev.update(type="track", event=name, properties=props)
        out.append(ev)
    return out


def _normalized(raw: list[dict[str, Any]]) -> list[Event]:
    return [normalize_event(r, kind=None, received_at=datetime.fromisoformat(r["timestamp"])) for r in raw]


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


def bench_aws(scenarios: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """AWS requests per event through the real ingest and process handlers under moto."""
    import boto3
    from moto import mock_aws

    from nudge import constants as C
    from nudge.adapters.aws import reset_clients
    from nudge.adapters.keys import create_key
    from nudge.local.emulation import provision, set_fake_credentials
    from nudge.local.lambdas import Function, http_event, repo_root, sqs_event

    scenarios = scenarios or {"one_user_10_events_per_batch": (1, 10), "ten_users_1_event_each": (10, 1)}
    set_fake_credentials()
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    results: dict[str, Any] = {}
    for label, (users, per_user) in scenarios.items():
        with mock_aws():
            reset_clients()
            res = provision(None)
            env = res.env()
            env.pop("AWS_ENDPOINT_URL")
            os.environ.pop("AWS_ENDPOINT_URL", None)
            os.environ.update(env)
            os.environ[C.ENV_TRIGGERS_PATH] = str(repo_root() / "triggers")
            key = create_key("write", key="wk_bench")
            ingest, process = Function(C.FN_INGEST), Function(C.FN_PROCESS)
            for fn in (ingest, process):
                fn.module.deps.cache_clear()
            sqs = boto3.client("sqs")
            url = res.queue_urls[C.EVENTS_QUEUE]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            rounds = 20
            total = rounds * users * per_user
            counts: Counter[str] = Counter()
            process_invocations = 0
            import base64

            auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
            for r in range(rounds):
                batch = [
                    {"type": "track", "userId": f"b{u}", "event": "Product Viewed",
                     "properties": {"product_id": f"p{(r * per_user + k) % 9}"}, "messageId": f"{label}-{r}-{u}-{k}"}
                    for u in range(users) for k in range(per_user)
                ]
                event = http_event(method="POST", path="/v1/batch", query="", headers={"authorization": auth},
                                   body=json.dumps({"batch": batch}).encode(), source_ip="127.0.0.1", now_ms=0)
                with count_aws_calls() as c:
                    assert ingest.invoke(event)["statusCode"] == 200
                counts += c
                msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           MessageSystemAttributeNames=["All"]).get("Messages", [])
                while msgs:
                    with count_aws_calls() as c:
                        out = process.invoke(sqs_event(msgs, arn))
                    counts += c
                    process_invocations += 1
                    assert not out["batchItemFailures"], out
                    sqs.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
                    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                               MessageSystemAttributeNames=["All"]).get("Messages", [])
            per_event = {k: round(v / total, 4) for k, v in sorted(counts.items())}
            by_service: Counter[str] = Counter()
            for k, v in counts.items():
                by_service[k.split(":")[0]] += v
            results[label] = {
                "events": total,
                "requests_per_event": round(sum(counts.values()) / total, 4),
                "by_service_per_event": {k: round(v / total, 4) for k, v in sorted(by_service.items())},
                "by_operation_per_event": per_event,
                "process_invocations_per_event": round(process_invocations / total, 4),
            }
            reset_clients()
    return results


def cost_model(aws: dict[str, Any], core: dict[str, Any]) -> dict[str, Any]:
    """Dollars per million events, from the measured request counts (worst of the scenarios)."""
    worst = max(aws.values(), key=lambda s: s["requests_per_event"])
    ops = worst["by_operation_per_event"]
    ddb_writes = sum(v for k, v in ops.items() if k.startswith("dynamodb:") and ("Put" in k or "Update" in k or "Transact" in k))
    ddb_reads = sum(v for k, v in ops.items() if k.startswith("dynamodb:") and ("Get" in k or "Query" in k))
    sqs_sends = sum(v for k, v in ops.items() if k.startswith("sqs:Send"))
    sched = sum(v for k, v in ops.items() if k.startswith("scheduler:"))
    ingest_requests = 1 / CLIENT_BATCH
    process_invocations = worst["process_invocations_per_event"]
    # the event source mapping's own ReceiveMessage + DeleteMessageBatch per batch
    sqs_requests = sqs_sends + 2 * process_invocations
    aws_calls = worst["requests_per_event"]
    cpu_s = 1 / core["events_per_second_per_core"]
    gb_s = (cpu_s + aws_calls * AWS_CALL_LATENCY_S) * LAMBDA_MEMORY_GB
    per_event = {
        "api_gateway_http": ingest_requests * PRICE["http_api_per_request"],
        "lambda_requests": (ingest_requests + process_invocations) * PRICE["lambda_per_request"],
        "lambda_duration": gb_s * PRICE["lambda_per_gb_s_arm"],
        "sqs_fifo": sqs_requests * PRICE["sqs_fifo_per_request"],
        "dynamodb_writes": ddb_writes * PRICE["ddb_per_wru"],
        "dynamodb_reads": ddb_reads * PRICE["ddb_per_rru"],
        "scheduler": sched * PRICE["scheduler_per_invocation"],
    }
    return {
        "scenario": "worst of the aws scenarios, clients sending batches of 100",
        "assumptions": {"aws_call_latency_s": AWS_CALL_LATENCY_S, "lambda_memory_gb": LAMBDA_MEMORY_GB,
                        "item_size_wru": 1, "client_batch": CLIENT_BATCH},
        "usd_per_million_events": round(sum(per_event.values()) * 1e6, 2),
        "breakdown_usd_per_million": {k: round(v * 1e6, 3) for k, v in per_event.items()},
    }


def main(*, json_output: bool = False, quick: bool = False) -> int:
    core = bench_core(5_000 if quick else 20_000)
    aws = bench_aws()
    result = {"core": core, "aws": aws, "cost": cost_model(aws, core)}
    result["local"] = run_local(200 if quick else 1000)
    print(json.dumps(result, indent=2 if not json_output else None))
    return 0


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
        [sys.executable, "-m", "nudge.cli", "dev", "--port", str(port), "--aws-port", str(aws_port),
         "--write-key", "wk_bench", "--admin-key", "ak_bench"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
            r = s.post(f"{url}/v1/batch", json={"batch": raw[i : i + CLIENT_BATCH]}, auth=("wk_bench", ""))
            r.raise_for_status()
            latencies.append(time.perf_counter() - t)
        accepted_s = time.perf_counter() - t0
        s.post(f"{url}/_local/settle").raise_for_status()
        settled_s = time.perf_counter() - t0
        return {
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
