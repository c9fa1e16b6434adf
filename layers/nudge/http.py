"""HTTP glue shared by the API Gateway handlers: typed errors mapped to statuses in one
place (STATUS, also what local mode's own endpoints answer with), raw bodies (gzip
arrives base64-encoded), admin auth."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound

from nudge.domain import errors as E
from nudge.domain.ingest import KeyStore, bearer_token, hash_key
from nudge.observability import logger

STATUS: dict[type[E.NudgeError], int] = {
    E.BadRequestError: 400,
    E.UnauthorizedError: 401,
    E.ForbiddenError: 403,
    E.NotFoundError: 404,
    E.ConflictError: 409,
    E.PayloadTooLargeError: 413,
    E.RateLimitedError: 429,
    E.DependencyUnavailableError: 503,
}


# How a function answers a path it has no route for (tests tell it from a 404 of a route).
ROUTE_NOT_FOUND = "no route"


def resolver_route(route: str) -> str:
    """An API Gateway route (`/v1/projects/{writeKey}/settings`) in the syntax of
    Powertools' resolver (`/v1/projects/<writeKey>/settings`), so a route is written once."""
    return re.sub(r"\{(\w+)\}", r"<\1>", route)


def status_for(kind: type[E.NudgeError]) -> int:
    """The status of an error class: that of its nearest class in STATUS, else 500."""
    for cls in kind.__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def status_of(err: E.NudgeError) -> int:
    return status_for(type(err))


def error_body(code: str, message: str, details: list[Any] | None = None) -> str:
    """The JSON of every error answer, the functions' and local mode's alike."""
    return json.dumps({"error": code, "message": message, "details": details or []})


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=error_body(code, message, details),
        headers=headers,
    )


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, separators=(",", ":"), default=str),
        headers=headers,
    )


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    def _typed(err: E.NudgeError) -> Response[str]:
        status = status_of(err)
        headers = None
        if isinstance(err, E.RateLimitedError):
            headers = {"Retry-After": str(err.retry_after_seconds)}
        if status >= 500:
            logger.warning("dependency unavailable", extra={"error": err.message})
        return error_response(status, err.code, err.message, err.details, headers)

    # registered by a call, not as a decorator: Powertools' exception_handler is
    # unannotated, and as a decorator it would make _typed untyped
    app.exception_handler(E.NudgeError)(_typed)

    @app.not_found
    def _not_found(_: RouteNotFound) -> Response[str]:
        ev = app.current_event
        return error_response(404, "not_found", f"{ROUTE_NOT_FOUND} {ev.http_method} {ev.path}")


def resolve(
    app: APIGatewayHttpResolver, event: dict[str, Any], context: Any, *, deps: object | None
) -> dict[str, Any]:
    """Answers one request. A handler's `deps` argument (its ports, passed by a test) is
    kept in the app's context for the routes to read (`passed_deps`) while it is
    answered: Powertools clears the context when `resolve` returns."""
    if deps is not None:
        app.context["deps"] = deps
    return app.resolve(event, context)


def passed_deps(app: APIGatewayHttpResolver) -> Any:
    """The `deps` passed to the handler answering this request, None when none was."""
    return app.context.get("deps")


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body)
        except ValueError:
            raise E.InvalidJsonError("body is not valid base64") from None
    return body.encode("utf-8")


def header(event: dict[str, Any], name: str) -> str | None:
    headers = event.get("headers") or {}
    lname = name.lower()
    for k, v in headers.items():
        if k.lower() == lname:
            return str(v)
    return None


def require_admin(keys: KeyStore, authorization: str | None) -> None:
    """Admin routes: no key → 401, a write key → 403, an admin key → pass."""
    token = bearer_token(authorization)
    if token is None:
        from nudge.domain.ingest import basic_auth_user

        token = basic_auth_user(authorization)
        if token is None:
            raise E.UnauthorizedError("missing admin key: send Authorization: Bearer <admin key>")
    kind = keys.kind_of(hash_key(token))
    if kind == "admin":
        return
    if kind == "write":
        raise E.ForbiddenError("a write key can only ingest events; use the admin key")
    raise E.UnauthorizedError("invalid admin key")
