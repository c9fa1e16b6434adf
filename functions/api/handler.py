"""api: read and manage (admin key) — profiles now; inbox, reports and more as they land."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from nudge.adapters.keys import DynamoKeyStore
from nudge.adapters.profiles import DynamoProfileStore
from nudge.domain import users
from nudge.http import header, install_error_handlers, json_response, require_admin
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import ApiSettings

app = APIGatewayHttpResolver()
install_error_handlers(app)


class Deps:
    def __init__(self) -> None:
        self.settings = ApiSettings()  # type: ignore[call-arg]
        self.keys = DynamoKeyStore()
        self.profiles = DynamoProfileStore()


@cache
def deps() -> Deps:
    return Deps()


def admin() -> Deps:
    d = deps()
    require_admin(d.keys, header(app.current_event.raw_event, "authorization"))
    return d


@app.get("/health")
def health() -> Any:
    return json_response({"status": "ok"})


@app.get("/v1/users/<user_id>")
def get_user(user_id: str) -> Any:
    d = admin()
    return json_response(users.profile_view(d.profiles, unquote(user_id), now=clock().now()))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
