"""Ingest: the HTTP API (Segment-compatible tracking routes), the ingest function and the
FIFO "events" queue it writes to (grouped by user), with its dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from nudge import constants as C
from nudge.domain.ingest import BROWSER_SETTINGS_ROUTE, INGEST_ROUTES

from infra.constructs.function import LOG_RETENTION, NudgeFunction
from infra.constructs.layers import TRACKING_PLAN_PATH
from infra.constructs.queues import VISIBILITY_TO_TIMEOUT, fifo_queue_with_dlq
from infra.constructs.state import State

# JSON access log with HTTP API context variables only; no header is logged, so no key
# ever reaches the logs.
_ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
        "error": "$context.error.message",
    }
)


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, destination: apigw.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return apigw_v1.AccessLogFormat.custom(_ACCESS_LOG_FORMAT)


class Ingest(Construct):
    """``http_api`` (shared with the api construct), ``stage`` (its ``$default`` stage,
    throttled and access-logged), ``events_queue`` / ``events_dlq``, ``function``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        state: State,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        consumer_timeout: cdk.Duration,
    ) -> None:
        super().__init__(scope, id)

        visibility = max(
            C.EVENTS_VISIBILITY_TIMEOUT_S, VISIBILITY_TO_TIMEOUT * consumer_timeout.to_seconds()
        )
        self.events_queue, self.events_dlq = fifo_queue_with_dlq(
            self,
            "EventsQueue",
            visibility_timeout=cdk.Duration.seconds(visibility),
            max_receive_count=C.EVENTS_MAX_RECEIVE_COUNT,
        )

        self.handler = NudgeFunction(
            self,
            "Ingest",
            name=C.FN_INGEST,
            description="Segment-compatible tracking API: validates, enqueues events by user",
            layers=layers,
            environment={
                **environment,
                **state.environment_for(C.KEYS),
                C.ENV_TRACKING_PLAN_PATH: TRACKING_PLAN_PATH,  # tracking-plan/, in the core layer
                C.ENV_EVENTS_QUEUE_URL: self.events_queue.queue_url,
                C.ENV_RATE_LIMIT: str(C.DEFAULT_RATE_LIMIT_PER_SECOND),
            },
            memory_size=256,
            timeout=cdk.Duration.seconds(10),
        )
        self.function = self.handler.function
        self.events_queue.grant_send_messages(self.function)
        state.grant_key_lookup(self.function)

        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description="nudge: Segment-compatible ingestion and the read-and-manage API",
            create_default_stage=False,
            # Browser SDKs (analytics.js) post from the customer's pages; API Gateway
            # answers the preflights (local mode does the same from the same constants).
            cors_preflight=apigw.CorsPreflightOptions(
                allow_origins=list(C.CORS_ALLOW_ORIGINS),
                allow_methods=[apigw.CorsHttpMethod(m) for m in C.CORS_ALLOW_METHODS],
                allow_headers=list(C.CORS_ALLOW_HEADERS),
                expose_headers=list(C.CORS_EXPOSE_HEADERS),
                max_age=cdk.Duration.seconds(C.CORS_MAX_AGE_SECONDS),
            ),
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=LOG_RETENTION,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # The stage throttle is the global ceiling; the ingest function also keeps a
        # token bucket per write key (C.ENV_RATE_LIMIT) to answer 429 with Retry-After.
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=C.DEFAULT_RATE_LIMIT_PER_SECOND,
                burst_limit=2 * C.DEFAULT_RATE_LIMIT_PER_SECOND,
            ),
            access_log_settings=_AccessLogSettings(apigw.LogGroupLogDestination(self.access_logs)),
        )

        integration = integrations.HttpLambdaIntegration("IngestIntegration", self.function)
        self.routes: list[apigw.HttpRoute] = []
        for path in INGEST_ROUTES.values():  # nudge.domain.ingest: the one list of them
            self.routes += self.http_api.add_routes(
                path=path, methods=[apigw.HttpMethod.POST], integration=integration
            )
        for route in self.routes:
            cdk.Validations.of(route).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-APIG4",
                    reason=(
                        "Authenticated in the ingest function, as Segment's Tracking API "
                        "does: the write key comes as HTTP Basic user or as a writeKey field "
                        "in the (possibly gzip-compressed) body, which an API Gateway "
                        "authorizer cannot read; keys are checked against SHA-256 digests "
                        "in the keys table and a missing or wrong key gets 401."
                    ),
                )
            )
        self.settings_routes = self.http_api.add_routes(
            path=BROWSER_SETTINGS_ROUTE, methods=[apigw.HttpMethod.GET], integration=integration
        )
        for route in self.settings_routes:
            cdk.Validations.of(route).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-APIG4",
                    reason=(
                        "Public by contract, as Segment's CDN settings are: browsers fetch "
                        "analytics.js settings by write key before sending (write keys ship "
                        "in web pages); the ingest function answers 404 for a key that is "
                        "not a write key and returns nothing secret."
                    ),
                )
            )
        self.routes += self.settings_routes

    @property
    def url(self) -> str:
        return self.stage.url
