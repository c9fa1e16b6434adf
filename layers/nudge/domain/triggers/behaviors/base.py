"""What every behavior shares: the Moment a condition is checked at, the Check verdict,
and the Pattern base class a behavior implements.

A behavior folds events into a rolling state of its own (a JSON-safe mapping stored in
the profile under the trigger's `p`, by the pattern's slot) and checks it against the
profile. *Instant* behaviors hold at the event that completes them; *durable* ones hold
from a deadline on while the state stays the same (see the engine's docstring).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from nudge.domain.clock import to_ms
from nudge.domain.events import Event
from nudge.domain.profile import ORDER_COMPLETED, PRODUCT_ADDED, PRODUCT_REMOVED, Profile
from nudge.domain.triggers.contract import NONE_KEY, digest
from nudge.domain.triggers.state import MAX_KEYS
from nudge.domain.triggers.values import key_values

MAX_STEP_EVENTS = 8  # per sequence step and key; per correlated absence key
MAX_DEFERRED = 16  # late instant events kept waiting for the rest of their flush per trigger
RETAIN_MS = 7 * 86_400_000  # resolved absences are kept this long past their window
CART_EVENTS = frozenset({PRODUCT_ADDED, PRODUCT_REMOVED, ORDER_COMPLETED})


class Moment:
    """What a condition is evaluated against: the profile now, and the event being
    processed (None at a timer). `at` is the moment in event time that filters reading
    history (`bought`, a count under `not`) are judged at: the event's time, or None for
    the state as it is now (at a timer, and when a message is about to go out); the
    engine moves it to an episode's moment."""

    __slots__ = ("at", "event", "key", "now", "product", "profile", "states")

    def __init__(
        self,
        profile: Profile,
        now: int,
        event: Event | None,
        key: str,
        states: dict[str, Any],
        product: str | None = None,
    ) -> None:
        self.profile = profile
        self.now = now
        self.event = event
        self.key = key
        self.states = states  # pattern slot -> rolling state, for behaviors under `not`
        self.product = product
        self.at: int | None = None if event is None else to_ms(event.timestamp)


class Check:
    """A behavior's verdict for one key at one moment."""

    __slots__ = ("anchor", "at", "context", "due", "holds", "late", "product")

    def __init__(
        self,
        holds: bool,
        *,
        at: int = 0,
        anchor: int = 0,
        due: int | None = None,
        context: dict[str, Any] | None = None,
        product: str | None = None,
        late: bool = False,
    ) -> None:
        self.holds = holds
        self.late = late  # an instant episode older than the key's last fire, found late
        self.at = at
        self.anchor = anchor
        self.due = due
        self.context = context or {}
        self.product = product


NO = Check(False)


class Pattern(ABC):
    """A behavior: folds events into its rolling state and checks whether it holds."""

    instant = True
    key_prop: str | None = None
    horizon_ms = 0
    late = False  # whether it finds past episodes revealed by late events (`past`)
    recurring = False  # whether a new deadline follows a fire with no new event (`date`)

    def __init__(self, node: BaseModel) -> None:
        self.slot = digest(node.model_dump_json(by_alias=True), size=4)

    def observe(self, ps: dict[str, Any], ev: Event, t: int, fp: str) -> bool:
        """Folds one (fresh) event into the state, historical ones too; True when it
        was relevant."""
        return False

    def prune(  # noqa: B027 - optional hook
        self, ps: dict[str, Any], ref: int, held: int | None = None
    ) -> None:
        """Drops what can no longer matter, `ref` being the newest event time known and
        `held` the oldest late event of an instant behavior still waiting to be decided
        (what deciding it needs stays)."""

    def matches(self, ev: Event) -> bool:
        """Whether the event can complete an instant behavior."""
        return False

    def relevant(self, ev: Event) -> bool:
        """Whether the event can move a durable behavior's deadline."""
        return True

    def keys(self, ev: Event) -> list[str]:
        """The keys the event touches."""
        if self.key_prop is None:
            return [NONE_KEY]
        return key_values(ev.properties, self.key_prop)

    @abstractmethod
    def check(self, ps: dict[str, Any], m: Moment, since: int | None) -> Check:
        """Whether the behavior holds at the moment, or when it will be due."""

    def held(self, ps: dict[str, Any], m: Moment) -> bool:
        """The behavior used as a filter (under `not`, or beside another in an `any`):
        whether it holds at the moment (the moment's event, or now at a timer)."""
        return self.check(ps, m, None).holds

    def completions_after(
        self, ps: dict[str, Any], key: str, since: int | None, after: int
    ) -> list[int]:
        """An instant behavior's later moments (event ms, after `after`) at which it
        completes for the key from its state, oldest first: those a late event may have
        made complete after they arrived."""
        return []

    def past(self, ps: dict[str, Any], m: Moment, current: int | None) -> list[Check]:
        """Durable episodes completed in event time before the current one (anchor below
        `current`, None when there is no current one) that were never decided: those a
        late event reveals. Each is decided once (see `decided`)."""
        return []

    def decided(self, ps: dict[str, Any], m: Moment, anchor: int) -> None:  # noqa: B027
        """Records that the episode of this anchor was decided (fired or filtered out)."""


def evict(ps: dict[str, Any], newest: Callable[[Any], int]) -> None:
    """Bounds a keyed state to MAX_KEYS keys: those with the oldest news go."""
    if len(ps) > MAX_KEYS:
        for key in sorted(ps, key=lambda k: newest(ps[k]))[: len(ps) - MAX_KEYS]:
            del ps[key]


def prune_marks(entry: dict[str, Any], floor: int) -> None:
    """Drops the history (`h`: [ms, ...] marks) and decided anchors (`x`: ms) of an
    absence's entry older than `floor`; an emptied list goes."""
    for name in ("h", "x"):
        kept = [v for v in entry.get(name) or [] if (v[0] if isinstance(v, list) else v) >= floor]
        if kept:
            entry[name] = kept
        else:
            entry.pop(name, None)
