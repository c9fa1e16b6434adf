"""The read-and-manage API: profiles, inbox, deliveries, devices, unsubscribe, health and
the OpenAPI document, on the HTTP API the ingest construct owns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nudge import constants as C

from infra.constructs.delivery import Delivery
from infra.constructs.function import NudgeFunction
from infra.constructs.layers import OPENAPI_PATH
from infra.constructs.scheduling import Scheduling
from infra.constructs.state import State
from infra.context import DeliveryContext

# Exactly the routes functions/api/handler.py serves (docs/openapi.json lists them; a
# test fails on a route here that the handler does not answer, or the other way round).
# A feature adds its route here together with its handler.
API_ROUTES: tuple[tuple[apigw.HttpMethod, str], ...] = (
    (apigw.HttpMethod.GET, "/health"),
    (apigw.HttpMethod.GET, "/openapi.json"),
    (apigw.HttpMethod.GET, "/v1/users/{userId}"),
    (apigw.HttpMethod.DELETE, "/v1/users/{userId}"),
    (apigw.HttpMethod.GET, "/v1/users/{userId}/export"),
    (apigw.HttpMethod.GET, "/v1/users/{userId}/messages"),
    (apigw.HttpMethod.POST, "/v1/users/{userId}/messages/{messageId}/read"),
    (apigw.HttpMethod.GET, "/v1/users/{userId}/deliveries"),
    (apigw.HttpMethod.POST, "/v1/users/{userId}/devices"),
    (apigw.HttpMethod.GET, "/v1/users/{userId}/recommendations"),
    (apigw.HttpMethod.GET, "/v1/experiments/{experimentId}"),
    (apigw.HttpMethod.GET, "/v1/reports/tracking"),
    (apigw.HttpMethod.GET, "/v1/reports/segments"),
    (apigw.HttpMethod.GET, "/v1/reports/dead-letters"),
    (apigw.HttpMethod.GET, "/v1/reports/cohorts"),
    (apigw.HttpMethod.GET, "/v1/reports/funnel"),
    (apigw.HttpMethod.GET, "/v1/reports/triggers"),
    (apigw.HttpMethod.POST, "/v1/keys"),
    (apigw.HttpMethod.GET, "/v1/keys"),
    (apigw.HttpMethod.DELETE, "/v1/keys/{keyId}"),
    (apigw.HttpMethod.GET, "/v1/experiments"),
    (apigw.HttpMethod.GET, "/dashboard"),
    (apigw.HttpMethod.GET, "/dashboard/assets/{name}"),
    (apigw.HttpMethod.GET, "/v1/unsubscribe"),
    (apigw.HttpMethod.POST, "/v1/unsubscribe"),
)
PUBLIC_PATHS = frozenset(
    {"/health", "/openapi.json", "/v1/unsubscribe", "/dashboard", "/dashboard/assets/{name}"}
)


class Api(Construct):
    """``handler`` (the NudgeFunction), ``function``, ``routes``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        http_api: apigw.HttpApi,
        state: State,
        scheduling: Scheduling,
        delivery: Delivery,
        events_dlq: sqs.IQueue,
        context: DeliveryContext,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id)
        self.handler = NudgeFunction(
            self,
            "Api",
            name=C.FN_API,
            description="Profiles, inbox, deliveries, devices, unsubscribe, OpenAPI document",
            layers=layers,
            environment={
                **environment,
                **state.environment_for(
                    C.PROFILES, C.KEYS, C.DELIVERIES, C.INBOX, C.TIMERS, C.SUPPRESSIONS, C.DEDUP
                ),
                # GET /v1/reports/dead-letters: the queues' sizes (entries: timers table)
                C.ENV_EVENTS_DLQ_URL: events_dlq.queue_url,
                C.ENV_ACTIONS_DLQ_URL: delivery.actions_dlq.queue_url,
                C.ENV_UNSUBSCRIBE_SECRET_ARN: delivery.unsubscribe_secret.secret_arn,
                C.ENV_OPENAPI_PATH: OPENAPI_PATH,  # docs/openapi.json, in the core layer
                # "" when absent: registering a device of that platform answers 400.
                C.ENV_APNS_APPLICATION_ARN: context.apns_application_arn,
                C.ENV_FCM_APPLICATION_ARN: context.fcm_application_arn,
            },
            memory_size=512,  # reports fold many profiles
            timeout=cdk.Duration.seconds(29),  # an HTTP API waits at most 30 s
        )
        self.function = self.handler.function
        state.grant_profile_manage(self.function)
        state.grant_key_manage(self.function)  # looks keys up; /v1/keys manages them
        state.grant_inbox_read(self.function)
        state.grant_delivery_log_read(self.function)
        state.grant_erase(self.function)  # DELETE /v1/users/{id} (docs/erase.md)
        # GET /v1/reports/dead-letters (D40): the entries, and each DLQ's size only (no
        # ReceiveMessage: a peek at a FIFO DLQ is not free of effect, D39)
        state.grant_dead_letter_read(self.function)
        for dlq in (events_dlq, delivery.actions_dlq):
            dlq.grant(self.function, "sqs:GetQueueAttributes")
        delivery.grant_unsubscribe_key(self.function)  # verifies unsubscribe tokens
        if context.platform_application_arns:  # POST /v1/users/{id}/devices
            iam.Grant.add_to_principal(
                grantee=self.function,
                actions=["sns:CreatePlatformEndpoint"],
                resource_arns=context.platform_application_arns,
            )
            endpoints = [
                arn.replace(":app/", ":endpoint/", 1) + "/*"
                for arn in context.platform_application_arns
            ]
            iam.Grant.add_to_principal(  # erase deletes the user's endpoints
                grantee=self.function, actions=["sns:DeleteEndpoint"], resource_arns=endpoints
            )
            assert self.function.role is not None
            for endpoint in endpoints:
                cdk.Validations.of(self.function.role).acknowledge(
                    cdk.Acknowledgment(
                        id=f"AwsSolutions-IAM5[Resource::{endpoint}]",
                        reason="SNS names each device's endpoint when it registers: "
                        "DeleteEndpoint (erase) is confined to the endpoints of the "
                        "configured platform application.",
                    )
                )

        integration = integrations.HttpLambdaIntegration("ApiIntegration", self.function)
        self.routes: list[apigw.HttpRoute] = []
        for method, path in API_ROUTES:
            routes = http_api.add_routes(path=path, methods=[method], integration=integration)
            self.routes += routes
            reason = (
                "Public by contract: the health check, the OpenAPI document and the "
                "dashboard's page and assets (static, no data: the page reads the admin "
                "routes with the key the user types) need no key, and unsubscribe links (GET, and the RFC 8058 one-click POST) carry a "
                "signed token, verified in the api function (a forged token gets 403)."
                if path in PUBLIC_PATHS
                else "Authenticated in the api function: a Bearer admin key checked against "
                "SHA-256 digests in the keys table (no key 401, a write key 403), the "
                "same rule in local mode and on AWS."
            )
            for route in routes:
                cdk.Validations.of(route).acknowledge(
                    cdk.Acknowledgment(id="AwsSolutions-APIG4", reason=reason)
                )
