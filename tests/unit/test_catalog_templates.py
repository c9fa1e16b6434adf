"""The catalog in messages: the deliver use case's template variables describe
recommendations and cart items with the catalog's names, prices and links, and the
shipped templates show them."""

from __future__ import annotations

from pathlib import Path

from nudge.domain.catalog import Catalog, sightings
from nudge.domain.delivery import variables
from nudge.domain.events import Event
from nudge.domain.messages import ActionMessage
from nudge.domain.profile import Profile
from nudge.domain.templates import TemplateStore

from tests.fakes import NOW

ROOT = Path(__file__).resolve().parents[2]


def browsed() -> Profile:
    p = Profile("u1", traits={"email": "ada@example.com", "first_name": "Ada"})
    for i, pid in enumerate(("p1", "p2")):
        p.apply(
            [
                Event.model_validate(
                    {
                        "type": "track",
                        "message_id": f"m{i}",
                        "user_id": "u1",
                        "event": "Product Viewed",
                        "properties": {"product_id": pid},
                        "timestamp": NOW,
                        "received_at": NOW,
                    }
                )
            ]
        )
    return p


CATALOG = Catalog().merge(
    sightings(
        "Product Viewed",
        {"product_id": "p1", "name": "Trail boot", "price": 120, "url": "https://shop.example/p1"},
        1,
        "a",
    )
)
ACTION = ActionMessage.model_validate(
    {
        "user_id": "u1",
        "action_id": "a1",
        "trigger_id": "inactivity_winback",
        "action": {"channel": "email"},
    }
)


def test_recommendations_carry_the_catalogs_description() -> None:
    v = variables(
        browsed(), ACTION, "email", unsubscribe_url="u", app_url="", catalog=CATALOG.items
    )
    by_id = {r["item_id"]: r for r in v["recommendations"]}
    assert by_id["p1"]["name"] == "Trail boot" and by_id["p1"]["price"] == 120
    assert "name" not in by_id["p2"]  # not in the catalog: as before
    plain = variables(browsed(), ACTION, "email", unsubscribe_url="u", app_url="")
    assert all("name" not in r for r in plain["recommendations"])


def test_the_winback_email_lists_the_described_recommendations() -> None:
    store = TemplateStore(ROOT / "templates")
    v = variables(browsed(), ACTION, "email", unsubscribe_url="https://x/u", app_url="",
                  catalog=CATALOG.items)  # fmt: skip
    rendered = store.render("inactivity_winback", "email", v)
    assert rendered.text is not None and "Trail boot" in rendered.text
    without = store.render(
        "inactivity_winback", "email",
        variables(browsed(), ACTION, "email", unsubscribe_url="https://x/u", app_url=""),
    )  # fmt: skip
    assert without.text is not None and "Trail boot" not in without.text
