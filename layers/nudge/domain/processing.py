"""The process use case: fold a user's events into their profile, let the trigger engine
decide, apply its effects, and commit the profile with one conditional write.

Effects (timers, actions) are applied before the profile commit and are idempotent
(deterministic schedule names and action ids), so a crash or a lost race between them
and the commit only repeats them harmlessly when the batch is retried.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from nudge.domain.archive import ArchiveRecord
from nudge.domain.errors import ConcurrentUpdateError
from nudge.domain.events import Event
from nudge.domain.ports import ArchiveWriter, ProfileStore, StoredProfile
from nudge.domain.profile import ANONYMOUS, MAX_MERGED_IDS, Profile
from nudge.domain.triggers.contract import Decisions, Fire
from nudge.domain.triggers.state import merge_states, without_timers

MAX_ATTEMPTS = 4
MAX_REDIRECTS = 3
# events of one user folded (and committed) at once: a fold's own fingerprints stay in the
# profile until its next fold (nudge.domain.profile, D42), so this bounds what they add
MAX_FOLD_EVENTS = 1024
# a child of the functions' Powertools logger ("nudge"): its records come out as the
# same structured JSON, with the extra keys as fields
log = logging.getLogger("nudge.identity")

# Why a merge was refused (docs/identity.md), as the conflict log's `rule` says.
IDENTIFIED_USER = "identified_user"  # the other id is an identified user's
MERGED_ELSEWHERE = "merged_elsewhere"  # the anonymous id already joined another user
MERGE_LIMIT = "merge_limit"  # this profile has absorbed MAX_MERGED_IDS anonymous ids


class Decider(Protocol):
    """The trigger engine as the processor sees it."""

    def on_events(self, profile: Profile, events: list[Event], now: datetime) -> Decisions: ...

    def on_timer(
        self, profile: Profile, trigger_id: str, key: str | None, now: datetime
    ) -> Decisions: ...


class Effects(Protocol):
    """Applies what the engine decided for one user (sends, timers) before the commit.
    An implementation may also take a batch's users at once,
    `apply_all([(user_id, decisions), ...])` (process_users uses it when present)."""

    def apply(self, user_id: str, decisions: Decisions) -> None: ...


@dataclass(frozen=True)
class IdentityConflict:
    """A merge a write-key call asked for and the identity rules refused."""

    user_id: str  # the profile the call was folded into (its userId)
    other_id: str  # the id it would have merged (previousId or anonymousId)
    rule: str  # IDENTIFIED_USER, MERGED_ELSEWHERE or MERGE_LIMIT
    message_id: str  # the call that asked


@dataclass
class FoldOutcome:
    user_id: str
    fresh: int = 0
    duplicates: int = 0
    writes: int = 0
    merged: list[str] = field(default_factory=list)
    conflicts: list[IdentityConflict] = field(default_factory=list)
    exposures: list[Event] = field(default_factory=list)  # Experiment Viewed, to archive
    erased: bool = False  # the user was erased: the events are dropped, not archived


EXPERIMENT_VIEWED = "Experiment Viewed"  # Segment's A/B testing spec


def exposure_event(user_id: str, fire: Fire, now: datetime) -> Event:
    """An episode of a trigger under experiment, as the archive keeps it: Segment's
    `Experiment Viewed`, for holdout users too; one per action (its id is the messageId,
    so a retried batch archives it once)."""
    exp = fire.experiment or {}
    return Event(
        type="track",
        message_id=f"exposure-{fire.action_id}",
        user_id=user_id,
        event=EXPERIMENT_VIEWED,
        properties={
            "experiment_id": exp.get("id"),
            "experiment_name": exp.get("name"),
            "variation_id": exp.get("variant"),
            "variation_name": exp.get("variant"),
            "trigger_id": fire.trigger_id,
            "action_id": fire.action_id,
        },
        timestamp=fire.at,
        received_at=now,
    )


def _new(user_id: str) -> StoredProfile:
    return StoredProfile(Profile(user_id=user_id), None)


@dataclass(frozen=True)
class TimerDue:
    """A trigger timer that came due (its wake-up bucket fired)."""

    user_id: str
    trigger_id: str
    key: str | None


def _combine(parts: Sequence[Decisions]) -> Decisions:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for other in parts[1:]:
        first.fires.extend(other.fires)
        first.arm.extend(other.arm)
    return first


@dataclass
class _Decided:
    """One user's fold and decisions, not yet applied: the effects to apply, then the
    write (`stored`, with `pointers` in the same transaction) when one is needed."""

    stored: StoredProfile
    pointers: list[StoredProfile]
    decisions: Decisions | None
    write: bool
    outcome: FoldOutcome


def _decide_user(
    store: ProfileStore,
    user_id: str,
    events: Sequence[Event],
    stored: StoredProfile | None,
    *,
    now: datetime,
    engine: Decider | None,
    timers: Sequence[TimerDue],
) -> _Decided:
    """One attempt of a user's fold (`stored`: the profile read, None to read it): the
    identity merges, the events folded, the engine's decisions. Reads only."""
    outcome = FoldOutcome(user_id)
    # an id some event names as its userId is that user's own: a pointer left there (an
    # anonymous id merged, or an id an alias linked before it was ever seen) does not
    # take the user's events to another profile — the profile becomes the user's again
    claimed = any(ev.user_id == user_id for ev in events)
    target = user_id
    if stored is None:
        stored = store.get(target) or _new(target)
    if claimed and stored.profile.merged_into:
        stored = StoredProfile(Profile(user_id=target), stored.version)
    redirects = 0
    while stored.profile.merged_into and redirects < MAX_REDIRECTS:
        target = stored.profile.merged_into
        stored = store.get(target) or _new(target)
        redirects += 1
    outcome.user_id = target
    profile = stored.profile
    if profile.erased:  # in flight when the user was erased: it brings nothing back
        outcome.erased, outcome.duplicates = True, len(events)
        return _Decided(stored, [], None, False, outcome)
    if stored.version is None and profile.identity is None:
        profile.identity = ANONYMOUS  # new: identified below if a userId names it
    pointers = _merge_identities(store, profile, events, outcome)
    merged = bool(pointers) or bool(outcome.merged) or bool(outcome.conflicts)
    fresh = profile.apply(events, _spilled(store, profile, events))
    outcome.fresh, outcome.duplicates = len(fresh), len(events) - len(fresh)
    if not fresh and not merged and not timers:
        return _Decided(stored, pointers, None, False, outcome)
    before = copy.deepcopy(profile.triggers) if timers and not fresh and not merged else None
    decisions = None
    if engine is not None:
        parts = [engine.on_events(profile, fresh, now)] if fresh else []
        parts += [engine.on_timer(profile, t.trigger_id, t.key, now) for t in timers]
        decisions = _combine(parts) if parts else None
    fires: list[Fire] = getattr(decisions, "fires", None) or []  # (a test's engine may differ)
    outcome.exposures = [exposure_event(target, f, now) for f in fires if f.experiment]
    # a stale timer, or one that only re-armed: its timers are filed, the profile not written
    write = not (
        before is not None
        and not (decisions and decisions.fires)
        and without_timers(profile.triggers) == without_timers(before)
    )
    return _Decided(stored, pointers, decisions, write, outcome)


