"""api: read and manage (admin key) — profiles, inbox, deliveries, devices; plus the
public unsubscribe endpoint (the signed token is the credential) and /health."""

from __future__ import annotations

import contextlib
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from nudge.adapters.delivery import DynamoDeliveryLog, DynamoInbox, SecretsManagerKey
from nudge.adapters.devices import SnsDevices
from nudge.adapters.keys import DynamoKeyStore
from nudge.adapters.profiles import DynamoProfileStore
from nudge.domain import users
from nudge.domain.delivery import deliveries_view
from nudge.domain.errors import NotFoundError, ValidationFailedError
from nudge.domain.inbox import inbox_view
from nudge.domain.unsubscribe import confirmation_page, verify_token
from nudge.http import header, install_error_handlers, json_response, require_admin
from nudge.observability import logger, metrics, tracer
from nudge.runtime import clock
from nudge.settings import ApiSettings

app = APIGatewayHttpResolver()
install_error_handlers(app)


class Deps:
    def __init__(self) -> None:
        s = self.settings = ApiSettings()  # type: ignore[call-arg]
        self.keys = DynamoKeyStore()
        self.profiles = DynamoProfileStore()
        self.inbox = DynamoInbox()
        self.log = DynamoDeliveryLog()
        self.unsubscribe_key = SecretsManagerKey(s.unsubscribe_secret_arn)
        self.devices = SnsDevices(apns_arn=s.apns_application_arn, fcm_arn=s.fcm_application_arn)


@cache
def deps() -> Deps:
    return Deps()


def admin() -> Deps:
    d = deps()
    require_admin(d.keys, header(app.current_event.raw_event, "authorization"))
    return d


def known_user(d: Deps, user_id: str) -> str:
    users.profile_view(d.profiles, user_id, now=clock().now())  # 404 for an unknown user
    return user_id


@app.get("/health")
def health() -> Any:
    return json_response({"status": "ok"})


@app.get("/v1/users/<user_id>")
def get_user(user_id: str) -> Any:
    d = admin()
    return json_response(users.profile_view(d.profiles, unquote(user_id), now=clock().now()))


@app.get("/v1/users/<user_id>/messages")
def get_messages(user_id: str) -> Any:
    d = admin()
    uid = known_user(d, unquote(user_id))
    return json_response(inbox_view(d.inbox.messages(uid)))


@app.post("/v1/users/<user_id>/messages/<message_id>/read")
def read_message(user_id: str, message_id: str) -> Any:
    d = admin()
    if not d.inbox.mark_read(unquote(user_id), unquote(message_id)):
        raise NotFoundError(f"no message {unquote(message_id)!r} for user {unquote(user_id)!r}")
    return json_response({"id": unquote(message_id), "read": True})


@app.get("/v1/users/<user_id>/deliveries")
def get_deliveries(user_id: str) -> Any:
    d = admin()
    uid = known_user(d, unquote(user_id))
    return json_response(deliveries_view(d.log.entries(uid)))


@app.post("/v1/users/<user_id>/devices")
def post_device(user_id: str) -> Any:
    d = admin()
    uid = known_user(d, unquote(user_id))
    body = app.current_event.json_body if app.current_event.body else None
    if not isinstance(body, dict):
        raise ValidationFailedError('send {"platform": "apns"|"fcm", "token": "..."}')
    platform, token = body.get("platform"), body.get("token")
    if platform not in ("apns", "fcm") or not isinstance(token, str) or not token.strip():
        raise ValidationFailedError('platform must be "apns" or "fcm" and token a non-empty string')
    endpoint_arn = d.devices.register(uid, platform, token.strip())
    device = {"platform": platform, "token": token.strip(), "endpoint_arn": endpoint_arn}
    users.add_device(d.profiles, uid, device)
    return json_response({"user_id": uid, **device}, status=201)


def _unsubscribe() -> Response[str]:
    d = deps()
    token = (app.current_event.query_string_parameters or {}).get("token")
    user_id, channel = verify_token(d.unsubscribe_key.get(), token)
    with contextlib.suppress(NotFoundError):  # an erased user: nothing left to send to
        users.opt_out(d.profiles, user_id, channel)
    logger.info("unsubscribed", extra={"channel": channel})
    if app.current_event.http_method == "POST":  # RFC 8058 one-click: the mail client posts
        return json_response({"unsubscribed": True, "channel": channel})
    return Response(
        status_code=200, content_type="text/html; charset=utf-8", body=confirmation_page(channel)
    )


app.get("/v1/unsubscribe")(_unsubscribe)
app.post("/v1/unsubscribe")(_unsubscribe)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
