"""The condition kinds of trigger engine v2 through local mode over HTTP: each fires when
its words say and does not otherwise (definitions in tests/e2e/fixtures/v2_triggers.yaml,
loaded beside the defaults)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


def now_of(client: Client) -> datetime:
    return datetime.fromisoformat(client.clock(advance_seconds=0)["now"].replace("Z", "+00:00"))


def at_next(client: Client, weekday: int, hour: int) -> datetime:
    """Moves the local clock to the next `weekday` (0 = Monday) at `hour`:00 UTC."""
    now = now_of(client)
    day = now + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    target = day.replace(hour=hour, minute=0, second=0, microsecond=0)
    client.clock(set=target.isoformat())
    return target


def inbox(client: Client, uid: str, trigger: str) -> list[dict[str, Any]]:
    r = client.admin_get(f"/v1/users/{uid}/messages")
    assert r.status_code == 200, r.text
    return [m for m in r.json()["messages"] if m["trigger"] == trigger]


def identify(client: Client, uid: str, **traits: Any) -> None:
    r = client.send("identify", {"userId": uid, "traits": traits})
    assert r.status_code == 200, r.text


def advance(client: Client, **delta: float) -> None:
    client.clock(advance_seconds=timedelta(**delta).total_seconds())


# ---- not over a behavior: a history filter ------------------------------------------------------
@pytest.mark.parametrize(("coupon", "expected"), [(False, 1), (True, 0)])
def test_a_history_filter_fires_only_without_the_recent_event(
    client: Client, uid: str, coupon: bool, expected: int
) -> None:
    at_next(client, 1, 10)
    if coupon:
        client.track(uid, "Coupon Applied", {"code": "SPRING"})
        advance(client, minutes=5)
    client.track(uid, "Quote Requested")
    client.settle()
    assert len(inbox(client, uid, "quote_without_coupon")) == expected


# ---- absence with the same event as after and without ---------------------------------------------
@pytest.mark.parametrize(("renew_again_after", "expected"), [(None, 1), (10, 1)])
def test_no_renewal_for_30_days_since_the_last_fires_30_days_after_the_last(
    client: Client, uid: str, renew_again_after: int | None, expected: int
) -> None:
    at_next(client, 2, 10)
    client.track(uid, "Subscription Renewed")
    if renew_again_after is not None:
        advance(client, days=renew_again_after)
        client.track(uid, "Subscription Renewed")
    advance(client, days=29, hours=23)
    assert inbox(client, uid, "renewal_lapse") == []  # not before 30 days since the last
    advance(client, hours=2)
    assert len(inbox(client, uid, "renewal_lapse")) == expected


# ---- trait changes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("plans", "expected"), [(["pro", "free"], 1), (["trial", "free"], 0), (["free", "pro"], 0)]
)
def test_a_trait_change_fires_for_its_from_and_to_only(
    client: Client, uid: str, plans: list[str], expected: int
) -> None:
    at_next(client, 3, 10)
    for plan in plans:
        identify(client, uid, plan=plan)
        advance(client, minutes=1)
    client.settle()
    messages = inbox(client, uid, "plan_downgrade")
    assert len(messages) == expected
    assert client.user(uid)["triggers"].get("plan_downgrade", {}).get("fired", 0) == expected


# ---- dates read from traits ------------------------------------------------------------------------
def test_three_days_before_the_trial_ends(client: Client, uid: str) -> None:
    start = at_next(client, 0, 10)
    ends = start + timedelta(days=10)
    identify(client, uid, trial_ends_at=ends.isoformat().replace("+00:00", "Z"))
    advance(client, days=6, hours=23)
    assert inbox(client, uid, "trial_ending") == []
    advance(client, hours=2)
    assert len(inbox(client, uid, "trial_ending")) == 1
    state = client.user(uid)["triggers"]["trial_ending"]
    assert state["last_fired_at"].startswith((ends - timedelta(days=3)).date().isoformat())


def test_a_trial_ending_sooner_than_three_days_after_it_is_set_fires_nothing(
    client: Client, uid: str
) -> None:
    start = at_next(client, 0, 10)
    identify(client, uid, trial_ends_at=(start + timedelta(days=2)).isoformat())
    advance(client, days=5)
    assert inbox(client, uid, "trial_ending") == []
    assert client.user(uid)["triggers"].get("trial_ending", {}).get("fired", 0) == 0


# ---- exit events -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("checkout_after", "expected"), [(None, 1), (10, 0), (40, 1)])
def test_an_exit_event_cancels_the_episode_in_flight_only(
    client: Client, uid: str, checkout_after: int | None, expected: int
) -> None:
    at_next(client, 4, 10)
    client.track(uid, "Wishlist Added", {"product_id": "p1"})
    if checkout_after is not None:
        advance(client, minutes=checkout_after)
        client.track(uid, "Checkout Started")
    advance(client, hours=1)
    assert len(inbox(client, uid, "wishlist_reminder")) == expected


# ---- send windows ------------------------------------------------------------------------------------
def test_a_message_outside_its_send_window_waits_for_the_opening(client: Client, uid: str) -> None:
    saturday = at_next(client, 5, 11)
    client.track(uid, "Guide Opened")
    client.settle()
    assert inbox(client, uid, "weekday_guide") == []
    deliveries = [d for d in client.deliveries(uid) if d["trigger"] == "weekday_guide"]
    assert [(d["status"], d["reason"]) for d in deliveries] == [("deferred", "send_window")]
    monday_nine = (saturday + timedelta(days=2)).replace(hour=9)
    client.clock(set=(monday_nine - timedelta(minutes=1)).isoformat())
    assert inbox(client, uid, "weekday_guide") == []
    client.clock(set=(monday_nine + timedelta(minutes=2)).isoformat())
    assert len(inbox(client, uid, "weekday_guide")) == 1


def test_a_message_inside_its_send_window_goes_at_once(client: Client, uid: str) -> None:
    at_next(client, 1, 11)
    client.track(uid, "Guide Opened")
    client.settle()
    assert len(inbox(client, uid, "weekday_guide")) == 1
    assert now_of(client).tzinfo is not None and now_of(client).astimezone(UTC).hour == 11
