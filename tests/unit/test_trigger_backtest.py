"""The backtest runs the same engine as the live path, and `nudge triggers ...` wiring."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nudge.cli import main
from nudge.cli_triggers import read_events
from nudge.domain.clock import to_ms
from nudge.domain.events import Event, normalize_event
from nudge.domain.profile import Profile
from nudge.domain.triggers import Engine, TriggerSet, load_triggers, parse_text
from nudge.domain.triggers.backtest import backtest
from nudge.domain.wakeups import bucket_of

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def triggers() -> TriggerSet:
    return load_triggers(ROOT / "triggers")


def synthetic(users: int = 40, seed: int = 7) -> list[dict[str, Any]]:
    """Segment-format events of users of mixed behaviour over two weeks."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    n = 0

    def add(user: str, at: datetime, **fields: Any) -> None:
        nonlocal n
        n += 1
        out.append(
            {
                "userId": user,
                "messageId": f"m{n}",
                "timestamp": at.isoformat().replace("+00:00", "Z"),
                **fields,
            }
        )

    for u in range(users):
        user = f"user{u}"
        at = T + timedelta(minutes=rnd.randint(0, 600))
        if rnd.random() < 0.7:
            add(user, at, type="identify", traits={"email": f"{user}@example.com"})
        for _session in range(rnd.randint(1, 5)):
            for _step in range(rnd.randint(1, 8)):
                at += timedelta(seconds=rnd.randint(10, 500))
                pid = f"p{rnd.randint(1, 6)}"
                roll = rnd.random()
                if roll < 0.45:
                    add(
                        user,
                        at,
                        type="track",
                        event="Product Viewed",
                        properties={"product_id": pid, "name": f"Item {pid}"},
                    )
                elif roll < 0.6:
                    add(
                        user,
                        at,
                        type="track",
                        event="Product Added",
                        properties={"product_id": pid, "price": 10},
                    )
                elif roll < 0.68:
                    add(
                        user,
                        at,
                        type="track",
                        event="Order Completed",
                        properties={"products": [{"product_id": pid}], "revenue": 10},
                    )
                elif roll < 0.72:
                    add(
                        user,
                        at,
                        type="track",
                        event="Product Removed",
                        properties={"product_id": pid},
                    )
                else:
                    add(user, at, type="page", name="Home")
            at += timedelta(hours=rnd.choice([1, 5, 30, 60, 90]))
    return out


def normalized(raws: list[dict[str, Any]]) -> list[Event]:
    return [
        normalize_event(
            r, kind=None, received_at=datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        )
        for r in raws
    ]


def engine_driven(
    events: list[Event], triggers: TriggerSet, horizon: timedelta, *, schedules_first: bool = False
) -> list[tuple[Any, ...]]:
    """The live path written out by hand: each event processed when it is received (its
    timestamp); each timer filed in the wake-up index under its minute bucket (the due
    time rounded up, never a bucket about to fire), a later arm of the same (user,
    trigger, key) replacing it in that bucket only; each bucket firing at its minute
    before later events (at the same instant too with `schedules_first`), its timers
    re-checked against the state then."""
    engine = Engine(triggers)
    profiles: dict[str, Profile] = {}
    index: dict[datetime, dict[tuple[str, str, str | None], Any]] = {}
    fires: list[tuple[Any, ...]] = []

    def apply(user: str, decisions: Any, now: datetime) -> None:
        for timer in decisions.arm:
            index.setdefault(bucket_of(timer.due, now), {})[(user, timer.trigger_id, timer.key)] = (
                timer
            )
        fires.extend(
            (user, f.trigger_id, f.key, f.episode, f.at, f.action_id) for f in decisions.fires
        )

    def run_until(limit: datetime, inclusive: bool) -> None:
        while index and ((first := min(index)) < limit or (inclusive and first == limit)):
            for (user, trigger_id, key), _ in sorted(
                index.pop(first).items(), key=lambda kv: str(kv[0])
            ):
                apply(user, engine.on_timer(profiles[user], trigger_id, key, first), first)

    for ev in sorted(events, key=lambda e: (to_ms(e.timestamp), e.fingerprint)):
        run_until(ev.timestamp, inclusive=schedules_first)
        profile = profiles.setdefault(ev.profile_id, Profile(ev.profile_id))
        fresh = profile.apply([ev])
        if fresh:
            apply(ev.profile_id, engine.on_events(profile, fresh, ev.timestamp), ev.timestamp)
    last = max(e.timestamp for e in events)
    run_until(last + horizon + timedelta(minutes=2), inclusive=True)
    return sorted(fires, key=lambda f: (f[4], f[0], f[1]))