def _spilled(store: ProfileStore, profile: Profile, events: Sequence[Event]) -> set[str]:
    """The fingerprints of `events` that the dedup store holds inside the window: looked
    up only for a profile that spilled there within it (D42), and only those the profile
    does not hold itself. Normal users cost no read."""
    if not events:
        return set()
    horizon = profile.dedup_horizon(events)
    ids = profile.spill_ids(horizon)
    if not ids:
        return set()
    candidates = {ev.fingerprint for ev in events} - profile.seen.keys()
    if not candidates:
        return set()
    found = store.spilled(ids, candidates)
    return {fp for fp, minute in found.items() if minute >= horizon}


def _commit(store: ProfileStore, d: _Decided) -> None:
    if not d.write:
        return
    if d.pointers:
        # the merged profiles become pointers in the same transaction, so a retry never
        # absorbs twice nor loses what was absorbed
        store.save_all([d.stored, *d.pointers])
        d.outcome.writes += 1 + len(d.pointers)
    else:
        store.save(d.stored)
        d.outcome.writes += 1
    _log_conflicts(d.outcome.conflicts)


def fold_user(
    store: ProfileStore,
    user_id: str,
    events: Sequence[Event],
    *,
    now: datetime,
    preloaded: StoredProfile | None = None,
    engine: Decider | None = None,
    effects: Effects | None = None,
    timers: Sequence[TimerDue] = (),
) -> FoldOutcome:
    """Folds one user's events, then re-checks the user's timers that came due, with
    optimistic concurrency: on a concurrent update the profile is read again and the
    (deduplicated) fold repeated. One write, and only when something changed; the
    effects (idempotent) are applied before it."""
    stored = preloaded
    for attempt in range(MAX_ATTEMPTS):
        d = _decide_user(store, user_id, events, stored, now=now, engine=engine, timers=timers)
        if effects is not None and d.decisions:
            effects.apply(d.stored.profile.user_id, d.decisions)
        try:
            _commit(store, d)
            return d.outcome
        except ConcurrentUpdateError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            stored = None
    raise AssertionError("unreachable")


