"""Cohort retention through local mode: months of history sent to /v1/import (out of
order, with repeats), then `GET /v1/reports/cohorts` is what pandas computes from every
row of the archive's `events` (other tests share this local mode, so the whole archive is
compared, and this test's users are checked to be where their history puts them);
`nudge report cohorts --json` prints the same document."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from tests.e2e.conftest import Client
from tests.e2e.test_archive_e2e import nudge, sql
from tests.unit.test_cohorts import pandas_cohorts

pytestmark = pytest.mark.e2e


def _now(client: Client) -> datetime:
    r = client.s.get(f"{client.url}/_local/clock")
    assert r.status_code == 200, r.text
    return datetime.fromisoformat(r.json()["now"].replace("Z", "+00:00"))


def _history(run: str, now: datetime) -> tuple[list[dict[str, Any]], dict[str, datetime]]:
    """60 users, first seen 1 to 150 days ago, active on and off since; shuffled."""
    rnd = random.Random(run)
    items: list[dict[str, Any]] = []
    firsts: dict[str, datetime] = {}
    names = ["Page Viewed", "Product Viewed", "Product Added", "Order Completed"]
    for i in range(60):
        user = f"coh-{run}-{i}"
        at = now - timedelta(days=rnd.uniform(1, 150))
        firsts[user] = at
        while at < now - timedelta(minutes=1):
            name = rnd.choice(names)
            item: dict[str, Any] = {"userId": user, "timestamp": at.isoformat()}
            if name == "Page Viewed":
                item.update(type="page", name="Home")
            else:
                item.update(type="track", event=name, properties={"product_id": "p1"})
            items += [item] * (2 if rnd.random() < 0.1 else 1)  # repeated (new messageIds)
            at += timedelta(days=rnd.expovariate(1 / 12))
    rnd.shuffle(items)
    return items, firsts


def test_cohorts_of_imported_history_are_what_pandas_computes(client: Client) -> None:
    run = uuid.uuid4().hex[:8]
    now = _now(client)
    items, firsts = _history(run, now)
    for i in range(0, len(items), 200):
        r = client.send("import", {"batch": items[i : i + 200]})
        assert r.status_code == 200 and "details" not in r.json(), r.text
    client.settle()

    for period, event in (("month", None), ("week", None), ("week", "Order Completed")):
        query = f"/v1/reports/cohorts?period={period}" + (f"&event={event}" if event else "")
        r = client.admin_get(query)
        assert r.status_code == 200, r.text
        report = r.json()
        rows = sql(client, "SELECT user_id, event, timestamp FROM events")["rows"]
        events = pd.DataFrame(rows, columns=["user_id", "event", "timestamp"])
        events["ts"] = pd.to_datetime(events["timestamp"], utc=True)
        events = events[events["user_id"].notna()]
        want = pandas_cohorts(events, period, event, now=_now(client))
        got = [{k: c[k] for k in ("cohort", "size", "retention")} for c in report["cohorts"]]
        assert [(c["cohort"], c["size"]) for c in got] == [(c["cohort"], c["size"]) for c in want]
        for g, w in zip(got, want, strict=True):
            assert g["retention"] == pytest.approx(w["retention"]), (period, g["cohort"])

    # this test's users are in the months their history started (all 60 of them)
    r = client.admin_get("/v1/reports/cohorts?period=month")
    sizes = {c["cohort"]: c["size"] for c in r.json()["cohorts"]}
    mine: dict[str, int] = {}
    for at in firsts.values():
        mine[f"{at:%Y-%m}"] = mine.get(f"{at:%Y-%m}", 0) + 1
    assert sum(mine.values()) == 60
    assert all(sizes[month] >= n for month, n in mine.items())
    code, out, err = nudge(
        "report", "cohorts", "--period", "month", "--url", client.url,
        "--admin-key", client.local.admin_key, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == r.json()
