"""The templates' `recommendations` (nudge.domain.delivery.recommendations and variables):
the user's own recent items without a model, the item model's list with one."""

from __future__ import annotations

from typing import get_args

import pytest
from nudge.domain.delivery import recommendations, variables
from nudge.domain.messages import ActionMessage, ExperimentArm
from nudge.domain.profile import Profile
from nudge.domain.recommend import STRATEGIES, ItemModel, recommend
from nudge.domain.triggers.model import RecommendationStrategy
from nudge.learn.items import fit_item_model

from tests.fakes import a_profile, an_action
from tests.recs_support import categories, interactions

ROWS = interactions(users=200)
MODEL = fit_item_model(ROWS, now_ms=max(t for *_, t in ROWS), categories=categories())


def shopper() -> Profile:
    """Viewed three shoes and a bag, has shoes-05 in the cart, bought shoes-01."""
    profile = a_profile("u1", cart=({"product_id": "shoes-05", "name": "Runner"},))
    profile.recent_items = [
        ["shoes-05", "a", 5000],
        ["shoes-03", "v", 4000],
        ["bags-02", "v", 3000],
        ["shoes-01", "v", 2000],
    ]
    profile.bought = {"shoes-01": 2500}
    return profile


def test_without_a_model_the_recently_viewed_items_not_in_the_cart_nor_bought() -> None:
    recs = recommendations(shopper())

    assert [(r["item_id"], r["event"]) for r in recs] == [
        ("shoes-03", "Product Viewed"),
        ("bags-02", "Product Viewed"),
    ]


def test_with_a_model_its_list_without_the_cart_the_bought_and_the_excluded() -> None:
    recs = recommendations(shopper(), exclude=frozenset({"shoes-10"}), model=MODEL)

    assert len(recs) == 4
    got = {r["item_id"] for r in recs}
    assert not got & {"shoes-05", "shoes-01", "shoes-10", "shoes-03", "bags-02"}
    assert recs[0]["reason"] == "similar" and recs[0]["category"] in {"shoes", "bags"}


def test_the_catalog_names_the_models_items_for_the_templates() -> None:
    catalog = {
        item: {"name": item.upper(), "url": f"https://shop.example/{item}"} for item in MODEL.items
    }
    action = an_action(product={"product_id": "shoes-10"})

    v = variables(
        shopper(),
        action,
        "email",
        unsubscribe_url="https://u",
        app_url="",
        model=MODEL,
        catalog=catalog,
    )

    picks = v["recommendations"]
    assert picks and all(p["name"] == p["item_id"].upper() and p["url"] for p in picks)
    assert "shoes-10" not in {p["item_id"] for p in picks}
    plain = variables(shopper(), action, "email", unsubscribe_url="https://u", app_url="")
    assert [p["item_id"] for p in plain["recommendations"]] == ["shoes-03", "bags-02"]


def test_the_strategies_a_variant_may_name_are_the_recommenders() -> None:
    assert get_args(RecommendationStrategy) == STRATEGIES


def test_a_variant_naming_the_popular_strategy_gets_the_models_popular_items() -> None:
    # given: the action of a variant that changes the recommendation strategy
    personal_action = an_action(product={"product_id": "shoes-10"})
    arm = ExperimentArm(id="recs_test", variant="popular", strategy="popular")
    popular_action = an_action(product={"product_id": "shoes-10"}, experiment=arm)

    def picks(action: ActionMessage, model: ItemModel | None) -> list[str]:
        v = variables(shopper(), action, "email", unsubscribe_url="u", app_url="", model=model)
        return [p["item_id"] for p in v["recommendations"]]

    # then: with a model, the popular list (what recommend gives a user with no history,
    # the cart, the bought and the product excluded), which is not the personal one
    expected = [
        r["item_id"]
        for r in recommend(
            MODEL,
            [],
            exclude={"shoes-05", "shoes-01", "shoes-10"},
            limit=4,
            exploration=0.0,
            diversity=False,
        )
    ]
    assert picks(popular_action, MODEL) == expected
    assert picks(personal_action, MODEL) != expected
    # and without a model nothing is known to be popular; personal falls back on views
    assert picks(popular_action, None) == []
    assert picks(personal_action, None) == ["shoes-03", "bags-02"]
    with pytest.raises(ValueError, match="unknown recommendation strategy"):
        recommendations(shopper(), strategy="newest")
