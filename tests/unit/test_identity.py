"""Identity rules (docs/identity.md): the write key is public, so no write-key call may take
over an identified user's profile. An anonymous id merges into a known user; two
identified users are never merged (alias, or an event carrying both ids); such a conflict
is logged and not applied; a profile absorbs at most MAX_MERGED_IDS anonymous ids. The
process use case against the in-memory store of test_processing. No I/O."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from nudge.domain.ports import StoredProfile
from nudge.domain.processing import (
    IDENTIFIED_USER,
    MERGE_LIMIT,
    MERGED_ELSEWHERE,
    BatchOutcome,
    process_users,
)
from nudge.domain.profile import ANONYMOUS, IDENTIFIED, MAX_MERGED_IDS, Profile

from tests.unit.test_processing import NOW, InMemoryProfileStore, by_user, ev


@pytest.fixture
def store() -> InMemoryProfileStore:
    return InMemoryProfileStore()


def run(store: InMemoryProfileStore, *events: Any) -> BatchOutcome:
    out = process_users(store, by_user(*events), now=NOW)
    assert out.failed_users == {}
    return out


def add_to_cart(user: str | None, minute: float, product: str, anon: str | None = None) -> Any:
    e = ev("Product Added", minute, user=user, anon=anon)
    return e.model_copy(update={"properties": {"product_id": product, "name": product}})


def resolved(store: InMemoryProfileStore, user_id: str) -> Profile:
    """What GET /v1/users/{id} reads: the profile, through a pointer if it is one."""
    p = store.profile(user_id)
    return store.profile(p.merged_into) if p.merged_into else p


def identify(user: str, minute: float, email: str, anon: str | None = None) -> Any:
    return ev(type="identify", minute=minute, user=user, anon=anon, traits={"email": email})


# ---- the audit's reproducer ----------------------------------------------------------------------


def test_alias_cannot_take_over_an_identified_users_profile(
    store: InMemoryProfileStore, caplog: pytest.LogCaptureFixture
) -> None:
    # given a victim with an address and a cart, and an attacker with their own address
    run(store, identify("victim", 0, "victim@example.com"), add_to_cart("victim", 1, "ring"))
    run(store, identify("attacker", 2, "attacker@example.com"))
    # when the attacker aliases the victim's id into theirs with the public write key
    with caplog.at_level(logging.WARNING, logger="nudge.identity"):
        out = run(store, ev(type="alias", minute=3, user="attacker", previous="victim", mid="a1"))
    # then the victim's profile is still the victim's, cart and address included
    victim = resolved(store, "victim")
    assert victim.user_id == "victim" and victim.merged_into is None
    assert victim.traits["email"] == "victim@example.com"
    assert [i["product_id"] for i in victim.cart_items()] == ["ring"]
    # and nothing of the victim reached the attacker
    attacker = store.profile("attacker")
    assert attacker.cart_items() == [] and "victim" not in attacker.anonymous_ids
    assert attacker.traits["email"] == "attacker@example.com"
    # and the conflict is reported and logged with both ids, not applied
    assert [(c.user_id, c.other_id, c.rule, c.message_id) for c in out.conflicts] == [
        ("attacker", "victim", IDENTIFIED_USER, "a1")
    ]
    [record] = [r for r in caplog.records if r.name == "nudge.identity"]
    fields = record.__dict__  # the log call's extra keys (JSON fields in the functions)
    assert (fields["user_id"], fields["other_id"]) == ("attacker", "victim")
    assert fields["identity_conflict"] == IDENTIFIED_USER and fields["message_id"] == "a1"


def test_an_event_carrying_both_ids_cannot_merge_an_identified_user(
    store: InMemoryProfileStore,
) -> None:
    run(store, identify("victim", 0, "victim@example.com"), add_to_cart("victim", 1, "ring"))
    # an identify (or any call) naming the victim's id as the attacker's anonymousId
    out = run(store, identify("attacker", 2, "attacker@example.com", anon="victim"))
    assert [c.rule for c in out.conflicts] == [IDENTIFIED_USER]
    assert store.profile("victim").merged_into is None
    assert [i["product_id"] for i in store.profile("victim").cart_items()] == ["ring"]
    assert store.profile("attacker").cart_items() == []


def test_a_pointer_claimed_before_the_user_existed_does_not_take_their_events(
    store: InMemoryProfileStore,
) -> None:
    # given an attacker who aliases an id nobody has used yet (the victim-to-be's)
    run(store, identify("attacker", 0, "attacker@example.com"))
    run(store, ev(type="alias", minute=1, user="attacker", previous="victim"))
    assert store.profile("victim").merged_into == "attacker"  # an unseen id is linked
    # when the victim signs up and fills a cart
    run(store, identify("victim", 2, "victim@example.com"), add_to_cart("victim", 3, "ring"))
    # then the victim's events fold into the victim's own profile, not the attacker's
    victim = resolved(store, "victim")
    assert victim.user_id == "victim" and victim.identity == IDENTIFIED
    assert victim.traits["email"] == "victim@example.com"
    assert [i["product_id"] for i in victim.cart_items()] == ["ring"]
    assert store.profile("attacker").cart_items() == []


@pytest.mark.parametrize("victim_first", [True, False])
def test_an_alias_racing_the_victims_first_identify_in_one_batch_takes_nothing(
    store: InMemoryProfileStore, victim_first: bool
) -> None:
    run(store, identify("attacker", 0, "attacker@example.com"))
    groups = {
        "victim": [identify("victim", 1, "victim@example.com"), add_to_cart("victim", 2, "ring")],
        "attacker": [ev(type="alias", minute=3, user="attacker", previous="victim")],
    }
    batch = groups if victim_first else dict(reversed(list(groups.items())))
    out = process_users(store, batch, now=NOW)
    assert out.failed_users == {}
    victim = resolved(store, "victim")
    assert victim.user_id == "victim" and victim.traits["email"] == "victim@example.com"
    assert [i["product_id"] for i in victim.cart_items()] == ["ring"]
    assert store.profile("attacker").cart_items() == []


# ---- which ids may merge ---------------------------------------------------------------------


def test_an_anonymous_visitor_with_an_email_trait_still_merges_at_login(
    store: InMemoryProfileStore,
) -> None:
    # an anonymous identify (newsletter box) gives the visitor traits, not a userId
    run(
        store,
        ev(type="identify", minute=0, user=None, anon="anon-1", traits={"email": "a@x.io"}),
        add_to_cart(None, 1, "ring", anon="anon-1"),
    )
    assert store.profile("anon-1").identity == ANONYMOUS
    out = run(store, identify("u1", 2, "a@x.io", anon="anon-1"))
    assert out.conflicts == []
    assert store.profile("anon-1").merged_into == "u1"
    assert [i["product_id"] for i in store.profile("u1").cart_items()] == ["ring"]
    assert store.profile("u1").identity == IDENTIFIED


def test_an_anonymous_only_call_naming_a_users_id_does_not_make_it_anonymous(
    store: InMemoryProfileStore,
) -> None:
    run(store, identify("victim", 0, "victim@example.com"))
    # an anonymousId equal to the victim's userId folds into the victim (it only adds) ...
    run(store, ev("Product Viewed", 1, user=None, anon="victim"))
    assert store.profile("victim").identity == IDENTIFIED
    # ... and the victim stays unmergeable
    out = run(store, ev(type="alias", minute=2, user="attacker", previous="victim"))
    assert [c.rule for c in out.conflicts] == [IDENTIFIED_USER]


def test_an_anonymous_id_that_joined_one_user_does_not_join_a_second(
    store: InMemoryProfileStore,
) -> None:
    # given a shared browser: one visitor logs in as u1, then another as u2
    run(store, add_to_cart(None, 0, "ring", anon="anon-1"))
    run(store, identify("u1", 1, "one@x.io", anon="anon-1"))
    out = run(store, identify("u2", 2, "two@x.io", anon="anon-1"))
    # then the anonymous history stays with the first, and the second is a conflict
    assert store.profile("anon-1").merged_into == "u1"
    assert [c.rule for c in out.conflicts] == [MERGED_ELSEWHERE]
    assert [i["product_id"] for i in store.profile("u1").cart_items()] == ["ring"]
    assert store.profile("u2").cart_items() == []


def test_a_profile_stored_before_the_marker_counts_as_identified(
    store: InMemoryProfileStore,
) -> None:
    # given a profile written by an earlier nudge (no identity marker), even without traits
    legacy = Profile("old-user")
    legacy.apply([add_to_cart("old-user", 0, "ring")])
    legacy.identity = None
    store._write(StoredProfile(legacy, None))
    # when a call asks to merge it
    out = run(store, ev(type="alias", minute=1, user="attacker", previous="old-user"))
    # then it is refused: the safe side
    assert [c.rule for c in out.conflicts] == [IDENTIFIED_USER]
    assert store.profile("old-user").merged_into is None


def test_a_profile_absorbs_at_most_the_limit_of_anonymous_ids(
    store: InMemoryProfileStore,
) -> None:
    user = Profile("u1", identity=IDENTIFIED, merges=MAX_MERGED_IDS - 1)
    store._write(StoredProfile(user, None))
    run(store, add_to_cart(None, 0, "a", anon="anon-a"), add_to_cart(None, 0, "b", anon="anon-b"))
    # the last one under the limit merges
    assert run(store, ev("Viewed", 1, anon="anon-a")).conflicts == []
    assert store.profile("u1").merges == MAX_MERGED_IDS
    # the next is refused, and its history stays apart
    out = run(store, ev("Viewed", 2, anon="anon-b"))
    assert [c.rule for c in out.conflicts] == [MERGE_LIMIT]
    assert store.profile("anon-b").merged_into is None
    assert [i["product_id"] for i in store.profile("u1").cart_items()] == ["a"]


def test_a_refused_merge_is_read_and_logged_once(
    store: InMemoryProfileStore, caplog: pytest.LogCaptureFixture
) -> None:
    run(store, identify("victim", 0, "victim@example.com"))
    with caplog.at_level(logging.WARNING, logger="nudge.identity"):
        run(store, ev("Viewed", 1, user="attacker", anon="victim"))
        reads = store.reads
        # every later call with both ids (as an SDK sends after identify) is not re-read
        out = run(store, ev("Viewed", 2, user="attacker", anon="victim"))
    assert out.conflicts == []
    assert store.reads == reads + 1  # the batch read only
    assert len([r for r in caplog.records if r.name == "nudge.identity"]) == 1
    assert store.profile("attacker").event_counts == {"Viewed": 2}  # the events still count


def test_a_conflict_is_not_logged_again_when_the_fold_is_retried(
    store: InMemoryProfileStore, caplog: pytest.LogCaptureFixture
) -> None:
    run(store, identify("victim", 0, "victim@example.com"))
    run(store, identify("attacker", 1, "attacker@example.com"))
    raced: list[str] = []

    def another_writer(stored: StoredProfile) -> None:
        if stored.profile.user_id == "attacker" and not raced:
            raced.append("x")  # the first write loses a race, the retry wins
            run_store = store.before_write
            store.before_write = None
            run(store, ev("Viewed", 2, user="attacker"))
            store.before_write = run_store

    store.before_write = another_writer
    with caplog.at_level(logging.WARNING, logger="nudge.identity"):
        out = run(store, ev(type="alias", minute=3, user="attacker", previous="victim"))
    assert raced and len(out.conflicts) == 1
    assert len([r for r in caplog.records if r.name == "nudge.identity"]) == 1
