"""The per-trigger state the engine keeps in the profile, with named access.

The profile (one DynamoDB item per user, docs/decisions.md D20) holds it under
`profile.triggers[trigger_id]`; the stored keys are short because every byte of the item
is read and written with every event. They must not change: stored profiles hold them.
This module is the one place that knows them; the engine goes through the names below.

Stored per trigger                      read as
  fired           episodes so far        TriggerState.fired          (public)
  last_fired_at   ms of the last one     TriggerState.last_fired_at  (public)
  armed_until     ms of the nearest      TriggerState.armed_until    (public)
                  pending deadline, or None
  k               {key: per-key state}   TriggerState.key / .key_for_update / .keyed
                  ("" for no key)
  p               {pattern slot: the     TriggerState.patterns
                  behavior's rolling state; each behavior documents its own}
  e               the highest episode    TriggerState.evicted_episodes
                  number of evicted keys (so episode numbers stay unique)
  w               instant episodes whose TriggerState.waiting
                  trait filters failed, [[ms, key, event, properties, product], ...],
                  kept a minute (an `identify` just after may set the trait)
  x               the user's variant of    TriggerState.variant
                  the trigger's experiment (its name), once drawn
  q               instant events that      TriggerState.deferred
                  arrived late, to decide at a wake-up once the rest of their flush
                  is in: [[ms, fp8, slot, key, event, properties, ready ms], ...]

Stored per key (in `k`)
  n               episodes for the key   KeyState.episodes
  at              ms of its last fire    KeyState.last_fire_ms
  due             ms the armed timer     KeyState.timer_due_ms
                  falls due
  d               the deadline now       KeyState.deadline_ms
                  needed (ms)

`fired`, `last_fired_at` and `armed_until` are read outside the engine too: the profile's
public view (`Profile.view`, GET /v1/users/{id}) shows them. The rest is the engine's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nudge.domain.triggers.contract import NONE_KEY

MAX_KEYS = 30  # keys kept per behavior and per trigger (products, correlation values)


def without_timers(triggers: dict[str, Any]) -> dict[str, Any]:
    """`profile.triggers` without the armed timers' bookkeeping (each key's `due`, and
    keys holding nothing else): what a wake-up that only re-armed changed. The process
    use case then files the new timer and skips the profile write; the recorded `due`
    it leaves behind has passed and covers nothing (contract.PASSED_TIMER_MS)."""
    out: dict[str, Any] = {}
    for tid, raw in triggers.items():
        keys = raw.get("k") if isinstance(raw, dict) else None
        if not isinstance(keys, dict):
            out[tid] = raw
            continue
        slim = {k: {n: v for n, v in ks.items() if n != "due"} for k, ks in keys.items()}
        out[tid] = {**raw, "k": {k: ks for k, ks in slim.items() if ks}}
    return out


def merge_states(mine: dict[str, Any], other: dict[str, Any]) -> None:
    """Folds another profile's trigger state into this one's (`profile.triggers` of
    each) when an identity merge absorbs it: a trigger only the other had comes whole;
    for one both had, episodes add up (`fired`, and each key's `n`, so that episode
    numbers and action ids never repeat), the latest fire wins, keys only the other had
    come along, and this profile's behavior state stays (the merged profile's events
    are in the fold from now on)."""
    for tid, theirs in other.items():
        if not isinstance(theirs, dict):
            continue
        ours = mine.get(tid)
        if not isinstance(ours, dict):
            mine[tid] = theirs
            continue
        ours["fired"] = int(ours.get("fired") or 0) + int(theirs.get("fired") or 0)
        lasts = [v for v in (ours.get("last_fired_at"), theirs.get("last_fired_at")) if v]
        ours["last_fired_at"] = max(lasts) if lasts else None
        ours["e"] = max(int(ours.get("e") or 0), int(theirs.get("e") or 0))
        our_keys, their_keys = ours.setdefault("k", {}), theirs.get("k") or {}
        for key, ks in their_keys.items():
            if key not in our_keys:
                our_keys[key] = ks
                continue
            mine_ks = our_keys[key]
            mine_ks["n"] = int(mine_ks.get("n") or 0) + int(ks.get("n") or 0)
            if ks.get("at") is not None:
                mine_ks["at"] = max(int(mine_ks.get("at") or 0), int(ks["at"]))
        if not our_keys:
            del ours["k"]


class KeyState:
    """The bookkeeping of one (trigger, key): its episodes, its last fire, its timer and
    its pending deadline. A view on the stored mapping: writes go to the profile."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def __bool__(self) -> bool:
        """Whether anything is recorded (an empty key is dropped when stored)."""
        return bool(self.raw)

    @property
    def episodes(self) -> int:
        """Episodes fired for the key (0 when none, or none since it was evicted)."""
        return int(self.raw.get("n") or 0)

    @episodes.setter
    def episodes(self, n: int) -> None:
        self.raw["n"] = n

    @property
    def last_fire_ms(self) -> int | None:
        """The latest `at` of the key's fired episodes: an episode anchored at or before
        it is one already decided."""
        at = self.raw.get("at")
        return None if at is None else int(at)

    @last_fire_ms.setter
    def last_fire_ms(self, at: int) -> None:
        self.raw["at"] = at

    @property
    def timer_due_ms(self) -> int | None:
        """When the timer armed for this key falls due, None when none is armed."""
        due = self.raw.get("due")
        return None if due is None else int(due)

    @timer_due_ms.setter
    def timer_due_ms(self, due: int | None) -> None:
        if due is None:
            self.raw.pop("due", None)
        else:
            self.raw["due"] = due

    @property
    def deadline_ms(self) -> int | None:
        """The earliest deadline of the key's durable behaviors still ahead, None when
        nothing is pending (the user's earliest one is what the timer must cover)."""
        d = self.raw.get("d")
        return None if d is None else int(d)

    @deadline_ms.setter
    def deadline_ms(self, d: int | None) -> None:
        if d is None:
            self.raw.pop("d", None)
        else:
            self.raw["d"] = d


