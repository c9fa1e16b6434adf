"""The trigger package's shape: functions short enough to change safely, every behavior
registered with the compiler, the package exports resolving, and the per-trigger state
stored under the keys stored profiles already hold."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nudge.domain.triggers as triggers_package
import pytest
from nudge.domain.events import normalize_event
from nudge.domain.profile import Profile
from nudge.domain.triggers import Engine, parse_text
from nudge.domain.triggers.compiler import REGISTRY, Compiler
from nudge.domain.triggers.model import PATTERNS
from nudge.domain.triggers.state import KeyState, TriggerState

PACKAGE = Path(triggers_package.__file__).resolve().parent
MAX_FUNCTION_LINES = 60
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1  # from the def line to the last line
            if lines > MAX_FUNCTION_LINES:
                where = path.relative_to(PACKAGE.parent)
                out.append(f"{where}:{node.lineno} {node.name} has {lines} lines")
    return out


def test_no_function_of_the_trigger_package_is_longer_than_60_lines() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert {"engine.py", "compiler.py", "state.py", "contract.py", "values.py"} <= {
        m.name for m in modules
    }
    too_long = [line for m in modules for line in _long_functions(m)]
    assert not too_long, "split these into named steps:\n" + "\n".join(too_long)


def test_the_architecture_doc_lists_every_module_of_the_package() -> None:
    doc = (PACKAGE.parents[3] / "docs" / "architecture.md").read_text()
    section = doc.split("## The trigger engine (nudge.domain.triggers)\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    missing = [
        str(m.relative_to(PACKAGE))
        for m in sorted(PACKAGE.rglob("*.py"))
        if f"`{m.name}`" not in section
    ]
    assert not missing, "docs/architecture.md, the trigger engine: say what these hold"


def test_every_behavior_of_the_definition_format_has_a_pattern() -> None:
    assert set(PATTERNS) == set(REGISTRY)


@pytest.mark.parametrize(
    ("measured_from", "pattern"),
    [("after", "AbsencePattern"), ("cart_change", "CartAbsencePattern")],
)
def test_an_absence_compiles_by_what_it_is_measured_from(measured_from: str, pattern: str) -> None:
    triggers = parse_text(
        f"""
triggers:
  - id: t
    when:
      absence:
        after: {{event: Product Added}}
        without: {{event: Order Completed}}
        within: 15m
        measured_from: {measured_from}
    action: {{channel: inapp, template: t}}
"""
    )
    [trigger] = list(triggers)
    assert type(Compiler().pattern(trigger.when)).__name__ == pattern


def test_the_package_exports_resolve() -> None:
    for name in triggers_package.__all__:
        assert getattr(triggers_package, name) is not None, name
    with pytest.raises(AttributeError):
        triggers_package.timer_name  # noqa: B018 - the per-user timer names are gone


def test_state_accessors_read_and_write_the_stored_keys() -> None:
    raw = {"k": {"p1": {"n": 2, "at": 5, "due": 7, "d": 6}}}
    st = TriggerState(raw)
    ks = st.key("p1")
    assert (ks.episodes, ks.last_fire_ms, ks.timer_due_ms, ks.deadline_ms) == (2, 5, 7, 6)
    ks.timer_due_ms = None
    ks.deadline_ms = None
    assert raw["k"]["p1"] == {"n": 2, "at": 5}
    assert not st.key("p2") and "p2" not in raw["k"]  # reading adds nothing
    assert st.count_fire("p2", 9) == 1 and raw["k"]["p2"] == {"n": 1, "at": 9}
    assert (raw["fired"], raw["last_fired_at"]) == (1, 9)
    assert isinstance(st.key_for_update("p3"), KeyState) and raw["k"]["p3"] == {}


def test_the_engine_stores_only_the_short_keys_stored_profiles_hold() -> None:
    engine = Engine(
        parse_text(
            """
triggers:
  - id: stalled
    when:
      absence:
        after: {event: Checkout Started}
        without: {event: Order Completed}
        within: 30m
        correlate: checkout_id
    action: {channel: inapp, template: t}
"""
        )
    )
    profile = Profile(user_id="u1")
    raw = {
        "type": "track",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": T.isoformat(),
        "event": "Checkout Started",
        "properties": {"checkout_id": "c1"},
    }
    event = normalize_event(raw, kind=None, received_at=T, historical=False)
    armed = engine.on_events(profile, profile.apply([event]), T)
    assert [(t.trigger_id, t.key) for t in armed.arm] == [("stalled", "c1")]
    fired = engine.on_timer(profile, "stalled", "c1", T + timedelta(minutes=31))
    assert [f.key for f in fired.fires] == ["c1"]
    state = profile.triggers["stalled"]
    assert set(state) <= {"fired", "last_fired_at", "armed_until", "k", "p", "e"}
    assert set(state["k"]["c1"]) <= {"n", "at", "due", "d"}
    assert state["k"]["c1"]["n"] == 1 and state["fired"] == 1
