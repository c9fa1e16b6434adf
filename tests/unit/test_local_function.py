"""Local mode's functions (nudge.local.lambdas.Function): an HTTP function answers one
request at a time, as one Lambda execution environment does (its resolver holds the
request), while a queue consumer's batches may run side by side."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from nudge.local.lambdas import Function


class Overlap:
    """A handler that notes how many invocations ran at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self._lock:
            self.running -= 1
        return {"statusCode": 200}


@pytest.mark.parametrize("one_at_a_time", [True, False])
def test_invocations_take_turns_only_where_the_function_needs_it(one_at_a_time: bool) -> None:
    fn = Function("api", one_at_a_time=one_at_a_time)
    spy = Overlap()
    fn.handler = spy

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: fn.invoke({}), range(8)))

    assert spy.most == 1 if one_at_a_time else spy.most > 1
    assert fn.invocations == 8
