"""The triggers report through local mode: a cart abandonment email sent shows in
`GET /v1/reports/triggers` (fired and sent for `cart_abandonment`, today's row) and in
`nudge report triggers`, and its outcome is in `nudge sql`'s `events` exactly once."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from typing import Any

import pytest
from nudge.cli import main

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's copies of archive objects go to a folder of this test session."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


def nudge(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def cart_kpis(client: Client) -> dict[str, Any]:
    r = client.admin_get("/v1/reports/triggers", params={"days": 7})
    assert r.status_code == 200, r.text
    return next(t for t in r.json()["triggers"] if t["id"] == "cart_abandonment")


def test_a_cart_email_sent_is_counted_in_the_triggers_report_and_archived_once(
    client: Client, uid: str
) -> None:
    # given a daytime hour (no quiet hours), and the report as it stands
    now = datetime.fromisoformat(client.clock(advance_seconds=0)["now"].replace("Z", "+00:00"))
    day = (now + timedelta(days=1)).replace(hour=14, minute=0, second=0, microsecond=0)
    client.clock(set=day.isoformat())
    before = cart_kpis(client)

    # when a user with an address abandons a cart for 16 minutes
    r = client.send("identify", {"userId": uid, "traits": {"email": f"{uid}@example.com"}})
    assert r.status_code == 200, r.text
    client.track(uid, "Product Added", {"product_id": "sku-7", "name": "Trail Runner", "price": 99})
    client.clock(advance_seconds=16 * 60)
    assert [m["trigger"] for m in client.outbox(uid) if m["channel"] == "email"] == [
        "cart_abandonment"
    ]

    # then the report counts one more fired and sent, today
    after = cart_kpis(client)
    assert after["fired"] == before["fired"] + 1
    assert after["sent"] == before["sent"] + 1
    today_before, today_after = before["daily"][-1], after["daily"][-1]
    assert today_after["date"] == day.date().isoformat() == today_before["date"]
    assert today_after["sent"] == today_before["sent"] + 1
    # and `nudge sql` sees the outcome once
    code, out, err = nudge(
        "sql",
        "--url",
        client.url,
        "--json",
        "select message_id, properties->>'status', properties->>'channel' from events "
        f"where event = 'Message Outcome' and user_id = '{uid}'",
    )
    assert code == 0, err
    [(message_id, status, channel)] = json.loads(out)["rows"]
    assert (status, channel) == ("sent", "email") and message_id.startswith("outcome-")
    # and the CLI shows the same numbers
    code, out, err = nudge(
        "report", "triggers", "--days", "7", "--url", client.url,
        "--admin-key", client.local.admin_key, "--json",
    )  # fmt: skip
    assert code == 0, err
    cli_cart = next(t for t in json.loads(out)["triggers"] if t["id"] == "cart_abandonment")
    assert (cli_cart["fired"], cli_cart["sent"]) == (after["fired"], after["sent"])
