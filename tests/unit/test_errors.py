"""Typed errors and the one map from error class to HTTP status (nudge.http.STATUS),
which the functions and local mode's own endpoints answer with."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from nudge.domain import errors as E
from nudge.domain.clock import SettableClock
from nudge.http import error_body, status_of

from tests.fakes import NOW


@pytest.mark.parametrize(
    ("err", "status"),
    [
        (E.InvalidJsonError("x"), 400),
        (E.ValidationFailedError("x"), 400),
        (E.UnauthorizedError("x"), 401),
        (E.ForbiddenError("x"), 403),
        (E.NotFoundError("x"), 404),
        (E.ClockMovedBackwardsError("x"), 409),
        (E.PayloadTooLargeError("x"), 413),
        (E.RateLimitedError("x", retry_after_seconds=1), 429),
        (E.DependencyUnavailableError("x"), 503),
        (E.ConcurrentUpdateError("x"), 500),  # never meant to reach a client
    ],
)
def test_each_error_class_has_its_status_by_inheritance(err: E.NudgeError, status: int) -> None:
    assert status_of(err) == status


def test_a_clock_moved_back_is_a_409_conflict_and_still_a_value_error() -> None:
    clock = SettableClock(NOW, frozen=True)

    with pytest.raises(E.ClockMovedBackwardsError) as caught:
        clock.set(NOW - timedelta(minutes=1))

    assert isinstance(caught.value, ValueError) and caught.value.code == "clock_backwards"
    assert status_of(caught.value) == 409


def test_an_error_answer_names_its_code_message_and_details() -> None:
    body = json.loads(error_body("bad_request", "set must be an ISO-8601 time"))

    assert body == {
        "error": "bad_request",
        "message": "set must be an ISO-8601 time",
        "details": [],
    }