def records(report: Any) -> list[tuple[Any, ...]]:
    return [
        (r.user_id, r.fire.trigger_id, r.fire.key, r.fire.episode, r.fire.at, r.fire.action_id)
        for r in report.fires
    ]


def test_backtest_equals_the_engine_driven_live_path(triggers: TriggerSet) -> None:
    events = normalized(synthetic())
    report = backtest(events, triggers)
    expected = engine_driven(events, triggers, timedelta(days=7))
    assert records(report) == expected
    assert {f[1] for f in expected} == {t.id for t in triggers}  # every trigger is exercised


def test_backtest_does_not_depend_on_the_input_order(triggers: TriggerSet) -> None:
    events = normalized(synthetic(seed=11))
    shuffled = list(events)
    random.Random(3).shuffle(shuffled)
    assert records(backtest(shuffled, triggers)) == records(backtest(events, triggers))


def test_the_report_summarizes_the_fires(triggers: TriggerSet) -> None:
    report = backtest(normalized(synthetic()), triggers)
    for t in report.triggers:
        mine = [r for r in report.fires if r.fire.trigger_id == t.trigger_id]
        assert t.fires == len(mine) == sum(n * users for n, users in t.fires_per_user.items())
        assert t.users_fired == len({r.user_id for r in mine}) == sum(t.fires_per_user.values())
        assert t.first_fire == min(r.fire.at for r in mine) and t.last_fire == max(
            r.fire.at for r in mine
        )
        assert t.max_fires_per_user == max(t.fires_per_user)
        assert 0 <= t.would_send <= t.fires
    data = json.loads(json.dumps(report.to_dict()))
    assert data["events"] == len(synthetic()) and data["users"] == 40
    assert {t["trigger_id"] for t in data["triggers"]} == set(triggers.ids)
    # the minutes whose wake-up sweep had timers to check (no Scheduler call per minute)
    assert 0 < data["wake_up_minutes"] <= sum(t["fires"] for t in data["triggers"]) + data["events"]
    assert "scheduler_calls" not in data
    assert "cart_abandonment" in report.table()


def test_cooldown_suppression_counts_fires_within_the_cooldown(triggers: TriggerSet) -> None:
    raws = []
    for i, hours in enumerate([0, 2, 4, 30]):  # three carts abandoned within 24 h, one a day later
        at = (T + timedelta(hours=hours)).isoformat()
        raws.append(
            {
                "type": "track",
                "userId": "u1",
                "messageId": f"a{i}",
                "timestamp": at,
                "event": "Product Added",
                "properties": {"product_id": f"p{i}"},
            }
        )
    report = backtest(normalized(raws), triggers, "cart_abandonment")
    cart = report.trigger("cart_abandonment")
    assert [t.trigger_id for t in report.triggers] == ["cart_abandonment"]
    assert cart.fires == 4 and cart.users_fired == 1 and cart.fires_per_user == {4: 1}
    assert cart.cooldown_suppressed == 2 and cart.would_send == 2


