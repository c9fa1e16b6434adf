"""Typed errors of the core. Handlers and local mode's own endpoints map them to HTTP
statuses in one place (nudge.http.STATUS, by class), never by matching message text;
the queue consumers turn them into batch item failures or dead letters.

Errors of one use case live beside it and derive from NudgeError: delivery's send
errors (nudge.domain.delivery), TemplateRenderError (nudge.domain.templates),
DefinitionError (nudge.domain.triggers.loader)."""

from __future__ import annotations

from typing import Any


class NudgeError(Exception):
    code = "error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequestError(NudgeError):
    code = "bad_request"


class InvalidJsonError(BadRequestError):
    code = "invalid_json"


class ValidationFailedError(BadRequestError):
    code = "validation_failed"


class UnauthorizedError(NudgeError):
    code = "unauthorized"


class ForbiddenError(NudgeError):
    code = "forbidden"


class NotFoundError(NudgeError):
    code = "not_found"


class ConflictError(NudgeError):
    code = "conflict"


class ClockMovedBackwardsError(ConflictError, ValueError):
    """A settable clock only moves forward (local mode's `/_local/clock`, the backtest)."""

    code = "clock_backwards"


class PayloadTooLargeError(NudgeError):
    code = "payload_too_large"


class RateLimitedError(NudgeError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ConcurrentUpdateError(NudgeError):
    """Another writer changed the item since it was read (optimistic locking)."""

    code = "concurrent_update"


class DependencyUnavailableError(NudgeError):
    """A backing service did not accept the work; the client should retry (503)."""

    code = "unavailable"


class QueryError(NudgeError):
    """A SQL query over the event archive could not run: the archive could not be read,
    the engine failed, or the query failed while running (a bad cast, say). The message
    says which, in words a person can act on."""

    code = "query_failed"


class QuerySyntaxError(QueryError):
    """The query text is wrong: it does not parse, or names a table, column or function
    that does not exist, or mixes types. Carries the engine's own message."""

    code = "query_invalid"


class QueryForbiddenError(QueryError):
    """The query tried what the engine does not allow: reading or writing files of the
    host, loading extensions, changing the engine's settings."""

    code = "query_forbidden"


class QueryTimeoutError(QueryError):
    """The query ran longer than the engine's timeout (it was cancelled)."""

    code = "query_timeout"
