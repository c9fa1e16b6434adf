"""Trigger definitions: the shipped files, the schema, durations, and each kind of
validation error reported with its file and line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from nudge.domain.triggers import (
    DefinitionError,
    DefinitionIssue,
    load_triggers,
    parse_text,
    validate_path,
)
from nudge.domain.triggers.durations import DurationError, format_duration, parse_duration
from nudge.domain.triggers.loader import default_templates_dir, default_triggers_path
from nudge.domain.triggers.model import schema_text

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IDS = [
    "cart_abandonment",
    "inactivity_winback",
    "repeat_product_view",
    "product_dwell_upsell",
]


# ---- what ships --------------------------------------------------------------------------------
def test_default_yaml_is_valid_with_the_four_ids() -> None:
    assert validate_path(ROOT / "triggers") == []
    triggers = load_triggers(ROOT / "triggers" / "default.yaml")
    assert triggers.ids == DEFAULT_IDS
    assert triggers.get("cart_abandonment").priority > max(  # type: ignore[union-attr]
        t.priority for t in triggers if t.id != "cart_abandonment"
    )


def test_every_default_trigger_has_its_template() -> None:
    triggers = load_triggers(ROOT / "triggers")
    for t in triggers:
        assert (ROOT / "templates" / f"{t.action.template}.yaml").is_file()


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "triggers" / "schema.json").read_text()
    assert committed == schema_text(), (
        "regenerate: python -m nudge.domain.triggers.model > triggers/schema.json"
    )


def test_default_yaml_satisfies_the_editor_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads((ROOT / "triggers" / "schema.json").read_text())
    jsonschema.validate(yaml.safe_load((ROOT / "triggers" / "default.yaml").read_text()), schema)


def test_default_locations(tmp_path: Path) -> None:
    assert default_triggers_path({}) == Path("triggers")
    assert default_triggers_path({"NUDGE_TRIGGERS_PATH": "/x/t"}) == Path("/x/t")
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "a.yaml").write_text("triggers: []\n")
    assert default_templates_dir(tmp_path / "triggers") == (tmp_path / "templates").resolve()
    assert (
        default_templates_dir(tmp_path / "triggers" / "a.yaml")
        == (tmp_path / "templates").resolve()
    )


# ---- durations ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("48h", 172800), ("7d", 604800), ("0s", 0)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    if seconds:
        assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["15", 15, "1w", "m15", "1.5h", "", "-3m", True, None, "400d"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


# ---- errors, each with its file and line ------------------------------------------------------------
GOOD = """\
triggers:
  - id: good
    when: {event: Signed Up}
    action: {channel: email, template: t1}
