"""`nudge replay FILE.jsonl`: send Segment-format events to an endpoint in batches.

The events go as they are (as a Segment client would send them): the server dates an
event without `timestamp` when it receives it. A user's mistake (no file, a line that is
not a JSON object, no write key, nothing listening at the URL, a key the server refuses)
is a `UserError` (one line, exit status 2)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nudge.cli_output import USER_ERROR, UserError, note, print_json, progress, write_stdout

MAX_BATCH_EVENTS = 100
MAX_BATCH_BYTES = 450 * 1024  # under Segment's 500 KB limit
TIMEOUT_S = 60
RETRIES = 5
MAX_REJECTIONS_SHOWN = 10


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


def read_jsonl(path: str) -> list[dict[str, object]]:
    """The file's events; UserError naming the file (and the line) when it cannot be."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read {path}: not UTF-8 text ({err.reason})") from None
    events: list[dict[str, object]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{lineno}: not JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{lineno}: not a JSON object")
        events.append(obj)
    return events


def unreachable(url: str, err: Exception) -> UserError:
    """The one line for a server that does not answer."""
    import requests

    text = str(err).lower()
    if isinstance(err, requests.Timeout):
        why = f"no answer in {TIMEOUT_S} s"
    elif "refused" in text:
        why = "connection refused"
    elif "name or service not known" in text or "nodename nor servname" in text:
        why = "unknown host"
    else:
        why = type(err).__name__
    return UserError(f"cannot reach {url}: {why}; is `nudge dev` running?")


def _post(session: Any, endpoint: str, batch: list[dict[str, object]], write_key: str) -> Any:
    """One batch, retried on 429 and 5xx as Segment's SDKs do."""
    import requests

    for attempt in range(RETRIES):
        try:
            resp = session.post(
                endpoint, json={"batch": batch}, auth=(write_key, ""), timeout=TIMEOUT_S
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise unreachable(endpoint.rsplit("/v1/", 1)[0], err) from None
        if (resp.status_code == 429 or resp.status_code >= 500) and attempt < RETRIES - 1:
            time.sleep(float(resp.headers.get("Retry-After", 2**attempt * 0.2)))
            continue
        return resp
    raise AssertionError("unreachable")


def _answer(resp: Any) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def replay(
    path: str,
    *,
    url: str,
    write_key: str | None,
    use_import: bool = False,
    json_output: bool = False,
) -> int:
    """Sends the file; 0 when every event was accepted, 1 when some were rejected or the
    server failed. UserError for the user's mistakes."""
    import requests

    if not write_key:
        raise UserError("a write key is needed (--write-key or NUDGE_WRITE_KEY)")
    events = read_jsonl(path)
    endpoint = f"{url.rstrip('/')}/v1/{'import' if use_import else 'batch'}"
    session = requests.Session()
    started = time.perf_counter()
    done = rejected = 0
    with progress(f"sending to {endpoint}", len(events), rate=True) as advance:
        for batch in _batches(events):
            resp = _post(session, endpoint, batch, write_key)
            answer = _answer(resp)
            details = answer.get("details") or []
            if resp.status_code in (401, 403):
                raise UserError(f"{endpoint} refused the write key ({resp.status_code})")
            if resp.status_code >= 400 and not (resp.status_code == 400 and details):
                message = answer.get("message") or resp.text.strip()[:200]
                code = USER_ERROR if resp.status_code < 500 else 1
                raise UserError(f"{endpoint} answered {resp.status_code}: {message}", code)
            for item in details[: max(0, MAX_REJECTIONS_SHOWN - rejected)]:
                index = item.get("index") if isinstance(item, dict) else None
                reason = item.get("message", item) if isinstance(item, dict) else item
                where = f" (event {done + index + 1} of the file)" if isinstance(index, int) else ""
                note(f"rejected{where}: {reason}")
            rejected += len(details)
            done += len(batch)
            advance(len(batch))
    seconds = round(time.perf_counter() - started, 2)
    if json_output:
        print_json({"sent": done, "rejected": rejected, "seconds": seconds})
    else:
        write_stdout(
            f"sent {done:,} event{'s' if done != 1 else ''} to {endpoint} in {seconds} s"
            f"{f', {rejected:,} rejected' if rejected else ', none rejected'}\n"
        )
    return 0 if not rejected else 1