def test_caps_count_across_triggers() -> None:
    triggers = parse_text(
        """
triggers:
  - id: a
    when: {event: A}
    action: {channel: email, template: t}
    cooldown: 0s
  - id: b
    when: {event: B}
    action: {channel: push, template: t}
    cooldown: 0s
"""
    )
    raws = [
        {
            "type": "track",
            "userId": "u1",
            "messageId": f"x{i}",
            "event": name,
            "timestamp": (T + timedelta(minutes=i)).isoformat(),
        }
        for i, name in enumerate(["A", "A", "B", "B", "B"])
    ]
    report = backtest(normalized(raws), triggers)
    assert (report.trigger("a").cap_suppressed, report.trigger("b").cap_suppressed) == (1, 1)


# ---- the command line ---------------------------------------------------------------------------------
def run(argv: list[str]) -> int:
    return main(argv)


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["triggers", "validate", str(ROOT / "triggers")]) == 0
    assert capsys.readouterr().out.startswith("ok: 4 triggers in 1 file")


def test_validate_reports_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "triggers").mkdir()
    bad = tmp_path / "triggers" / "x.yaml"
    bad.write_text(
        "triggers:\n  - id: x\n    when: {event: A}\n    action: {channel: email, template: nope}\n    cooldown: 1y\n"
    )
    assert run(["triggers", "validate", str(tmp_path / "triggers")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{bad}:4: unknown template 'nope': no {(tmp_path / 'templates').resolve()}/nope.yaml",
        f"{bad}:5: bad duration '1y': write a number and a unit, e.g. 30s, 15m, 48h or 7d",
    ]


def _shipped_with(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The shipped triggers and templates copied to tmp_path, `old` replaced by `new` in
    triggers/default.yaml; (that file, the line of the change)."""
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "triggers").mkdir()
    text = (ROOT / "triggers" / "default.yaml").read_text()
    assert text.count(old) == 1
    file = tmp_path / "triggers" / "default.yaml"
    file.write_text(text.replace(old, new))
    return file, text[: text.index(old)].count("\n") + 1


def test_validate_checks_each_trigger_against_its_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given product_dwell_upsell sent by email, its template having only an in-app section
    file, line = _shipped_with(
        tmp_path,
        "action: {channel: inapp, template: product_dwell_upsell}",
        "action: {channel: email, template: product_dwell_upsell}",
    )
    # when
    code = run(["triggers", "validate", str(tmp_path / "triggers")])
    # then
    captured = capsys.readouterr()
    template = (tmp_path / "templates").resolve() / "product_dwell_upsell.yaml"
    assert code == 1
    assert captured.out.splitlines() == [
        f"{file}:{line}: channel: template 'product_dwell_upsell' has no email section "
        f"({template} has: inapp)"
    ]
    assert captured.err == "1 error\n"


def test_validate_takes_templates_from_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given triggers whose templates are not beside them, one template lacking the fallback
    file, line = _shipped_with(
        tmp_path / "a",
        "action: {channel: inapp, template: product_dwell_upsell}",
        "action: {channel: inapp, template: product_dwell_upsell, fallback: push}",
    )
    (tmp_path / "a" / "templates").rename(tmp_path / "b")
    argv = ["triggers", "validate", str(tmp_path / "a" / "triggers")]
    # when / then: beside the triggers there is nothing, so every template is unknown
    assert run(argv) == 1
    assert capsys.readouterr().out.count("unknown template") == 4
    # when / then: --templates finds them, and the trigger is checked against its template
    assert run([*argv, "--templates", str(tmp_path / "b")]) == 1
    template = tmp_path / "b" / "product_dwell_upsell.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f"{file}:{line}: fallback: template 'product_dwell_upsell' has no push section "
        f"({template} has: inapp)"
    ]


def test_backtest_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    lines = [json.dumps({**r, "sentAt": r["timestamp"]}) for r in synthetic(users=10)]
    events.write_text("\n".join([*lines, "not json", json.dumps({"userId": "x"})]) + "\n")
    assert (
        run(
            [
                "triggers",
                "backtest",
                "--events",
                str(events),
                "--json",
                "--triggers",
                str(ROOT / "triggers"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["events"] == len(lines) and data["triggers"] and "fires" in data
    assert "skipped" in captured.err
    assert (
        run(
            [
                "triggers",
                "backtest",
                "--events",
                str(events),
                "--trigger",
                "repeat_product_view",
                "--triggers",
                str(ROOT / "triggers"),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "repeat_product_view" in table and "cart_abandonment" not in table
    assert (
        run(
            [
                "triggers",
                "backtest",
                "--events",
                str(events),
                "--trigger",
                "nope",
                "--triggers",
                str(ROOT / "triggers"),
            ]
        )
        == 2
    )


def test_read_events_keeps_the_event_time() -> None:
    line = json.dumps(
        {
            "type": "track",
            "userId": "u",
            "event": "A",
            "timestamp": "2026-01-02T03:04:05Z",
            "sentAt": "2026-01-09T00:00:00Z",
        }
    )
    [event] = list(read_events([line]))  # type: ignore[arg-type]
    assert event.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and not event.historical


def test_schedules_due_at_an_event_instant_fire_after_it_whichever_runs_first(
    triggers: TriggerSet,
) -> None:
    # given whole-minute times, so that deadlines (15 min, 5 min) fall on event instants,
    # an order exactly 15 min after an add and a page left exactly 5 min after entering
    raws = [
        {
            "type": "track",
            "userId": "a",
            "event": "Product Added",
            "properties": {"product_id": "p1"},
        },
        {
            "type": "track",
            "userId": "a",
            "event": "Order Completed",
            "properties": {"products": [{"product_id": "p1"}]},
        },
        {
            "type": "track",
            "userId": "b",
            "event": "Product Viewed",
            "properties": {"product_id": "p1"},
        },
        {"type": "page", "userId": "b", "name": "Home"},
    ]
    offsets = [0, 15, 0, 5]
    for i, (raw, minutes) in enumerate(zip(raws, offsets, strict=True)):
        raw.update(messageId=f"e{i}", timestamp=(T + timedelta(minutes=minutes)).isoformat())
    events = normalized(raws)
    # when local mode fires a schedule due at an event's instant before the event (its clock
    # moves to the event's time first), and the backtest processes the event first
    live = engine_driven(events, triggers, timedelta(days=7), schedules_first=True)
    offline = records(backtest(events, triggers))
    # then both agree: within 15 minutes means up to and including 15:00, over 5 minutes is over
    assert live == offline
    assert not [f for f in offline if f[1] in ("cart_abandonment", "product_dwell_upsell")]


def test_whole_minute_histories_agree_with_a_live_path_that_fires_schedules_first(
    triggers: TriggerSet,
) -> None:
    rnd = random.Random(3)
    raws = []
    t = T
    for i in range(300):
        t += timedelta(minutes=rnd.choice([1, 2, 3, 5, 7, 15, 20, 60, 600]))
        user = f"u{rnd.randrange(6)}"
        name = rnd.choice(
            ["Product Viewed", "Product Viewed", "Product Added", "Order Completed", "Page Viewed"]
        )
        props: dict[str, Any] = {"product_id": f"p{rnd.randrange(3)}"}
        if name == "Order Completed":
            props = {"products": [{"product_id": f"p{rnd.randrange(3)}"}]}
        if i % 17 == 0:
            raws.append(
                {
                    "type": "identify",
                    "userId": user,
                    "traits": {"email": f"{user}@x.io"},
                    "messageId": f"id{i}",
                    "timestamp": t.isoformat(),
                }
            )
        raws.append(
            {
                "type": "track",
                "userId": user,
                "event": name,
                "properties": props,
                "messageId": f"e{i}",
                "timestamp": t.isoformat(),
            }
        )
    events = normalized(raws)
    live = engine_driven(events, triggers, timedelta(days=7), schedules_first=True)
    assert live == records(backtest(events, triggers))
    assert len({f[1] for f in live}) >= 3
