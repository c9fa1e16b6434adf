"""`nudge dev`: local mode on one laptop, no AWS account.

An HTTP server turns requests into the API Gateway events the handlers receive on AWS,
pollers hand SQS batches to the same handlers, a settable clock replaces wall time, and
an in-process moto server is the AWS the handlers talk to."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nudge import constants as C
from nudge import runtime
from nudge.domain import errors as E
from nudge.domain.clock import SettableClock, iso, to_ms
from nudge.domain.ingest import INGEST_PATHS as DOMAIN_INGEST_PATHS
from nudge.http import status_for
from nudge.local.emulation import (
    AwsServer,
    Resources,
    aws_port_for,
    ensure_free,
    provision,
    set_fake_credentials,
    start_moto,
)
from nudge.local.lambdas import Function, http_event, repo_root
from nudge.local.pollers import QueuePoller, drain, settle

if TYPE_CHECKING:
    from nudge.local.schedules import RecurringSchedules, ScheduleReader, WakeUpSweep

log = logging.getLogger("nudge.local")
INGEST_PATHS = {f"/v1/{k}" for k in DOMAIN_INGEST_PATHS}  # POST: the tracking API
BROWSER_SETTINGS_PATH = re.compile(r"/v1/projects/[^/]+/settings")  # GET: analytics.js
# Threads per queue, as Lambda runs several batches of a FIFO queue at once (one per
# active message group, up to its concurrency): a batch spends most of its time waiting
# for the AWS emulation, which is in a process of its own. More threads than this share
# one interpreter lock with the HTTP front and slow ingest (measured: 4 best of 2 to 8)
PROCESS_WORKERS = 4
DELIVER_WORKERS = 2
TRAIN_TIMEOUT_S = 900  # the train function's timeout on AWS (infra/constructs/training.py)


def is_ingest_route(method: str, path: str) -> bool:
    """The routes the stack sends to the ingest function; the others go to api."""
    return (method == "POST" and path in INGEST_PATHS) or (
        method == "GET" and BROWSER_SETTINGS_PATH.fullmatch(path) is not None
    )


def _allowed_origin(origin: str | None) -> str | None:
    if "*" in C.CORS_ALLOW_ORIGINS:
        return "*"
    return origin if origin in C.CORS_ALLOW_ORIGINS else None


def cors_preflight_headers(origin: str | None) -> dict[str, str]:
    """API Gateway's answer to a CORS preflight when the HTTP API has a CORS
    configuration (C.CORS_*): the function is not invoked."""
    allowed = _allowed_origin(origin)
    if allowed is None:
        return {}
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": ", ".join(C.CORS_ALLOW_METHODS),
        "Access-Control-Allow-Headers": ", ".join(C.CORS_ALLOW_HEADERS),
        "Access-Control-Max-Age": str(C.CORS_MAX_AGE_SECONDS),
    }


def cors_response_headers(origin: str | None) -> dict[str, str]:
    """What API Gateway adds to a function's answer to a request with an Origin."""
    allowed = _allowed_origin(origin)
    if allowed is None:
        return {}
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Expose-Headers": ", ".join(C.CORS_EXPOSE_HEADERS),
    }


@dataclass
class LocalConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    aws_port: int | None = None
    write_key: str | None = None
    admin_key: str | None = None
    triggers_path: str | None = None
    verbose: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    # False: no poller threads; settle() runs the queued batches in the caller's thread
    # (deterministic runs: `nudge bench` counts the requests of each batch)
    background_pollers: bool = True
    # the moto server in a process of its own (a core of its own), or in a thread of
    # this one; None: its own process when the pollers run in the background, in this
    # one for the deterministic runs, whose callers may patch moto's backends in process
    # (`nudge bench`'s request counting does)
    aws_process: bool | None = None
    # the train function's recurring schedule, fired as the clock passes it; None: none
    # (`POST /_local/train` still runs it)
    train_schedule: str | None = C.DEFAULT_TRAIN_SCHEDULE


class NotSettledError(E.DependencyUnavailableError):
    """The queues did not drain in time (`/_local/settle`, `/_local/clock`)."""

    code = "not_settled"


