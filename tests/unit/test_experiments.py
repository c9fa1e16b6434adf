"""Experiments on triggers (docs/measurement.md): a deterministic, sticky assignment, the
variant riding on the action, holdouts logged `holdout`, exposures archived as Segment's
`Experiment Viewed`, definitions validated with their lines."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from nudge.domain.fatigue import Candidate, FatigueConfig, UserPrefs, decide, holdout_of
from nudge.domain.messages import ActionMessage, ExperimentArm
from nudge.domain.processing import EXPERIMENT_VIEWED, process_users
from nudge.domain.triggers import DefinitionError, load_triggers, parse_text, validate_path
from nudge.domain.triggers.backtest import MemoryProfileStore, Simulation
from nudge.domain.triggers.engine import Engine
from nudge.domain.triggers.experiments import draw
from nudge.domain.triggers.model import Experiment
from scipy import stats

from tests.fakes import MemoryArchive
from tests.unit.test_trigger_reproducers import M, T, ev

ROOT = Path(__file__).resolve().parents[2]

AB = """
triggers:
  - id: viewed
    when: {event: Product Viewed}
    action: {channel: inapp, template: product_dwell_upsell}
    cooldown: 0s
    experiment:
      id: viewed_test
      variants:
        - {name: holdout, weight: 10, holdout: true}
        - {name: email, weight: 45, channel: email, template: cart_abandonment}
        - {name: inapp, weight: 45}
      goal: {event: Order Completed, within: 72h}