def _apply_all(effects: Effects, decided: Sequence[_Decided]) -> None:
    """The effects of several users: in one go when the effects take them so (fewer
    queue and table requests), else one user at a time."""
    items = [(d.stored.profile.user_id, d.decisions) for d in decided if d.decisions]
    apply_all = getattr(effects, "apply_all", None)
    if apply_all is not None:
        apply_all(items)
    else:
        for user_id, decisions in items:
            effects.apply(user_id, decisions)


def _merge_identities(
    store: ProfileStore, profile: Profile, events: Sequence[Event], outcome: FoldOutcome
) -> list[StoredProfile]:
    """Segment identity under the rules of docs/identity.md: `alias` (previousId →
    userId) and any event that carries both ids (the `identify` at login and every call
    after it) merge the other profile into this one, once; the other becomes a pointer.
    Any such event, not only the identify: when a later call is folded before the
    identify (out of order), the merge must still happen, and it happens only once (the
    id is then in anonymous_ids).

    The write key is public, so a merge is refused (a conflict, logged, not applied) when
    the other id is an identified user's, when it already joined another user, or when
    this profile has absorbed MAX_MERGED_IDS anonymous ids."""
    asks: dict[str, str] = {}  # other id -> the message that asked first
    for ev in events:
        other_id = ev.previous_id if ev.type == "alias" else ev.anonymous_id if ev.user_id else None
        if (
            other_id
            and other_id != profile.user_id
            and other_id not in profile.anonymous_ids
            and other_id not in profile.unmerged_ids
        ):
            asks.setdefault(other_id, ev.message_id)
    pointers: list[StoredProfile] = []
    for other_id, message_id in asks.items():
        other = store.get(other_id)
        rule = None
        if other is not None and other.profile.merged_into:
            if other.profile.merged_into == profile.user_id:
                profile._add_anonymous_id(other_id)  # ours already (fell off the list)
                continue
            rule = MERGED_ELSEWHERE
        elif other is not None and other.profile.identified:
            rule = IDENTIFIED_USER
        elif profile.merges >= MAX_MERGED_IDS:
            rule = MERGE_LIMIT
        if rule is not None:
            profile.refuse_id(other_id)
            outcome.conflicts.append(IdentityConflict(profile.user_id, other_id, rule, message_id))
            continue
        profile.link_anonymous_id(other_id)
        if other is not None:
            profile.absorb(other.profile)
            merge_states(profile.triggers, other.profile.triggers)
            outcome.merged.append(other_id)
        # a pointer, so that later events carrying only the old id fold in here
        pointer = Profile(user_id=other_id, merged_into=profile.user_id)
        pointers.append(StoredProfile(pointer, other.version if other else None))
    return pointers


def _log_conflicts(conflicts: Sequence[IdentityConflict]) -> None:
    for c in conflicts:
        log.warning(
            "identity conflict: merge not applied",
            extra={
                "identity_conflict": c.rule,
                "user_id": c.user_id,
                "other_id": c.other_id,
                "message_id": c.message_id,
            },
        )


@dataclass
class BatchOutcome:
    fresh: int = 0
    duplicates: int = 0
    writes: int = 0
    archived: int = 0
    failed_users: dict[str, Exception] = field(default_factory=dict)
    conflicts: list[IdentityConflict] = field(default_factory=list)


def _last_chunk(n: int) -> int:
    """How many of a user's n events the batch's own fold takes (the rest: _fold_ahead)."""
    return (n - 1) % MAX_FOLD_EVENTS + 1 if n else 0


