"""Requests answered at once by local mode each get their own answer, as the dashboard's
sections ask for their reports all at once: the api function's resolver holds the
request it answers, so local mode gives each HTTP function one request at a time, as a
Lambda execution environment is given them (nudge.local.lambdas.Function)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


def test_reports_asked_for_at_once_each_answer_their_own_parameters(client: Client) -> None:
    # given report requests whose answers echo their parameter, asked for together
    asks = [("tracking", days) for days in range(1, 21)] + [
        ("triggers", days) for days in range(1, 21)
    ]

    def ask(what: str, days: int) -> tuple[str, int, int, int]:
        r = requests.get(  # a session of its own per request (requests' are not shared)
            f"{client.url}/v1/reports/{what}",
            params={"days": days},
            headers={"Authorization": f"Bearer {client.local.admin_key}"},
            timeout=120,
        )
        return what, days, r.status_code, r.json().get("days", -1)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda a: ask(*a), asks))

    # then each answered its own question
    wrong = [a for a in answers if a[2] != 200 or a[3] != a[1]]
    assert wrong == [], wrong
