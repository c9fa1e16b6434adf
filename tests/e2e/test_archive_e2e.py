"""The event archive through local mode (issue "Event history"): events sent with Segment's
SDK, duplicates and redeliveries included, are counted exactly by `nudge sql` (each
message_id once); a query cannot read the host's files; and `nudge triggers backtest
--archive` agrees with what fired live, per user and trigger, on a week of mixed
traffic (cart, repeat views, dwell and inactivity)."""

from __future__ import annotations

import io
import json
import random
import time
import uuid
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nudge.cli import main
from nudge.domain.archive import SENT_BY_USERS_SQL
from segment.analytics import Client as SegmentClient

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


def sql(client: Client, query: str) -> dict[str, Any]:
    code, out, err = nudge("sql", "--url", client.url, "--json", query)
    assert code == 0, err
    return json.loads(out)


def test_nudge_sql_counts_each_event_once_despite_duplicates_and_redeliveries(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: 2,000 events of 40 users through Segment's SDK (gzip, batches of 100), the
    # archive refusing the first writes (the process function's records are redelivered)
    run = uuid.uuid4().hex[:8]
    from nudge.adapters.archive import FirehoseArchive

    original = FirehoseArchive.write
    refusals = {"left": 5}

    def flaky(self: FirehoseArchive, lines: Any) -> None:
        if refusals["left"] > 0:
            refusals["left"] -= 1
            from nudge.domain.errors import DependencyUnavailableError

            raise DependencyUnavailableError("archive unavailable (test)")
        original(self, lines)

    monkeypatch.setattr(FirehoseArchive, "write", flaky)
    sdk = SegmentClient(
        write_key=client.local.write_key, host=client.url, upload_size=100, gzip=True
    )
    names = ["Product Viewed", "Product Added", "Order Completed", "Song Played"]
    expected: Counter[str] = Counter()
    per_user: Counter[str] = Counter()
    sent = []
    for i in range(2000):
        user, name = f"sql-{run}-{i % 40}", names[i % 4 if i % 9 else 0]
        sent.append((user, name, f"{run}-{i}"))
        expected[name] += 1
        per_user[user] += 1
    for user, name, mid in sent:
        sdk.track(user_id=user, event=name, properties={"product_id": "p1"}, message_id=mid)
    sdk.flush()
    # and 300 of them again (an SDK retrying), one as a page call too
    for user, name, mid in sent[:300]:
        sdk.track(user_id=user, event=name, properties={"product_id": "p1"}, message_id=mid)
    sdk.flush()
    client.settle()
    assert refusals["left"] == 0  # the redelivery path was taken
    # when
    started = time.perf_counter()
    by_event = sql(
        client,
        f"select event, count(*) as n from events where user_id like 'sql-{run}-%' "
        f"and {SENT_BY_USERS_SQL} group by 1 order by 2 desc",
    )
    took = time.perf_counter() - started
    by_user = sql(
        client,
        f"select user_id, count(*) from events where user_id like 'sql-{run}-%' "
        f"and {SENT_BY_USERS_SQL} group by 1",
    )
    # then
    assert by_event["columns"] == ["event", "n"]
    assert dict(map(tuple, by_event["rows"])) == dict(expected)
    assert dict(map(tuple, by_user["rows"])) == dict(per_user)
    one = sql(client, f"select * from events where message_id = '{run}-7'")
    row = dict(zip(one["columns"], one["rows"][0], strict=True))
    assert row["user_id"] == f"sql-{run}-7" and row["event"] == "Song Played"
    assert row["properties"] == {"product_id": "p1"} and row["historical"] is False
    print(f"\nnudge sql over the archive: {took:.2f} s")


def test_a_query_cannot_read_the_hosts_files_and_a_syntax_error_is_one_line(
    client: Client,
) -> None:
    for query in (
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "copy (select 1) to '/tmp/nudge-leak.csv'",
    ):
        code, out, err = nudge("sql", "--url", client.url, query)
        assert code == 2, (query, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert not Path("/tmp/nudge-leak.csv").exists()
    code, _, err = nudge("sql", "--url", client.url, "selec event from events")
    assert code == 2 and err.startswith("error: ") and "syntax" in err.lower()


def _week_of_traffic(run: str, start: datetime, users: int = 8) -> list[dict[str, Any]]:
    """Sessions of browsing, carts, orders and pages over 7 days, on whole seconds; each
    event carries its session's end (`sent`), when an SDK flushing per session sends it."""
    rnd = random.Random(5)
    out: list[dict[str, Any]] = []
    for u in range(users):
        user = f"bt-{run}-{u}"
        at = start + timedelta(minutes=rnd.randint(0, 120))
        out.append(
            {
                "type": "identify",
                "userId": user,
                "traits": {"email": f"{user}@example.com"},
                "timestamp": at,
            }
        )
        session = out[-1:]
        while at < start + timedelta(days=6):
            first = len(out)
            for _ in range(rnd.randint(2, 7)):
                at += timedelta(seconds=rnd.choice([20, 45, 90, 200, 400]))
                pid = f"p{rnd.randint(1, 3)}"
                roll = rnd.random()
                if roll < 0.5:
                    ev = {
                        "type": "track",
                        "event": "Product Viewed",
                        "properties": {"product_id": pid},
                    }
                elif roll < 0.65:
                    ev = {
                        "type": "track",
                        "event": "Product Added",
                        "properties": {"product_id": pid},
                    }
                elif roll < 0.72:
                    ev = {
                        "type": "track",
                        "event": "Order Completed",
                        "properties": {"products": [{"product_id": pid}], "revenue": 20},
                    }
                else:
                    ev = {"type": "page", "name": "Home"}
                out.append({**ev, "userId": user, "timestamp": at})
            for ev in [*session, *out[first:]]:
                ev["sent"] = at
            session = []
            at += timedelta(hours=rnd.choice([2, 9, 26, 50, 60]))
    for i, ev in enumerate(out):
        ev["messageId"] = f"{run}-bt-{i}"
    return sorted(out, key=lambda e: (e["timestamp"], e["messageId"]))


def test_backtest_of_the_archive_agrees_with_what_fired_live(
    client: Client, triggers_dir: Path
) -> None:
    # given: a week of traffic, each session sent as it ends (the clock moved there)
    run = uuid.uuid4().hex[:8]
    now = datetime.fromisoformat(
        client.s.get(f"{client.url}/_local/clock").json()["now"].replace("Z", "+00:00")
    )
    start = (now + timedelta(minutes=5)).replace(microsecond=0)
    events = _week_of_traffic(run, start)
    moments: dict[datetime, list[dict[str, Any]]] = {}
    for ev in events:
        moments.setdefault(ev.pop("sent"), []).append(ev)
    for at, batch in sorted(moments.items()):
        client.clock(set=at.isoformat())
        items = [{**e, "timestamp": e["timestamp"].isoformat()} for e in batch]
        r = client.send("batch", {"batch": items})
        assert r.status_code == 200, r.text
    client.clock(advance_seconds=3 * 86400)  # every pending deadline passes
    users = sorted({e["userId"] for e in events})
    live = Counter()
    for user in users:
        for trigger_id, state in client.user(user)["triggers"].items():
            if state["fired"]:
                live[(user, trigger_id)] = state["fired"]
    # when
    code, out, err = nudge(
        "triggers",
        "backtest",
        "--archive",
        "--url",
        client.url,
        "--json",
        "--triggers",
        str(triggers_dir),
    )
    assert code == 0, err
    report = json.loads(out)
    replayed = Counter(
        (f["user_id"], f["trigger_id"]) for f in report["fires"] if f["user_id"] in users
    )
    # then: the same episodes per user and trigger, every default trigger among them
    assert replayed == live
    fired = {t for _, t in live}
    assert {"cart_abandonment", "inactivity_winback", "product_dwell_upsell"} <= fired, fired
    assert report["events"] >= len(events)