def _fold_ahead(
    store: ProfileStore,
    events_by_user: dict[str, list[Event]],
    result: BatchOutcome,
    *,
    now: datetime,
    engine: Decider | None,
    effects: Effects | None,
) -> dict[str, list[Event]]:
    """A user with more than MAX_FOLD_EVENTS events in the batch: all but the last chunk
    of them are folded and committed first, MAX_FOLD_EVENTS at a time (as if they had
    come in batches of their own), counted in `result` (a failure fails the user).
    Returns the exposures of those folds, per user, for the archive."""
    exposures: dict[str, list[Event]] = {}
    for user_id, events in events_by_user.items():
        cut = len(events) - _last_chunk(len(events))
        try:
            for lo in range(0, cut, MAX_FOLD_EVENTS):
                chunk = events[lo : lo + MAX_FOLD_EVENTS]
                outcome = fold_user(store, user_id, chunk, now=now, engine=engine, effects=effects)
                result.fresh += outcome.fresh
                result.duplicates += outcome.duplicates
                result.writes += outcome.writes
                result.conflicts.extend(outcome.conflicts)
                exposures.setdefault(user_id, []).extend(outcome.exposures)
        except Exception as err:  # reported per user: the batch goes on
            result.failed_users[user_id] = err
    return exposures


def process_users(
    store: ProfileStore,
    events_by_user: dict[str, list[Event]],
    *,
    now: datetime,
    engine: Decider | None = None,
    effects: Effects | None = None,
    timers_by_user: dict[str, list[TimerDue]] | None = None,
    archive: ArchiveWriter | None = None,
) -> BatchOutcome:
    """Folds each user's events and due timers (one read for all users, at most one
    write per user; past MAX_FOLD_EVENTS of a user, one per MAX_FOLD_EVENTS of them); a
    user whose fold fails is reported, the others still commit.

    Then the batch's events go to the archive in one call, after the profile commits
    (docs/decisions.md, "The archive write comes after the profile commit"): the
    events of every user that committed, the duplicates included — a duplicate may be
    the retry of a batch whose archive write failed, and the view `events` keeps each
    message_id once. When the archive write fails, those users are reported failed:
    their records come back, fold as duplicates (no second effect) and are archived
    again."""
    result = BatchOutcome()
    to_archive: dict[str, tuple[str, list[Event]]] = {}
    timers_by_user = timers_by_user or {}
    ahead = _fold_ahead(store, events_by_user, result, now=now, engine=engine, effects=effects)
    folding = {u: evs[len(evs) - _last_chunk(len(evs)) :] for u, evs in events_by_user.items()}
    users = list(dict.fromkeys([*events_by_user, *timers_by_user]))
    users = [u for u in users if u not in result.failed_users]
    preloaded = store.get_many(users)
    decided: list[tuple[str, _Decided]] = []
    for user_id in users:
        try:
            d = _decide_user(
                store,
                user_id,
                folding.get(user_id, []),
                preloaded.get(user_id) or _new(user_id),  # absent from the batch read: new
                now=now,
                engine=engine,
                timers=timers_by_user.get(user_id, []),
            )
        except Exception as err:  # reported per user: the batch goes on
            result.failed_users[user_id] = err
            continue
        decided.append((user_id, d))
    if effects is not None:
        try:  # every user's effects in one go, then the writes (effects come first)
            _apply_all(effects, [d for _, d in decided])
        except Exception as err:  # nothing was written: every user of the batch retries
            for user_id, _ in decided:
                result.failed_users[user_id] = err
            decided = []
    for user_id, d in decided:
        try:
            try:
                _commit(store, d)
                outcome = d.outcome
            except ConcurrentUpdateError:  # read again and fold again, on its own
                outcome = fold_user(
                    store,
                    user_id,
                    folding.get(user_id, []),
                    now=now,
                    engine=engine,
                    effects=effects,
                    timers=timers_by_user.get(user_id, []),
                )
        except Exception as err:  # reported per user: the batch goes on
            result.failed_users[user_id] = err
            continue
        result.fresh += outcome.fresh
        result.duplicates += outcome.duplicates
        result.writes += outcome.writes
        result.conflicts.extend(outcome.conflicts)
        exposures = [*ahead.get(user_id, []), *outcome.exposures]
        if (events_by_user.get(user_id) or exposures) and not outcome.erased:
            evs = [*events_by_user.get(user_id, []), *exposures]
            to_archive[user_id] = (outcome.user_id, evs)
    if archive is not None and to_archive:
        lines = [
            ArchiveRecord.of(ev, resolved).line()
            for resolved, evs in to_archive.values()
            for ev in evs
        ]
        try:
            archive.write(lines)
        except Exception as err:  # the users' records are retried (see above)
            for user_id in to_archive:
                result.failed_users[user_id] = err
        else:
            result.archived = len(lines)
    return result
