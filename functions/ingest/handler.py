"""ingest: API Gateway (HTTP API) → validate Segment events → SQS FIFO "events"; and the
settings analytics.js loads before it sends.

Thin: parse the request, call nudge.domain.ingest.ingest, map the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge import constants as C
from nudge import openapi as doc
from nudge.adapters.archive import FirehoseArchive
from nudge.adapters.keys import DynamoKeyStore
from nudge.adapters.queues import SqsEventQueue
from nudge.domain.clock import Clock
from nudge.domain.ingest import (
    BROWSER_SETTINGS_ROUTE,
    INGEST_ROUTES,
    KeyStore,
    RateLimiter,
    archive_violations,
    browser_settings,
    ingest,
)
from nudge.domain.ports import ArchiveWriter, EventQueue
from nudge.domain.tracking import TrackingPlan, load_plan
from nudge.http import (
    header,
    install_error_handlers,
    json_response,
    passed_deps,
    raw_body,
    resolve,
    resolver_route,
)
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import IngestSettings

app = APIGatewayHttpResolver()
install_error_handlers(app)


@dataclass
class Deps:
    """What the ingest function talks to. `from_settings` wires the AWS adapters once
    per cold start; a test passes in-memory ones (tests/fakes.py) to `handler`."""

    keys: KeyStore
    queue: EventQueue
    limiter: RateLimiter
    clock: Clock
    plan: TrackingPlan | None = None  # the tracking plan (None: nothing is checked)
    violations: ArchiveWriter | None = None  # where its `Violation Generated` events go

    @classmethod
    def from_settings(cls, s: IngestSettings) -> Deps:
        # a plan that does not load fails the cold start, loudly, rather than letting
        # every event through unchecked (`nudge tracking validate` finds it before deploy)
        plan = load_plan(s.tracking_plan_path) if s.tracking_plan_path else None
        return cls(
            keys=DynamoKeyStore(table=s.keys_table),
            queue=SqsEventQueue(s.events_queue_url),
            limiter=RateLimiter(s.rate_limit_per_second),
            clock=clock(),
            plan=plan,
            violations=FirehoseArchive(s.archive_stream) if plan and s.archive_stream else None,
        )


@cache
def deps() -> Deps:
    """The AWS adapters, built at cold start (local mode and tests clear the cache)."""
    return Deps.from_settings(IngestSettings())


def current() -> Deps:
    """The deps of this invocation: those passed to `handler`, else the cold start's."""
    passed: Deps | None = passed_deps(app)
    return passed if passed is not None else deps()


def post_event(kind: str) -> Any:
    d = current()
    event = app.current_event.raw_event
    result = ingest(
        kind,
        raw_body(event),
        content_encoding=header(event, "content-encoding"),
        authorization=header(event, "authorization"),
        received_at=d.clock.now(),
        keys=d.keys,
        queue=d.queue,
        limiter=d.limiter,
        plan=d.plan,
    )
    metrics.add_metric("EventsRejected", MetricUnit.Count, len(result.rejected))
    if result.violations and d.violations is not None:
        # after the events are queued: a violation that is not archived is a lost
        # statistic, never a lost event (the client would retry events already queued)
        try:
            archived = archive_violations(result, d.violations)
            metrics.add_metric("TrackingPlanViolations", MetricUnit.Count, archived)
        except Exception:
            logger.exception("tracking plan violations not archived")
            metrics.add_metric(
                "TrackingPlanViolationsLost", MetricUnit.Count, len(result.violations)
            )
    return json_response(result.response())


def _route_of(kind: str) -> Callable[[], Any]:
    def post() -> Any:
        return post_event(kind)

    post.__name__ = f"post_{kind}"
    return post


# One route per endpoint (the stack routes the same INGEST_ROUTES here), each described
# in the OpenAPI document.
for _segment, _route in INGEST_ROUTES.items():
    app.post(resolver_route(_route), **doc.ingest_operation(_segment))(_route_of(_segment))


@app.get(
    resolver_route(BROWSER_SETTINGS_ROUTE),
    **doc.operation(
        "browserSettings",
        "analytics.js settings for a write key (what Segment's CDN serves)",
        tag=doc.INGEST,
        returns="BrowserSettings",
        errors={400: "No usable Host header", 404: "Not a write key"},
        description="Public, as Segment's CDN is: write keys ship in web pages. Point "
        "analytics.js's CDN here (docs/browser.md).",
    ),
)
def get_browser_settings(writeKey: str) -> Any:  # the path parameter's public name
    """analytics.js's settings (what Segment's CDN serves), so the standard snippet only
    needs its CDN pointed here (docs/browser.md)."""
    event = app.current_event.raw_event
    settings = browser_settings(
        current().keys,
        writeKey,
        host=header(event, "host") or event.get("requestContext", {}).get("domainName"),
        # API Gateway sets it (https); local mode has none and serves http
        protocol=header(event, "x-forwarded-proto"),
    )
    cache = f"private, max-age={C.BROWSER_SETTINGS_MAX_AGE_SECONDS}"
    return json_response(settings, headers={"Cache-Control": cache})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(
    event: dict[str, Any], context: LambdaContext, deps: Deps | None = None
) -> dict[str, Any]:
    """`deps` (by keyword: Powertools' tracer passes keywords only) replaces the AWS
    adapters, as a unit test does; the routes read it through `current()`."""
    return resolve(app, event, context, deps=deps)
