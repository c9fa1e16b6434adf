"""The acceptance of experiments through local mode over HTTP (docs/measurement.md): 400
users abandon carts; each then orders with a chance set by what the outbox shows they
received (a reminder lifts it), drawn from a seeded RNG; the report counts each variant's
exposures and conversions within the attribution window exactly as this test's own
bookkeeping does, and its p-values are scipy's on its counts. Once for the shipped
two-variant `cart_abandonment_holdout`, once for a three-variant fixture experiment whose
reminders change the channel, the template and the recommendations' strategy
(tests/e2e/fixtures/experiment_triggers.yaml).

Other tests share this local mode (and the shipped experiment): the shipped experiment's
counts are compared as the change over the test, the fixture's as they are. User ids are
fixed (a prefix and a number), so the variants the hash draws, and with the seed the
orders, are the same in every run."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from nudge.domain.triggers import load_triggers
from nudge.domain.triggers.experiments import draw
from nudge.domain.triggers.model import Experiment
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from tests.e2e.conftest import Client
from tests.e2e.test_delivery_e2e import next_utc, now_of

pytestmark = pytest.mark.e2e

USERS = 400
SEED = 20261210
BATCH = 200  # events per /v1/batch request (well under its 500 KB)
CART_SUBJECT = "You left Tent in your cart"  # templates/cart_abandonment.yaml
WINBACK_SUBJECT = "We miss you"  # templates/inactivity_winback.yaml, no name, no segment
# the chance of an order within the window, by what the user received from the trigger
P_ORDER = {CART_SUBJECT: 0.35, WINBACK_SUBJECT: 0.25, None: 0.10}
P_AGAIN = 0.3  # a buyer orders a second time, later in the window (one conversion still)
P_LATE = 0.2  # one who did not order in the window orders after it (no conversion)


def _experiment(trigger_id: str, triggers_dir: Any) -> Experiment:
    trigger = load_triggers(triggers_dir).get(trigger_id)
    assert trigger is not None and trigger.experiment is not None
    return trigger.experiment


def _ids(prefix: str, keep: Callable[[str], bool]) -> list[str]:
    """USERS fixed ids `prefix-N` that `keep` accepts."""
    out: list[str] = []
    n = 0
    while len(out) < USERS:
        user = f"{prefix}-{n:05d}"
        n += 1
        if keep(user):
            out.append(user)
    return out


def _batch(client: Client, items: list[dict[str, Any]]) -> None:
    for i in range(0, len(items), BATCH):
        r = client.send("batch", {"batch": items[i : i + BATCH]})
        assert r.status_code == 200, r.text


def _daytime(client: Client) -> None:
    """An hour with no quiet hours for the next hour: the clock as it is if so (a move
    by days costs a training run and win-back emails), else the next day at 14:00 UTC."""
    if not 9 <= now_of(client).hour < 19:
        next_utc(client, 14)


def _abandon(client: Client, users: Iterable[str], **traits: str) -> None:
    """Each user, with an address, puts a tent in the cart at a daytime hour."""
    _daytime(client)
    items: list[dict[str, Any]] = []
    for user in users:
        items.append(
            {
                "type": "identify",
                "userId": user,
                "traits": {"email": f"{user}@example.com", **traits},
            }
        )
        items.append(
            {
                "type": "track",
                "userId": user,
                "event": "Product Added",
                "properties": {"product_id": "sku-7", "name": "Tent", "price": 99},
            }
        )
    _batch(client, items)


def _orders(client: Client, users: Iterable[str], tag: str) -> None:
    _batch(
        client,
        [
            {
                "type": "track",
                "userId": user,
                "event": "Order Completed",
                "properties": {"order_id": f"{tag}-{user}", "revenue": 99},
            }
            for user in users
        ],
    )


def _received(client: Client, users: list[str], trigger_id: str) -> dict[str, str | None]:
    """The subject of the email each user got from the trigger, None for no email; the
    trigger sent nothing else (no second email, nothing by SMS or push)."""
    wanted = set(users)
    got: dict[str, list[str]] = {user: [] for user in users}
    for m in client.outbox():
        if m["user_id"] in wanted and m["trigger"] == trigger_id:
            assert m["channel"] == "email", m
            got[m["user_id"]].append(m["subject"])
    assert all(len(subjects) <= 1 for subjects in got.values()), got
    return {user: (subjects[0] if subjects else None) for user, subjects in got.items()}


@dataclass
class Run:
    """The test's own bookkeeping: what each user received, who converted."""

    received: dict[str, str | None]
    converted: set[str] = field(default_factory=set)
    late: set[str] = field(default_factory=set)