class LocalError(E.NudgeError):
    """An error of local mode's own endpoints (`/_local/*`), answered as the typed error
    `kind`: its code, and its status from the functions' one map (nudge.http.STATUS)."""

    def __init__(self, kind: type[E.NudgeError], message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.status = kind, kind.code, status_for(kind)


# The latest time the local clock can be set to. The handlers compute times later than the
# clock (timers, send windows, retention, TTLs: days to years ahead); near datetime's end
# (9999-12-31) that arithmetic overflows, so a move past this bound is a 400, not a 500
# later in some timer.
LATEST_CLOCK = datetime(3000, 1, 1, tzinfo=UTC)


def clock_target(body: dict[str, Any], now: datetime) -> datetime:
    """Where `POST /_local/clock` moves the clock: `{"set": ISO-8601}` or
    `{"advance_seconds": N}` (a finite number, not negative), up to LATEST_CLOCK."""
    if "set" in body:
        try:
            target = datetime.fromisoformat(str(body["set"]).replace("Z", "+00:00"))
        except ValueError:
            raise LocalError(E.BadRequestError, "set must be an ISO-8601 time") from None
        if target.tzinfo is None:
            target = target.replace(tzinfo=UTC)
    elif "advance_seconds" in body:
        seconds = body["advance_seconds"]
        if isinstance(seconds, str):
            try:
                seconds = float(seconds)
            except ValueError:
                seconds = None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise LocalError(E.BadRequestError, "advance_seconds must be a number")
        if not math.isfinite(seconds):
            raise LocalError(E.BadRequestError, "advance_seconds must be a finite number")
        if seconds < 0:
            raise LocalError(E.ClockMovedBackwardsError, "the clock only moves forward")
        room = (LATEST_CLOCK - now).total_seconds()
        if seconds > room:
            raise LocalError(E.BadRequestError, _too_late(now))
        target = now + timedelta(seconds=seconds)
    else:
        raise LocalError(E.BadRequestError, 'send {"set": ISO-8601} or {"advance_seconds": N}')
    if target > LATEST_CLOCK:
        raise LocalError(E.BadRequestError, _too_late(now))
    if target < now:
        raise LocalError(
            E.ClockMovedBackwardsError, f"the clock is at {iso(now)}; it only moves forward"
        )
    return target


def _too_late(now: datetime) -> str:
    return (
        f"the local clock goes up to {iso(LATEST_CLOCK)} (the timers computed from it must "
        f"stay representable); it is at {iso(now)}"
    )


def _json_body(body: bytes) -> Any:
    """A local route's JSON body (empty: {}); not JSON, not text (UnicodeDecodeError) or
    nested too deeply for json (RecursionError) is a 400."""
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise LocalError(E.InvalidJsonError, "body must be JSON") from None
    except RecursionError:
        raise LocalError(E.InvalidJsonError, "body must be JSON: nested too deeply") from None


class LocalMode:
    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        # the HTTP port + 1 unless asked otherwise, or a free one if that is taken (start)
        self.aws_port = config.aws_port if config.aws_port is not None else config.port + 1
        self.clock = SettableClock()
        self.resources: Resources | None = None
        self.functions: dict[str, Function] = {}
        self.pollers: list[QueuePoller] = []
        self._moto: AwsServer | None = None
        self._http: ThreadingHTTPServer | None = None
        self._clock_lock = threading.Lock()
        self._schedule_reader: ScheduleReader | None = None  # made by the first fire_due
        self._recurring: RecurringSchedules | None = None
        self._sweep: WakeUpSweep | None = None
        self._own_cache: str | None = None  # the archive cache this run made (stop removes it)
        self.started_at = self.clock.now()
        self.write_key = ""
        self.admin_key = ""

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> LocalMode:
        cfg = self.config
        ensure_free(cfg.host, cfg.port, "HTTP API")
        self.aws_port = aws_port_for(cfg.host, cfg.port, cfg.aws_port)
        set_fake_credentials()
        own_process = cfg.background_pollers if cfg.aws_process is None else cfg.aws_process
        self._moto = start_moto(cfg.host, self.aws_port, own_process=own_process)
        endpoint = f"http://{cfg.host}:{self.aws_port}"
        if cfg.train_schedule is not None:
            from nudge.local.schedules import parse_rate

            parse_rate(cfg.train_schedule)  # a wrong expression fails here, not at the clock
        self.resources = provision(endpoint, train_schedule=cfg.train_schedule)
        self.started_at = self.clock.now()
        root = repo_root()
        env = {
            **self.resources.env(),
            C.ENV_TRIGGERS_PATH: cfg.triggers_path or str(root / "triggers"),
            C.ENV_TEMPLATES_PATH: str(root / "templates"),
            C.ENV_CONFIG_PATH: str(root / "config"),
            C.ENV_TRACKING_PLAN_PATH: str(root / "tracking-plan"),
            C.ENV_OPENAPI_PATH: str(root / "docs" / "openapi.json"),
            C.ENV_PUBLIC_URL: f"http://{cfg.host}:{cfg.port}",
            "POWERTOOLS_SERVICE_NAME": C.SERVICE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO" if cfg.verbose else "WARNING",
            # the api's DuckDB copies of this run's archive, its own: the default
            # (/tmp/nudge-archive, a Lambda sandbox's) is shared by every local mode on
            # the machine, whose buckets have the same name; one rebuilding an hour
            # removed files another was reading (a 500), and a new run trusted the
            # hours an earlier run had cached
            C.ENV_ARCHIVE_CACHE_DIR: os.environ.get(C.ENV_ARCHIVE_CACHE_DIR)
            or self._archive_cache(),
            **cfg.extra_env,
        }
        self._saved_env = {k: os.environ.get(k) for k in env}
        self._saved_clock = runtime.clock()
        os.environ.update(env)
        runtime.set_clock(self.clock)

        from nudge.adapters.aws import reset_clients
        from nudge.adapters.keys import create_key

        reset_clients()
        self.write_key = create_key("write", label="local", key=cfg.write_key)
        self.admin_key = create_key("admin", label="local", key=cfg.admin_key)

        for name in (C.FN_INGEST, C.FN_PROCESS, C.FN_API, C.FN_CHECK, C.FN_DELIVER, C.FN_FEEDBACK):
            # the HTTP functions answer one request at a time (their resolver holds it)
            self.functions[name] = Function(name, one_at_a_time=name in (C.FN_INGEST, C.FN_API))
        self.functions[C.FN_TRAIN] = Function(C.FN_TRAIN, timeout_s=TRAIN_TIMEOUT_S)
        self.pollers = [
            QueuePoller(
                queue_url=self.resources.queue_urls[C.EVENTS_QUEUE],
                function=self.functions[C.FN_PROCESS],
                endpoint_url=endpoint,
                batch_size=C.PROCESS_BATCH_SIZE,
                workers=PROCESS_WORKERS,
            ),
            QueuePoller(
                queue_url=self.resources.queue_urls[C.ACTIONS_QUEUE],
                function=self.functions[C.FN_DELIVER],
                endpoint_url=endpoint,
                batch_size=C.PROCESS_BATCH_SIZE,
                workers=DELIVER_WORKERS,
            ),
        ]
        if cfg.background_pollers:
            for p in self.pollers:
                p.start()
        self._http = ThreadingHTTPServer((cfg.host, cfg.port), _make_handler(self))
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="http", daemon=True).start()
        return self

    def _archive_cache(self) -> str:
        self._own_cache = tempfile.mkdtemp(prefix="nudge-archive-")
        return self._own_cache

    def stop(self) -> None:
        for p in self.pollers:
            p.stop(wait=False)
        for p in self.pollers:
            p.stop()
        if self._http:
            self._http.shutdown()
            self._http.server_close()
        if self._moto:
            self._moto.stop()
        for k, v in getattr(self, "_saved_env", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if hasattr(self, "_saved_clock"):
            runtime.set_clock(self._saved_clock)
        if self._own_cache is not None:
            shutil.rmtree(self._own_cache, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    # ---- local-only endpoints ----------------------------------------------------------
    def settle(self, timeout_s: float = 120.0) -> None:
        run = settle if self.config.background_pollers else drain
        if not run(self.pollers, timeout_s):
            raise LocalError(NotSettledError, f"queues still busy after {timeout_s:g} s")

    def move_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._clock_lock:
            now = self.clock.now()
            target = clock_target(body, now)
            self.settle()
            fired = self.fire_due(target)
            # time ran on while the schedules fired: never step back over it
            self.clock.set(max(target, self.clock.now()))
            self.settle()
            # what events sent while the clock moved filed behind it, then the minutes
            # passed are swept
            fired += self.fire_due(target)
            self.wake_up_sweep().passed(self.clock.now())
            return {"now": iso(self.clock.now()), "fired": fired}

    def fire_due(self, target: datetime) -> int:
        """Fires the schedules due up to target, in deadline order."""
        from nudge.local.schedules import fire_due

        return fire_due(self, target)

    def recurring_schedules(self) -> RecurringSchedules:
        """The train function's recurring schedules, counted from local mode's start."""
        from nudge.local.schedules import RecurringSchedules

        assert self.resources is not None, "local mode is started"
        if self._recurring is None:
            self._recurring = RecurringSchedules(
                self.resources.endpoint_url, C.TRAIN_SCHEDULE_GROUP, started=self.started_at
            )
        return self._recurring

    def wake_up_sweep(self) -> WakeUpSweep:
        """The wake-up sweep's minutes, counted from local mode's start."""
        from nudge.local.schedules import WakeUpSweep

        assert self.resources is not None, "local mode is started"
        if self._sweep is None:
            self._sweep = WakeUpSweep(
                self.resources.endpoint_url,
                self.resources.tables[C.TIMERS],
                started=self.started_at,
            )
        return self._sweep

    def train(self) -> dict[str, Any]:
        """`POST /_local/train`: the queues drained (so the archive and the profiles hold
        every event sent), the train function run through its handler as its schedule
        would run it, and its run summary. Serialized with clock moves."""
        with self._clock_lock:
            self.settle()
            summary: dict[str, Any] = self.functions[C.FN_TRAIN].invoke({})
            self.settle()
            return summary

    def aws_info(self) -> dict[str, Any]:
        assert self.resources is not None
        return {
            "endpoint_url": self.resources.endpoint_url,
            "region": self.resources.region,
            "tables": sorted(self.resources.tables.values()),
            "queues": sorted(self.resources.queues),
            "queue_urls": self.resources.queues,
            "schedule_groups": self.resources.schedule_groups,
            "recurring_schedules": self._recurring_info(),
            "buckets": [self.resources.archive_bucket],
            "delivery_streams": [self.resources.archive_stream],
            "archive": {
                "bucket": self.resources.archive_bucket,
                "stream": self.resources.archive_stream,
                "prefix": C.ARCHIVE_PREFIX,
            },
        }

    def _recurring_info(self) -> list[dict[str, Any]]:
        assert self.resources is not None
        import boto3

        scheduler = boto3.client(
            "scheduler", endpoint_url=self.resources.endpoint_url, region_name=self.resources.region
        )
        out = []
        for summary in scheduler.list_schedules(GroupName=C.TRAIN_SCHEDULE_GROUP).get(
            "Schedules", []
        ):
            full = scheduler.get_schedule(Name=summary["Name"], GroupName=C.TRAIN_SCHEDULE_GROUP)
            last = self.recurring_schedules().last.get(summary["Name"])
            out.append(
                {
                    "name": summary["Name"],
                    "group": C.TRAIN_SCHEDULE_GROUP,
                    "expression": full["ScheduleExpression"],
                    "target": full["Target"]["Arn"],
                    "last_fired_at": iso(last) if last else None,
                }
            )
        return out

    def outbox(self) -> dict[str, Any]:
        from nudge.local.outbox import read_outbox

        assert self.resources is not None
        return {"messages": read_outbox(self.resources.endpoint_url)}

    # ---- request dispatch --------------------------------------------------------------
    def dispatch(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        client_ip: str,
    ) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/_local/"):
            return self._local(method, path, body)
        lower = {k.lower(): v for k, v in headers.items()}
        if method == "OPTIONS" and "access-control-request-method" in lower:
            return 204, cors_preflight_headers(lower.get("origin")), b""
        status, out_headers, data = self._invoke(method, path, query, headers, body, client_ip)
        if "origin" in lower:
            out_headers.update(cors_response_headers(lower["origin"]))
        return status, out_headers, data

    def _invoke(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        client_ip: str,
    ) -> tuple[int, dict[str, str], bytes]:
        fn = (
            self.functions[C.FN_INGEST]
            if is_ingest_route(method, path)
            else self.functions[C.FN_API]
        )
        event = http_event(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            source_ip=client_ip,
            now_ms=to_ms(self.clock.now()),
        )
        result = fn.invoke(event)
        status = int(result.get("statusCode", 200))
        out_headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for k, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[k] = ", ".join(str(v) for v in values)
        raw = result.get("body") or ""
        if result.get("isBase64Encoded"):
            import base64

            data = base64.b64decode(raw)
        else:
            data = raw.encode()
        return status, out_headers, data

    def _local(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        def ok(obj: Any) -> tuple[int, dict[str, str], bytes]:
            return 200, {"Content-Type": "application/json"}, json.dumps(obj, default=str).encode()

        try:
            if path == "/_local/aws" and method == "GET":
                return ok(self.aws_info())
            if path == "/_local/settle" and method == "POST":
                payload = _json_body(body)
                try:
                    timeout = float((payload or {}).get("timeout_seconds", 120))
                except (ValueError, TypeError, AttributeError):
                    raise LocalError(
                        E.BadRequestError, "timeout_seconds must be a number"
                    ) from None
                if not (math.isfinite(timeout) and timeout > 0):
                    raise LocalError(
                        E.BadRequestError, "timeout_seconds must be a positive finite number"
                    )
                self.settle(timeout)
                return ok({"settled": True})
            if path == "/_local/clock" and method == "POST":
                payload = _json_body(body)
                if not isinstance(payload, dict):
                    raise LocalError(E.BadRequestError, "body must be a JSON object")
                return ok(self.move_clock(payload))
            if path == "/_local/clock" and method == "GET":
                return ok({"now": iso(self.clock.now())})
            if path == "/_local/outbox" and method == "GET":
                return ok(self.outbox())
            if path == "/_local/train" and method == "POST":
                from nudge.learn.train import TrainingError

                try:
                    return ok(self.train())
                except TrainingError as err:  # its summary says what failed
                    return (
                        500,
                        {"Content-Type": "application/json"},
                        json.dumps(
                            {"error": err.code, "message": err.message, "details": [err.summary]}
                        ).encode(),
                    )
            raise LocalError(E.NotFoundError, f"no local route {method} {path}")
        except LocalError as err:
            return (
                err.status,
                {"Content-Type": "application/json"},
                json.dumps({"error": err.code, "message": err.message, "details": []}).encode(),
            )


def _make_handler(local: LocalMode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "nudge-local"

        def log_message(self, format: str, *args: Any) -> None:
            if local.config.verbose:
                sys.stderr.write(f"{self.address_string()} - {format % args}\n")

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _handle(self) -> None:
            started = time.perf_counter()
            try:
                body = self._body()
            except (ValueError, OSError):
                self._send(
                    400,
                    {"Content-Type": "application/json"},
                    b'{"error":"bad_request","message":"unreadable body","details":[]}',
                )
                return
            parts = urlsplit(self.path)
            try:
                status, headers, data = local.dispatch(
                    self.command,
                    parts.path,
                    parts.query,
                    dict(self.headers.items()),
                    body,
                    self.client_address[0],
                )
            except Exception as err:  # a 5xx is a bug: say so loudly
                log.exception("unhandled error")
                status, headers = 500, {"Content-Type": "application/json"}
                data = json.dumps(
                    {"error": "internal", "message": repr(err), "details": []}
                ).encode()
            self._send(status, headers, data)
            if local.config.verbose:
                log.info(
                    "%s %s -> %s (%.1f ms)",
                    self.command,
                    self.path,
                    status,
                    (time.perf_counter() - started) * 1000,
                )

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def __getattr__(self, name: str) -> Any:
            # http.server calls do_<METHOD>: every method (GET ... TRACE, CONNECT, a made-up
            # one) goes to the functions, which answer as API Gateway routes: a method no
            # route takes is a JSON 404, never http.server's own 501 HTML page
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

    return Handler
