"""Typed errors of the core. Handlers map them to HTTP statuses or batch failures in
one place (nudge.http.errors), never by matching message text."""

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


class PayloadTooLargeError(NudgeError):
    code = "payload_too_large"


class RateLimitedError(NudgeError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PoisonMessageError(NudgeError):
    """A queued message that can never be processed (it failed validation). It is
    moved to the dead-letter queue at once instead of blocking its message group."""

    code = "poison_message"


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
