"""`POST /_local/clock` and `/_local/settle` answer a move they cannot make with a 4xx in
the API's error shape, never a 500: a time so late that the timers computed
from it overflow, a number that is not finite, a timeout that is not positive."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nudge.local.server import LATEST_CLOCK, LocalConfig, LocalError, LocalMode, clock_target

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _post(path: str, body: str) -> tuple[int, dict[str, Any]]:
    # the local routes answer before anything is started when the request is refused
    local = LocalMode(LocalConfig())
    status, _, data = local.dispatch("POST", path, "", {}, body.encode(), "127.0.0.1")
    return status, json.loads(data)


@pytest.mark.parametrize(
    "body",
    [
        '{"set": "9999-12-31T00:00:00Z"}',
        '{"set": "3000-01-01T00:00:01Z"}',
        '{"advance_seconds": 1e300}',
        '{"advance_seconds": NaN}',
        '{"advance_seconds": Infinity}',
        '{"advance_seconds": "nan"}',
        '{"advance_seconds": true}',
        '{"advance_seconds": [1]}',
        '{"set": "next tuesday"}',
    ],
)
def test_a_clock_move_it_cannot_make_is_a_400_in_the_error_shape(body: str) -> None:
    status, answer = _post("/_local/clock", body)

    assert status == 400
    assert answer["error"] == "bad_request" and answer["message"] and answer["details"] == []


def test_too_late_a_time_says_how_late_the_clock_goes() -> None:
    _, answer = _post("/_local/clock", '{"set": "9999-12-31T23:59:59Z"}')
    assert "3000-01-01" in answer["message"]


@pytest.mark.parametrize("timeout", ["NaN", "Infinity", "0", "-5", '"x"'])
def test_a_settle_timeout_that_is_not_a_positive_number_is_a_400(timeout: str) -> None:
    status, answer = _post("/_local/settle", f'{{"timeout_seconds": {timeout}}}')
    assert status == 400 and answer["error"] == "bad_request"


def test_the_clock_moves_up_to_its_latest_time_and_never_back() -> None:
    assert clock_target({"set": "2999-12-31T23:59:59Z"}, NOW) < LATEST_CLOCK
    assert clock_target({"set": LATEST_CLOCK.isoformat()}, NOW) == LATEST_CLOCK
    assert clock_target({"advance_seconds": 90}, NOW) == NOW + timedelta(seconds=90)
    assert clock_target({"advance_seconds": "1.5"}, NOW) == NOW + timedelta(seconds=1.5)
    assert clock_target({"set": "2026-12-01T12:00:00"}, NOW) == NOW  # no zone: UTC
    for backwards in ({"advance_seconds": -1}, {"set": "2026-01-01T00:00:00Z"}):
        with pytest.raises(LocalError) as err:
            clock_target(backwards, NOW)
        assert err.value.status == 409


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\x1f\x8b\x08\x00", "invalid_json"),  # gzip: not text
        (b"\xff\xfe{}", "invalid_json"),
        (b'{"set": "\xed\xa0\x80"}', "bad_request"),  # a lone surrogate: not a time
    ],
)
def test_a_clock_body_that_is_not_text_is_a_400_not_a_500(raw: bytes, error: str) -> None:
    local = LocalMode(LocalConfig())

    status, _, data = local.dispatch("POST", "/_local/clock", "", {}, raw, "127.0.0.1")

    assert (status, json.loads(data)["error"]) == (400, error)


@pytest.mark.parametrize("path", ["/_local/clock", "/_local/settle"])
def test_a_body_nested_too_deeply_is_a_400_not_a_500(path: str) -> None:
    # found by make fuzz: json.loads raises RecursionError, not ValueError, on it
    status, answer = _post(path, "[" * 100_000)

    assert (status, answer["error"]) == (400, "invalid_json")
    assert "nested too deeply" in answer["message"]