"""


def _experiment(*weights: float) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "e1",
            "variants": [{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)],
            "goal": {"event": "Order Completed", "within": "3d"},
        }
    )


def test_assignment_is_stable_and_uniform_within_srm_tolerance() -> None:
    exp = _experiment(10, 45, 45)
    ids = [f"user-{i}" for i in range(100_000)]
    counts = Counter(draw(exp, u).name for u in ids)
    assert [draw(exp, u).name for u in ids[:100]] == [draw(exp, u).name for u in ids[:100]]
    observed = [counts[f"v{i}"] for i in range(3)]
    expected = [10_000, 45_000, 45_000]
    assert stats.chisquare(observed, expected).pvalue > 0.001  # no sample-ratio mismatch


def test_changing_the_weights_keeps_the_users_already_assigned() -> None:
    sim = Simulation(parse_text(AB))
    sim.deliver([ev("Product Viewed", T, product_id="p1")], T)
    first = sim.profiles["u1"].triggers["viewed"]["x"]
    heavier = AB.replace("weight: 10", "weight: 1000")
    sim.engine = Engine(parse_text(heavier))
    sim.deliver([ev("Product Viewed", T + M, product_id="p1")], T + M)
    variants = {r.fire.experiment["variant"] for r in sim.fires if r.fire.experiment}
    assert variants == {first}


def test_the_variant_rides_on_the_action_and_changes_channel_and_template() -> None:
    triggers = parse_text(AB)
    by_variant: dict[str, dict[str, object]] = {}
    for i in range(200):
        sim = Simulation(triggers)
        sim.deliver([ev("Product Viewed", T, user=f"u{i}", product_id="p1")], T)
        [record] = sim.fires
        exp = record.fire.experiment
        assert exp is not None and exp["id"] == "viewed_test"
        by_variant[exp["variant"]] = record.fire.action
        queued = ActionMessage.of(f"u{i}", record.fire, enqueued_at=T)
        assert queued.experiment == ExperimentArm.model_validate(exp)
        assert (queued.variant, queued.action.channel) == (
            exp["variant"],
            record.fire.action["channel"],
        )
    assert by_variant["email"]["channel"] == "email"
    assert by_variant["email"]["template"] == "cart_abandonment"
    assert by_variant["inapp"]["channel"] == "inapp"
    assert by_variant["holdout"]["channel"] == "inapp"


def test_a_variant_may_change_the_recommendation_strategy() -> None:
    # given: a third arm that shows popular items instead of the personal ones
    text = AB.replace(
        "- {name: inapp, weight: 45}",
        "- {name: inapp, weight: 45}\n        - {name: popular, weight: 45, recommendations: popular}",
    )
    strategies: dict[str, object] = {}
    for i in range(200):
        sim = Simulation(parse_text(text))
        sim.deliver([ev("Product Viewed", T, user=f"u{i}", product_id="p1")], T)
        [record] = sim.fires
        message = ActionMessage.of(f"u{i}", record.fire, enqueued_at=T)
        assert message.experiment is not None
        strategies[message.experiment.variant] = message.experiment.strategy
    # then: the action's experiment arm carries it (the delivery draws the template's
    # recommendations by it, tests/unit/test_delivery_recommendations.py); the other
    # arms leave it unset
    assert strategies == {"holdout": None, "email": None, "inapp": None, "popular": "popular"}
    with pytest.raises(DefinitionError, match="recommendations"):
        parse_text(text.replace("recommendations: popular", "recommendations: newest"))


def test_a_holdout_variant_is_logged_holdout_by_the_fatigue_guard() -> None:
    experiment = {"id": "viewed_test", "variant": "holdout", "holdout": True}
    assert holdout_of(experiment) == "viewed_test"
    assert holdout_of({**experiment, "holdout": False}) is None
    candidate = Candidate(
        action_id="a",
        user_id="u1",
        trigger_id="viewed",
        channel="inapp",
        priority=0,
        cooldown_seconds=0,
        fired_at=T,
        holdout="viewed_test",
    )
    verdict = decide(candidate, history=[], prefs=UserPrefs(), now=T, config=FatigueConfig())
    assert (verdict.status, verdict.reason) == ("holdout", "experiment:viewed_test")


def test_every_message_is_an_exposure_archived_once_for_holdout_users_too() -> None:
    triggers = parse_text(AB)
    store, archive = MemoryProfileStore(), MemoryArchive()

    class Effects:
        def apply(self, user_id: str, decisions: object) -> None:
            pass

    sim = Effects()
    events = {f"u{i}": [ev("Product Viewed", T, user=f"u{i}", product_id="p1")] for i in range(50)}
    process_users(store, events, now=T, engine=Engine(triggers), effects=sim, archive=archive)
    process_users(store, events, now=T, engine=Engine(triggers), effects=sim, archive=archive)
    rows = [r for r in archive.events() if r["event"] == EXPERIMENT_VIEWED]
    assert len({r["message_id"] for r in rows}) == 50  # a redelivery repeats none
    props = [
        json.loads(r["properties"]) if isinstance(r["properties"], str) else r["properties"]
        for r in rows
    ]
    assert {p["experiment_id"] for p in props} == {"viewed_test"}
    assert "holdout" in {p["variation_id"] for p in props}
    assert {p["variation_id"] for p in props} <= {"holdout", "email", "inapp"}


def test_the_shipped_experiment_holds_out_a_tenth_of_cart_reminders() -> None:
    triggers = load_triggers(ROOT / "triggers")
    cart = triggers.get("cart_abandonment")
    assert cart is not None and cart.experiment is not None
    exp = cart.experiment
    assert exp.id == "cart_abandonment_holdout"
    assert [(v.name, v.weight, v.holdout) for v in exp.variants] == [
        ("holdout", 10, True),
        ("reminder", 90, False),
    ]
    assert (exp.goal.event, exp.goal.within) == ("Order Completed", 72 * 3600)


def test_a_variants_unknown_template_and_duplicate_names_are_reported_with_lines(
    tmp_path: Path,
) -> None:
    (tmp_path / "triggers").mkdir()
    (tmp_path / "templates").symlink_to(ROOT / "templates")
    bad = AB.replace("template: cart_abandonment", "template: nope")
    (tmp_path / "triggers" / "x.yaml").write_text(bad)
    issues = validate_path(tmp_path / "triggers")
    assert [(i.line, "unknown template 'nope'" in i.message) for i in issues] == [(11, True)]
    with pytest.raises(DefinitionError, match="distinct"):
        parse_text(AB.replace("name: inapp", "name: email"))


def test_backtest_counts_holdout_episodes_as_held_out() -> None:
    from nudge.domain.triggers.backtest import backtest

    events = [
        ev("Product Viewed", T + timedelta(seconds=i), user=f"u{i}", product_id="p1")
        for i in range(200)
    ]
    report = backtest(events, parse_text(AB)).to_dict()
    [row] = report["triggers"]
    assert row["fires"] == 200
    assert 0 < row["would_send"] < 200