class TriggerState:
    """One trigger's state for one user, read from the profile and written back by
    `store`. The mappings are the stored ones, changed in place."""

    __slots__ = ("_keys", "patterns", "raw")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        k = raw.get("k")
        self._keys: dict[str, dict[str, Any]] = k if isinstance(k, dict) else {}
        p = raw.get("p")
        self.patterns: dict[str, dict[str, Any]] = p if isinstance(p, dict) else {}

    # ---- the public counters ------------------------------------------------------------
    @property
    def fired(self) -> int:
        return int(self.raw.get("fired", 0))

    @property
    def last_fired_at(self) -> int | None:
        at = self.raw.get("last_fired_at")
        return None if at is None else int(at)

    @property
    def armed_until(self) -> int | None:
        at = self.raw.get("armed_until")
        return None if at is None else int(at)

    @property
    def evicted_episodes(self) -> int:
        return int(self.raw.get("e", 0))

    @property
    def waiting(self) -> list[list[Any]]:
        """Instant episodes waiting for their trait filters (see the table above)."""
        w = self.raw.get("w")
        if not isinstance(w, list):
            w = self.raw["w"] = []
        return w

    @waiting.setter
    def waiting(self, items: list[list[Any]]) -> None:
        self.raw["w"] = items

    @property
    def variant(self) -> str | None:
        """The user's variant of the trigger's experiment, once drawn (kept for good)."""
        x = self.raw.get("x")
        return x if isinstance(x, str) else None

    @variant.setter
    def variant(self, name: str) -> None:
        self.raw["x"] = name

    @property
    def deferred(self) -> list[list[Any]]:
        """Late instant events waiting for the rest of their flush (see the table)."""
        q = self.raw.get("q")
        if not isinstance(q, list):
            q = self.raw["q"] = []
        return q

    @deferred.setter
    def deferred(self, items: list[list[Any]]) -> None:
        self.raw["q"] = items

    # ---- keys ----------------------------------------------------------------------------
    def key(self, key: str) -> KeyState:
        """The key's state to read; an empty one (not stored) when the key has none."""
        return KeyState(self._keys.get(key) or {})

    def key_for_update(self, key: str) -> KeyState:
        """The key's state to change, added to the trigger's when the key has none."""
        raw = self._keys.get(key)
        if raw is None:
            raw = self._keys[key] = {}
        return KeyState(raw)

    def keyed(self) -> Iterator[tuple[str, KeyState]]:
        """Every key with state, in stored order (the order ties are broken in)."""
        for key, raw in self._keys.items():
            yield key, KeyState(raw)

    def deadlines(self) -> Iterator[tuple[str, int]]:
        """(key, KeyState.deadline_ms) of every key with a pending deadline, in stored
        order (from timing())."""
        for key, d, _ in self.timing():
            if d is not None:
                yield key, d

    def timing(self) -> Iterator[tuple[str, int | None, int | None]]:
        """(key, deadline_ms, timer_due_ms) of every key with either, in stored order: read
        from the stored mappings as KeyState reads them, with no view made per key (the
        engine's scans visit every key of every trigger per event)."""
        for key, raw in self._keys.items():
            d, due = raw.get("d"), raw.get("due")
            if d is not None or due is not None:
                yield key, None if d is None else int(d), None if due is None else int(due)

    def count_fire(self, key: str, at: int) -> int:
        """Counts an episode of the key fired at `at` (ms); returns its episode number.
        Numbers continue after those of evicted keys, so an action id is never reused;
        `at` is never moved back (a late episode may be older than the last fire)."""
        ks = self.key_for_update(key)
        episode = (ks.episodes or self.evicted_episodes) + 1
        ks.episodes = episode
        ks.last_fire_ms = max(ks.last_fire_ms or 0, at)
        self.raw["fired"] = self.fired + 1
        self.raw["last_fired_at"] = max(self.last_fired_at or 0, at)
        return episode

    # ---- writing back ----------------------------------------------------------------------
    def store(self, triggers: dict[str, Any], trigger_id: str) -> None:
        """Writes the state into `profile.triggers`, bounded: empty keys dropped, beyond
        MAX_KEYS the idle keys that fired longest ago evicted (never one with a timer, nor
        the keyless one), `armed_until` the nearest pending deadline. A trigger with
        nothing to remember yet takes no place."""
        self._evict_keys()
        raw = self.raw
        if self._keys:
            raw["k"] = self._keys
        else:
            raw.pop("k", None)
        if self.patterns:
            raw["p"] = self.patterns
        else:
            raw.pop("p", None)
        for name in ("w", "q"):
            if not raw.get(name):
                raw.pop(name, None)
        deadlines = [d for _, d in self.deadlines()]
        raw["armed_until"] = min(deadlines) if deadlines else None
        if (
            not raw.get("k")
            and not raw.get("p")
            and not raw.get("w")
            and not raw.get("q")
            and not raw.get("fired")
            and trigger_id not in triggers
        ):
            return  # nothing worth a place in the profile yet
        raw.setdefault("fired", 0)
        triggers[trigger_id] = raw

    def _evict_keys(self) -> None:
        keys = self._keys
        for key in [k for k, v in keys.items() if not v]:
            del keys[key]
        if len(keys) <= MAX_KEYS:
            return
        idle = [k for k, v in keys.items() if "due" not in v and k != NONE_KEY]
        idle.sort(key=lambda k: KeyState(keys[k]).last_fire_ms or 0)
        for k in idle[: len(keys) - MAX_KEYS]:
            self.raw["e"] = max(self.evicted_episodes, KeyState(keys[k]).episodes)
            del keys[k]