def _simulate(
    client: Client, users: list[str], trigger_id: str, *, window_s: int | None = None
) -> Run:
    """Past the cart's 15 minutes, each user orders (or not) by what they received, some
    again 5 minutes later; with `window_s` (the goal's window) some others order only
    after it. The clock moves by minutes, not days: each hour of it trains the models
    and two days send a win-back email to every user the session has (the shipped
    72-hour window is passed in tests/e2e/test_experiments_e2e.py)."""
    client.clock(advance_seconds=16 * 60)
    run = Run(_received(client, users, trigger_id))
    rng = random.Random(SEED)
    again: list[str] = []
    for user in users:
        if rng.random() < P_ORDER[run.received[user]]:
            run.converted.add(user)
            if rng.random() < P_AGAIN:
                again.append(user)
        elif window_s is not None and rng.random() < P_LATE:
            run.late.add(user)
    _orders(client, sorted(run.converted), "first")
    client.clock(advance_seconds=5 * 60)
    _orders(client, again, "again")
    if window_s is not None:
        client.clock(advance_seconds=window_s)  # past the window of every exposure
        _orders(client, sorted(run.late), "late")
    client.settle()
    return run


def _counts(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {v["name"]: (v["users"], v["conversions"]) for v in report["variants"]}


def _report(client: Client, experiment_id: str) -> dict[str, Any]:
    r = client.admin_get(f"/v1/experiments/{experiment_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _booked(variant: dict[str, str], run: Run, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    return {
        name: (
            sum(1 for v in variant.values() if v == name),
            sum(1 for u in run.converted if variant[u] == name),
        )
        for name in names
    }


def _table(counts: Iterable[tuple[int, int]]) -> list[list[int]]:
    return [[c, n - c] for n, c in counts]


def _scipy_p(counts: Iterable[tuple[int, int]]) -> float:
    """Pearson's chi-square on the k x 2 table, no continuity correction (for two
    variants the square of the pooled two-proportion z: the same p-value)."""
    return float(stats.chi2_contingency(_table(counts), correction=False).pvalue)


def test_two_variants_the_reminder_lifts_orders_and_the_report_counts_them_exactly(
    client: Client, triggers_dir: Any
) -> None:
    exp = _experiment("cart_abandonment", triggers_dir)
    users = _ids("acc2", lambda user: True)
    variant = {user: draw(exp, user).name for user in users}
    before = _counts(_report(client, exp.id))

    # when 400 users abandon carts and order by what they received
    _abandon(client, users)
    run = _simulate(client, users, "cart_abandonment")

    # then the reminder variant got the cart email, the holdout nothing
    assert {u for u, subject in run.received.items() if subject == CART_SUBJECT} == {
        u for u in users if variant[u] == "reminder"
    }
    assert {u for u, subject in run.received.items() if subject is None} == {
        u for u in users if variant[u] == "holdout"
    }
    # and the reminder truly lifted orders (scipy on this test's own users)
    mine = _booked(variant, run, ("holdout", "reminder"))
    (n_h, c_h), (n_r, c_r) = mine["holdout"], mine["reminder"]
    assert n_h + n_r == USERS and n_h > 0 and run.converted
    assert c_r / n_r > c_h / n_h and _scipy_p([mine["holdout"], mine["reminder"]]) < 0.01
    # and the report's change over the test is exactly the bookkeeping
    report = _report(client, exp.id)
    after = _counts(report)
    for name in ("holdout", "reminder"):
        was = before.get(name, (0, 0))
        assert (after[name][0] - was[0], after[name][1] - was[1]) == mine[name], name
    # and its p-value is scipy's on its counts (holdout the control), statsmodels'
    # pooled two-proportion z-test's too
    reminder = next(v for v in report["variants"] if v["name"] == "reminder")
    assert report["metrics"]["control"] == "holdout"
    assert reminder["p_value"] == pytest.approx(
        _scipy_p([after["holdout"], after["reminder"]]), rel=1e-9, abs=1e-15
    )
    (n_hold, c_hold), (n_rem, c_rem) = after["holdout"], after["reminder"]
    _, z_p = proportions_ztest([c_rem, c_hold], [n_rem, n_hold])
    assert reminder["p_value"] == pytest.approx(z_p, rel=1e-9, abs=1e-15)
    assert reminder["lift"] == pytest.approx((c_rem / n_rem) / (c_hold / n_hold) - 1)
    low, high = stats.binomtest(after["reminder"][1], after["reminder"][0]).proportion_ci(
        method="wilson"
    )
    assert (reminder["ci_low"], reminder["ci_high"]) == pytest.approx((low, high), rel=1e-9)


def test_three_variants_both_reminders_lift_orders_and_the_report_counts_them_exactly(
    client: Client, triggers_dir: Any
) -> None:
    exp = _experiment("cart_reminder_trial", triggers_dir)
    shipped = _experiment("cart_abandonment", triggers_dir)
    # the trial's users are in the shipped experiment's holdout, so the shipped cart
    # email (which would take the day's one email) goes to none of them
    users = _ids("acc3", lambda user: draw(shipped, user).holdout)
    variant = {user: draw(exp, user).name for user in users}
    names = [v.name for v in exp.variants]
    assert all(n == 0 for n, _ in _counts(_report(client, exp.id)).values())  # only ours

    # when 400 users abandon carts and order by what they received
    _abandon(client, users, acceptance="three_variants")
    run = _simulate(client, users, "cart_reminder_trial", window_s=exp.goal.within)

    # then each variant got its own message: the in-app action changed to email, and to
    # another template for the second reminder (its popular recommendations show only
    # once a model is trained: tests/unit/test_delivery_recommendations.py checks them)
    subjects = {"holdout": None, "cart_email": CART_SUBJECT, "winback_email": WINBACK_SUBJECT}
    assert run.received == {u: subjects[variant[u]] for u in users}
    # and both reminders truly lifted orders
    mine = _booked(variant, run, names)
    rates = {name: c / n for name, (n, c) in mine.items()}
    assert all(n > 0 for n, _ in mine.values()) and run.late
    assert rates["cart_email"] > rates["holdout"] and rates["winback_email"] > rates["holdout"]
    assert _scipy_p(mine.values()) < 0.01
    # and the report counts exactly the bookkeeping
    report = _report(client, exp.id)
    assert _counts(report) == mine
    # and its chi-square over the three variants is scipy's, as each variant's p-value
    # against the holdout
    chi = stats.chi2_contingency(_table(mine[name] for name in names), correction=False)
    overall = report["metrics"]["chi_square"]
    assert overall["df"] == 2 and overall["statistic"] == pytest.approx(chi.statistic, rel=1e-9)
    assert overall["p_value"] == pytest.approx(chi.pvalue, rel=1e-9, abs=1e-15)
    for row in report["variants"][1:]:
        p = _scipy_p([mine["holdout"], mine[row["name"]]])
        assert row["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-15), row["name"]
        assert row["lift"] == pytest.approx(rates[row["name"]] / rates["holdout"] - 1)
    total = sum(v.weight for v in exp.variants)
    expected_users = [USERS * v.weight / total for v in exp.variants]
    srm = stats.chisquare([mine[name][0] for name in names], expected_users)
    assert report["srm_p_value"] == pytest.approx(srm.pvalue, rel=1e-9)
