"""`nudge replay FILE.jsonl`: send Segment-format events to an endpoint in batches."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

MAX_BATCH_EVENTS = 100
MAX_BATCH_BYTES = 450 * 1024  # under Segment's 500 KB limit


def _batches(lines: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    out: list[list[dict[str, object]]] = [[]]
    size = 0
    for ev in lines:
        n = len(json.dumps(ev))
        if out[-1] and (len(out[-1]) >= MAX_BATCH_EVENTS or size + n > MAX_BATCH_BYTES):
            out.append([])
            size = 0
        out[-1].append(ev)
        size += n
    return [b for b in out if b]


def _progress(done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    rate = done / max(time.perf_counter() - started, 1e-9)
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} events  {rate:,.0f}/s"
    )
    sys.stderr.flush()


def replay(path: str, *, url: str, write_key: str | None, use_import: bool = False) -> int:
    import requests

    if not write_key:
        print(
            "nudge replay: a write key is needed (--write-key or NUDGE_WRITE_KEY)", file=sys.stderr
        )
        return 2
    events: list[dict[str, object]] = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            print(f"{path}:{lineno}: not JSON: {err}", file=sys.stderr)
            return 1
        if not isinstance(obj, dict):
            print(f"{path}:{lineno}: not a JSON object", file=sys.stderr)
            return 1
        events.append(obj)
    endpoint = f"{url.rstrip('/')}/v1/{'import' if use_import else 'batch'}"
    session = requests.Session()
    started = time.perf_counter()
    done = rejected = 0
    for batch in _batches(events):
        for attempt in range(5):
            resp = session.post(endpoint, json={"batch": batch}, auth=(write_key, ""), timeout=60)
            if resp.status_code == 429 or resp.status_code >= 500:
                time.sleep(float(resp.headers.get("Retry-After", 2**attempt * 0.2)))
                continue
            break
        if resp.status_code >= 400:
            sys.stderr.write("\n")
            print(f"nudge replay: {resp.status_code} {resp.text}", file=sys.stderr)
            return 1
        rejected += len(resp.json().get("details", []))
        done += len(batch)
        _progress(done, len(events), started)
    sys.stderr.write("\n")
    print(
        json.dumps(
            {"sent": done, "rejected": rejected, "seconds": round(time.perf_counter() - started, 2)}
        )
    )
    return 0 if not rejected else 1