"""

# a template with every channel, so that these triggers are checked for their own problems
T1 = """\
email: {subject: s, html: h, text: t}
sms: {text: t}
push: {title: x, body: y}
inapp: {title: x, body: y, cta: c}
"""


def _issues(
    tmp_path: Path, text: str, *, name: str = "bad.yaml", extra: dict[str, str] | None = None
) -> list[DefinitionIssue]:
    folder = tmp_path / "triggers"
    folder.mkdir(exist_ok=True)
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "t1.yaml").write_text(T1)
    (folder / name).write_text(textwrap.dedent(text))
    for other, body in (extra or {}).items():
        (folder / other).write_text(textwrap.dedent(body))
    return validate_path(folder)


def _one(tmp_path: Path, text: str, **kw: object) -> DefinitionIssue:
    issues = _issues(tmp_path, text, **kw)  # type: ignore[arg-type]
    assert len(issues) == 1, issues
    return issues[0]


def test_unknown_field(tmp_path: Path) -> None:
    issue = _one(
        tmp_path,
        """\
        triggers:
          - id: x
            when: {event: Signed Up}
            action: {channel: email, template: t1}
            prio: 3
        """,
    )
    assert issue.file.endswith("bad.yaml") and issue.line == 5
    assert "unknown field 'prio'" in issue.message and "priority" in issue.message


def test_unknown_field_deep_in_a_condition(tmp_path: Path) -> None:
    issue = _one(
        tmp_path,
        """\
        triggers:
          - id: x
            when:
              all:
                - inactivity:
                    for: 10m
                    of: Page Viewed
                - trait: {email: {exists: true}}
            action: {channel: email, template: t1}
        """,
    )
    assert issue.line == 7 and "unknown field 'of'" in issue.message


def test_bad_duration(tmp_path: Path) -> None:
    issue = _one(
        tmp_path,
        """\
        triggers:
          - id: x
            when:
              count:
                event: Product Viewed
                at_least: 2
                within: 7 days
            action: {channel: email, template: t1}
        """,
    )
    assert issue.line == 7 and "bad duration '7 days'" in issue.message


def test_bad_duration_in_a_shorthand_and_a_cooldown(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path,
        """\
        triggers:
          - id: x
            when: {inactivity: 2 days}
            action: {channel: email, template: t1}
            cooldown: 24
        """,
    )
    assert [(i.line, "bad duration" in i.message) for i in issues] == [(3, True), (5, True)]


def test_unknown_property_operator(tmp_path: Path) -> None:
    issue = _one(
        tmp_path,
        """\
        triggers:
          - id: x
            when:
              event: Product Viewed
              where:
                category: shoes
                price: {greater_than: 100}
            action: {channel: email, template: t1}
        """,
    )
    assert issue.line == 7 and "unknown property operator 'greater_than'" in issue.message


def test_unknown_operator_on_a_trait(tmp_path: Path) -> None:
    issue = _one(
        tmp_path,
        """\
        triggers:
          - id: x
            when:
              all:
                - event: Signed Up
                - trait:
                    email: {present: true}
            action: {channel: email, template: t1}
        """,
    )
    assert issue.line == 7 and "unknown property operator 'present'" in issue.message


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    issue = _one(tmp_path, GOOD, name="b.yaml", extra={"a.yaml": GOOD})
    assert issue.file.endswith("b.yaml") and issue.line == 2
    assert "duplicate id 'good'" in issue.message and "a.yaml:2" in issue.message


@pytest.mark.parametrize(
    ("condition", "line", "words"),
    [
        (
            "count: {event: Product Viewed, at_least: 0, within: 7d}",
            4,
            "at_least must be 1 or more",
        ),
        ("count: {event: Product Viewed, at_least: 3, within: 0s}", 4, "never passes"),
        ("event: Product Viewed\n      where: {category: {in: []}}", 5, "`in: []` matches nothing"),
        ("not: {trait: {email: {exists: true}}}", 4, "nothing to arm on"),
        ("trait: {email: {exists: true}}", 4, "nothing to arm on"),
        ("inactivity: 0m", 4, "never passes"),
    ],
)
def test_unreachable_conditions(tmp_path: Path, condition: str, line: int, words: str) -> None:
    text = f"triggers:\n  - id: x\n    when:\n      {condition}\n    action: {{channel: email, template: t1}}\n"
    issue = _one(tmp_path, text)
    assert issue.line == line and words in issue.message, issue


def test_a_sequence_time_limit_of_zero_is_unreachable(tmp_path: Path) -> None:
    issue = _one(
        tmp_path,
        """\
        triggers:
          - id: x
            when:
              sequence:
                steps:
                  - event: Product Viewed
                  - {event: Product Added, within: 0m}
            action: {channel: email, template: t1}
        """,
    )
    assert issue.line == 7 and "unreachable condition" in issue.message


def test_sequence_limits_and_structure(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path,
        """\
        triggers:
          - id: x
            when:
              sequence:
                steps:
                  - {event: Product Viewed, within: 5m}
                  - {event: Product Added}
            action: {channel: push, template: t1, fallback: push}
          - id: y
            when:
              any:
                - event: A
                - segment: vip
            action: {channel: push, template: t1}
          - id: z
            when:
              all:
                - event: A
                - inactivity: 1h
            action: {channel: push, template: t1}
        """,
    )
    assert [(i.line, i.message.split(":")[0]) for i in issues] == [
        (6, "the first step has no previous step"),
        (7, "missing `within`"),
        (8, "fallback is the same channel as `channel`"),
        (13, "unreachable condition"),
        (
            17,
            "an `all` can hold one behavior (event, count, absence, inactivity, dwell, sequence, trait_change, date) per branch, the rest being filters; chain behaviors with `sequence`",
        ),
    ]


def test_unknown_template(tmp_path: Path) -> None:
    issue = _one(
        tmp_path,
        """\
        triggers:
          - id: x
            when: {event: Signed Up}
            action:
              channel: email
              template: welcome_mail
        """,
    )
    assert issue.line == 6 and "unknown template 'welcome_mail'" in issue.message


def test_each_trigger_is_checked_against_its_template(tmp_path: Path) -> None:
    # given templates with push only, an unknown variable, a missing part
    templates = (tmp_path / "templates").resolve()
    templates.mkdir()
    (templates / "push_only.yaml").write_text("push: {title: a, body: b}\n")
    (templates / "bad_var.yaml").write_text(
        "inapp:\n  title: '{{ cart_items }}'\n  body: b\n  cta: c\n"
    )
    (templates / "broken.yaml").write_text("email: {subject: s, text: t}\n")
    # when triggers send them on channels they lack, or use them as they are
    issues = _issues(
        tmp_path,
        """\
        triggers:
          - id: by_email
            when: {event: A}
            action:
              template: push_only
              channel: email
          - id: with_a_fallback
            when: {event: A}
            action:
              channel: push
              template: push_only
              fallback: sms
          - id: unknown_variable
            when: {event: A}
            action:
              channel: inapp
              template: bad_var
          - id: missing_part
            when: {event: A}
            action: {channel: email, template: broken}
          - id: fine
            when: {event: A}
            action: {channel: push, template: push_only}
        """,
    )
    # then each is reported at the line of the trigger's field that is concerned
    variables = "user, traits, event, properties, cart, product, recommendations, segment, "
    variables += "unsubscribe_url, trigger, variant, app_url"
    assert [(i.file, i.line, i.message) for i in issues] == [
        (
            str(tmp_path / "triggers" / "bad.yaml"),
            line,
            message,
        )
        for line, message in [
            (
                6,
                "channel: template 'push_only' has no email section "
                f"({templates}/push_only.yaml has: push)",
            ),
            (
                12,
                "fallback: template 'push_only' has no sms section "
                f"({templates}/push_only.yaml has: push)",
            ),
            (
                17,
                f"template 'bad_var' uses 'cart_items' in inapp.title ({templates}/bad_var.yaml:2)"
                f", which is not a template variable ({variables})",
            ),
            (
                20,
                "channel: template 'broken' cannot render email.html: missing part 'html' "
                f"({templates}/broken.yaml:1)",
            ),
        ]
    ]
    # and loading checks only that the templates exist (what they hold is delivery's concern)
    assert load_triggers(tmp_path / "triggers").ids == [
        "by_email",
        "with_a_fallback",
        "unknown_variable",
        "missing_part",
        "fine",
    ]


def test_unknown_condition_kind_and_two_kinds_in_one_mapping(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path,
        """\
        triggers:
          - id: x
            when:
              all:
                - evnt: Signed Up
                - {count: {event: A, at_least: 2, within: 1h}, segment: vip}
            action: {channel: email, template: t1}
        """,
    )
    assert [i.line for i in issues] == [5, 6]
    assert (
        "a condition is a mapping with one of" in issues[0].message and "evnt" in issues[0].message
    )
    assert "one condition per mapping" in issues[1].message


def test_other_pydantic_errors_keep_their_line(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path,
        """\
        triggers:
          - id: Bad-Id
            when: {event: Signed Up}
            action: {channel: fax, template: t1}
            reeligibility: twice
          - id: no_action
            when: {event: Signed Up}
        """,
    )
    assert [(i.line, i.message.split(" ")[0]) for i in issues] == [
        (2, "id"),
        (4, "channel:"),
        (5, "reeligibility:"),
        (6, "missing"),
    ]


def test_yaml_syntax_errors_and_duplicate_keys(tmp_path: Path) -> None:
    issues = _issues(tmp_path, "triggers:\n  - id: x\n    when: [\n")
    assert len(issues) == 1 and issues[0].message.startswith("invalid YAML") and issues[0].line == 4
    issues = _issues(
        tmp_path,
        "triggers:\n  - id: x\n    when: {event: A}\n    when: {event: B}\n    action: {channel: email, template: t1}\n",
    )
    assert [(i.line, i.message) for i in issues] == [(4, "duplicate key 'when'")]


def test_not_a_trigger_file(tmp_path: Path) -> None:
    assert [i.message for i in _issues(tmp_path, "- id: x\n")] == [
        "expected a mapping with a `triggers:` list"
    ]
    assert [i.line for i in _issues(tmp_path, "trigers: []\n")] == [1]


def test_missing_path(tmp_path: Path) -> None:
    [issue] = validate_path(tmp_path / "nope")
    assert "no such file" in issue.message


def test_load_raises_with_all_errors(tmp_path: Path) -> None:
    _issues(
        tmp_path,
        "triggers:\n  - id: X\n    when: {event: A}\n    action: {channel: email, template: t2}\n",
    )
    with pytest.raises(DefinitionError) as err:
        load_triggers(tmp_path / "triggers")
    assert [e.line for e in err.value.errors] == [2, 4]  # a bad id and an unknown template
    assert str(err.value).startswith(str(tmp_path / "triggers" / "bad.yaml") + ":2: ")


def test_parse_text_without_templates() -> None:
    triggers = parse_text(GOOD.replace("t1", "anything"))
    assert triggers.ids == ["good"] and "good" in triggers and triggers.get("nope") is None
    with pytest.raises(KeyError):
        triggers.only("nope")


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (["    when:", "      date: {trait: trial_ends_at, before: 3d, after: 1d}"], 5, "not both"),
        (["    when:", "      trait_change: {from: pro}"], 5, "missing field 'trait'"),
        (["    when: {event: A}", "    exit: [{evnt: B}]"], 5, "unknown field 'evnt'"),
        (["    when: {event: A}", "    send_window: {days: [monday]}"], 5, "'mon'"),
        (["    when: {event: A}", "    lateness: soon"], 5, "bad duration"),
    ],
)
def test_the_v2_kinds_are_validated_with_their_line(
    tmp_path: Path, lines: list[str], line: int, words: str
) -> None:
    text = "\n".join(
        ["triggers:", "  - id: x", "    action: {channel: inapp, template: t1}", *lines]
    )
    issues = _issues(tmp_path, text + "\n")
    assert any(i.line == line and words in i.message for i in issues), issues
