"""Message templates: the shipped templates render for every channel they define, HTML is
escaped and text is not, a missing variable or a sandbox escape is a TemplateRenderError
naming template, part and reason, and `nudge templates render|validate` work."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from nudge.cli import main
from nudge.domain.errors import NudgeError
from nudge.domain.templates import (
    CHANNEL_PARTS,
    Rendered,
    TemplateRenderError,
    TemplateStore,
    build_variables,
    validate_templates,
)
from nudge.domain.triggers.loader import load_triggers

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
UNSUBSCRIBE = "https://api.example/v1/unsubscribe?token=t0k&channel=email"


def sample(**overrides: Any) -> dict[str, Any]:
    variables = build_variables(
        user_id="u1",
        traits={"email": "ada@example.com", "first_name": "Ada"},
        segment="frequent buyers",
        trigger="cart_abandonment",
        event={"name": "Product Added", "properties": {"product_id": "p1", "name": "Trail Shoe"}},
        cart=[
            {
                "product_id": "p1",
                "name": "Trail Shoe",
                "price": 89,
                "qty": 2,
                "url": "https://shop.example/p1",
            },
            {"product_id": "p2", "name": "Wool Socks", "price": "12.5", "qty": 1},
        ],
        product={
            "product_id": "p1",
            "name": "Trail Shoe",
            "price": 89,
            "url": "https://shop.example/p1",
        },
        recommendations=[{"item_id": "p9", "name": "Rain Jacket", "score": 0.9}],
        unsubscribe_url=UNSUBSCRIBE,
        variant="reminder",
        app_url="https://shop.example",
    )
    variables.update(overrides)
    return variables


@pytest.fixture(scope="module")
def store() -> TemplateStore:
    return TemplateStore(TEMPLATES)


def write(folder: Path, name: str, text: str) -> TemplateStore:
    (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return TemplateStore(folder)


# ---- what ships -----------------------------------------------------------------------------
def test_the_shipped_templates_validate_against_the_default_triggers() -> None:
    required: dict[str, set[str]] = {}
    for t in load_triggers(ROOT / "triggers", templates_dir=TEMPLATES):
        required.setdefault(t.action.template, set()).update(
            c for c in (t.action.channel, t.action.fallback) if c
        )
    assert validate_templates(TEMPLATES, required_channels=required) == []
    assert required["repeat_product_view"] == {"push", "inapp"}


def test_the_shipped_templates_can_be_sent_as_the_default_triggers_send_them(
    store: TemplateStore,
) -> None:
    for t in load_triggers(ROOT / "triggers", templates_dir=TEMPLATES):
        channels = [c for c in (t.action.channel, t.action.fallback) if c]
        assert store.sending_problems(t.action.template, channels) == [], t.id


SHIPPED = [
    (name, channel)
    for name in TemplateStore(TEMPLATES).names()
    for channel in TemplateStore(TEMPLATES).channels(name)
]


@pytest.mark.parametrize(("name", "channel"), SHIPPED, ids=[f"{n}/{c}" for n, c in SHIPPED])
@pytest.mark.parametrize("segment", ["frequent buyers", None])
def test_each_shipped_template_renders_every_channel_it_defines(
    store: TemplateStore, name: str, channel: str, segment: str | None
) -> None:
    rendered = store.render(name, channel, sample(segment=segment, trigger=name))
    required, _ = CHANNEL_PARTS[channel]
    for part in required:
        value = getattr(rendered, part)
        assert value and value.strip() == value, part
    assert rendered.subject is None or "\n" not in rendered.subject


def test_shipped_templates_render_with_the_bare_minimum(store: TemplateStore) -> None:
    # given a user with no traits, one unnamed cart item, no product, no recommendations
    bare = build_variables(
        user_id="u2",
        traits={},
        segment=None,
        trigger="t",
        cart=[{"product_id": "p7", "qty": 1}],
        unsubscribe_url=UNSUBSCRIBE,
    )
    # then every channel still renders (optional fields are guarded)
    for name, channel in SHIPPED:
        store.render(name, channel, bare)
    assert store.render("cart_abandonment", "email", bare).subject == "You left p7 in your cart"


def test_every_shipped_yaml_documents_the_variables() -> None:
    for file in TEMPLATES.glob("*.yaml"):
        header = file.read_text(encoding="utf-8")
        for variable in ("unsubscribe_url", "recommendations", "segment", "app_url"):
            assert variable in header, (file.name, variable)


# ---- cart abandonment -------------------------------------------------------------------------
def test_cart_email_names_the_product_and_lists_every_item_with_its_price(
    store: TemplateStore,
) -> None:
    email = store.render("cart_abandonment", "email", sample())
    assert email.subject == "Ada, you left Trail Shoe and 1 more item in your cart"
    for part in (email.html, email.text):
        assert part is not None
        assert "Trail Shoe" in part and "$89.00" in part
        assert "Wool Socks" in part and "$12.50" in part
        assert "You may also like" in part and "Rain Jacket" in part
        assert "https://shop.example/cart" in part
    assert f'href="{UNSUBSCRIBE.replace("&", "&amp;")}"' in (email.html or "")
    assert UNSUBSCRIBE in (email.text or "")


def test_cart_email_leaves_out_recommendations_when_there_are_none(store: TemplateStore) -> None:
    email = store.render("cart_abandonment", "email", sample(recommendations=[]))
    assert "You may also like" not in (email.html or "") + (email.text or "")


def test_recommendations_without_a_name_are_left_out(store: TemplateStore) -> None:
    recs = [{"item_id": "p9", "score": 0.9}, {"item_id": "p8", "name": "Rain Jacket", "score": 0.5}]
    email = store.render("cart_abandonment", "email", sample(recommendations=recs))
    assert "Rain Jacket" in (email.text or "") and "p9" not in (email.text or "")
    email = store.render("cart_abandonment", "email", sample(recommendations=recs[:1]))
    assert "You may also like" not in (email.html or "") + (email.text or "")


def test_html_is_escaped_and_the_text_parts_are_not(store: TemplateStore) -> None:
    evil = "<script>alert(1)</script>"
    cart = [{"product_id": "p1", "name": evil, "price": 5, "qty": 1}]
    email = store.render("cart_abandonment", "email", sample(cart=cart))
    assert evil not in (email.html or "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (email.html or "")
    assert evil in (email.text or "") and evil in (email.subject or "")
    assert evil in (store.render("cart_abandonment", "inapp", sample(cart=cart)).body or "")


def test_a_javascript_url_never_becomes_a_link(store: TemplateStore) -> None:
    cart = [{"product_id": "p1", "name": "Shoe", "qty": 1, "url": "javascript:alert(1)"}]
    email = store.render("cart_abandonment", "email", sample(cart=cart, app_url=""))
    assert "javascript:" not in (email.html or "") + (email.text or "")


# ---- win-back by segment ------------------------------------------------------------------------
def test_winback_copy_differs_by_segment(store: TemplateStore) -> None:
    segments = ["frequent buyers", "cart abandoners", "casual browsers", None]
    emails = [store.render("inactivity_winback", "email", sample(segment=s)) for s in segments]
    assert len({e.subject for e in emails}) == 4
    assert len({e.text for e in emails}) == 4
    assert len({e.html for e in emails}) == 4
    assert "regulars" in (emails[0].text or "")
    unknown = store.render("inactivity_winback", "email", sample(segment="night owls"))
    assert unknown.text == emails[3].text  # an unnamed segment gets the default copy


# ---- errors -------------------------------------------------------------------------------------
def test_a_missing_variable_names_template_part_and_variable(store: TemplateStore) -> None:
    variables = sample()
    del variables["cart"]
    with pytest.raises(TemplateRenderError) as err:
        store.render("cart_abandonment", "email", variables)
    assert str(err.value) == "cart_abandonment/email.subject: 'cart' is undefined"
    assert (err.value.template, err.value.channel, err.value.part) == (
        "cart_abandonment",
        "email",
        "subject",
    )
    assert isinstance(err.value, NudgeError) and err.value.code == "template_error"


def test_an_optional_field_may_be_tested_but_not_printed(tmp_path: Path) -> None:
    store = write(
        tmp_path,
        "t",
        """
        sms:
          text: "{{ product.name or product.product_id }}"
        push:
          title: "x"
          body: |
            first line
            {{ product.name }}
        """,
    )
    assert store.render("t", "sms", sample(product={"product_id": "p1"})).text == "p1"
    with pytest.raises(
        TemplateRenderError, match=r"^t/push\.body: .*'name'.*\(line 8 of .*t\.yaml\)$"
    ):
        store.render("t", "push", sample(product={"product_id": "p1"}))


def test_a_missing_variable_fails_even_in_a_condition(tmp_path: Path) -> None:
    store = write(tmp_path, "t", 'sms: {text: "{% if nope %}a{% else %}b{% endif %}"}\n')
    with pytest.raises(TemplateRenderError, match="'nope' is undefined"):
        store.render("t", "sms", sample())


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "cart.__class__.__subclasses__()",
        "traits.update({'email': 'x'})",
        "cart.append(1)",
        "'a' * 1000000000",
        "range(10 ** 9)|list|length",
    ],
)
def test_the_sandbox_refuses_escapes_and_mutation(tmp_path: Path, expression: str) -> None:
    store = write(tmp_path, "t", f'sms:\n  text: "{{{{ {expression} }}}}"\n')
    with pytest.raises(TemplateRenderError) as err:
        store.render("t", "sms", sample())
    assert str(err.value).startswith("t/sms.text: ")


def test_a_dunder_access_is_reported_as_a_sandbox_violation(tmp_path: Path) -> None:
    store = write(tmp_path, "t", "sms:\n  text: \"{{ ''.__class__.__mro__ }}\"\n")
    with pytest.raises(TemplateRenderError, match=r"t/sms\.text: sandbox: .*'__class__'.*unsafe"):
        store.render("t", "sms", sample())


def test_missing_template_channel_and_bad_names_are_errors(store: TemplateStore) -> None:
    with pytest.raises(TemplateRenderError, match=r"^nope/email: no template "):
        store.render("nope", "email", sample())
    with pytest.raises(TemplateRenderError, match=r"no sms section \(it has: email, push, inapp\)"):
        store.render("cart_abandonment", "sms", sample())
    with pytest.raises(TemplateRenderError, match="no path"):
        store.render("../triggers/default", "email", sample())


def test_a_required_part_that_renders_empty_is_an_error(tmp_path: Path) -> None:
    store = write(tmp_path, "t", "push: {title: '{% if cart %}{% endif %}', body: b}\n")
    with pytest.raises(TemplateRenderError, match=r"^t/push\.title: rendered empty$"):
        store.render("t", "push", sample())


def test_an_email_without_its_unsubscribe_link_is_refused(store: TemplateStore) -> None:
    with pytest.raises(TemplateRenderError, match="unsubscribe_url is empty"):
        store.render("cart_abandonment", "email", sample(unsubscribe_url=""))
    store.render("cart_abandonment", "inapp", sample(unsubscribe_url=""))


def test_a_syntax_error_is_reported_with_its_file_line(tmp_path: Path) -> None:
    store = write(
        tmp_path,
        "t",
        """
        inapp:
          title: ok
          body: |
            fine
            {% if %}
          cta: Go
        push: {title: a, body: b}
        """,
    )
    problems = validate_templates(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 't.yaml'}:6: inapp.body: ")
    with pytest.raises(TemplateRenderError, match=r"^t/inapp\.body: syntax error"):
        store.render("t", "inapp", sample())
    assert store.render("t", "push", sample()).body == "b"  # another channel still works


def test_validate_reports_structure_variables_and_missing_channels(tmp_path: Path) -> None:
    write(
        tmp_path,
        "t",
        """
        email:
          subjet: "{{ cart_items }}"
          text: "{{ cart_items }}"
        pigeon: {text: hi}
        sms:
          text: "{% set n = cart|length %}{{ n }} {{ count }}"
        """,
    )
    problems = "\n".join(
        validate_templates(tmp_path, required_channels={"t": {"push"}, "u": {"email"}})
    )
    assert "unknown part 'subjet'" in problems
    assert "missing part 'subject'" in problems and "missing part 'html'" in problems
    assert "unknown section 'pigeon'" in problems
    assert "uses 'cart_items'" in problems and "uses 'count'" in problems
    assert "uses 'n'" not in problems
    assert "no push section" in problems and "u.yaml: missing" in problems


def test_what_stops_a_template_from_being_sent_on_channels(tmp_path: Path) -> None:
    # given a template with push only, one using an unknown variable, one missing a part
    write(tmp_path, "push_only", "push: {title: a, body: b}\n")
    write(tmp_path, "bad_var", "inapp:\n  title: '{{ cart_items }}'\n  body: b\n  cta: c\n")
    write(tmp_path, "broken", "email: {subject: s, text: t}\n")
    write(tmp_path, "unparsable", "email: [\n")
    store = TemplateStore(tmp_path)

    def kinds(name: str, *channels: str) -> list[tuple[str, str | None, str, int]]:
        return [
            (p.kind, p.channel, Path(p.file).name, p.line)
            for p in store.sending_problems(name, channels)
        ]

    # then
    assert kinds("push_only", "push") == []
    assert kinds("nope", "push") == [("missing_template", None, "nope.yaml", 1)]
    assert kinds("push_only", "push", "inapp") == [
        ("missing_section", "inapp", "push_only.yaml", 1)
    ]
    assert kinds("push_only", "email", "sms") == [
        ("missing_section", "email", "push_only.yaml", 1),
        ("missing_section", "sms", "push_only.yaml", 1),
    ]
    assert kinds("bad_var", "inapp") == [("unknown_variable", "inapp", "bad_var.yaml", 2)]
    assert kinds("broken", "email") == [("broken_section", "email", "broken.yaml", 1)]
    assert kinds("unparsable", "email") == [("unusable_template", None, "unparsable.yaml", 1)]
    [path] = store.sending_problems("../x", ["email"])
    assert path.kind == "missing_template" and "lowercase a-z, 0-9, _ and -" in path.message
    # and each message names the template and its file
    [missing] = store.sending_problems("push_only", ["inapp"])
    assert missing.message == (
        f"template 'push_only' has no inapp section ({tmp_path / 'push_only.yaml'} has: push)"
    )
    [variable] = store.sending_problems("bad_var", ["inapp"])
    assert variable.message.startswith(
        f"template 'bad_var' uses 'cart_items' in inapp.title ({tmp_path / 'bad_var.yaml'}:2), "
        "which is not a template variable (user, traits, "
    )
    [broken] = store.sending_problems("broken", ["email"])
    assert broken.message == (
        "template 'broken' cannot render email.html: missing part 'html' "
        f"({tmp_path / 'broken.yaml'}:1)"
    )
    assert store.sending_problems("nope", ["email"])[0].message == (
        f"unknown template 'nope': no {tmp_path / 'nope.yaml'}"
    )


def test_an_html_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    store = write(tmp_path / "sub", "t", "email: {subject: s, text: t, html_file: ../x.html}\n")
    (tmp_path / "x.html").write_text("<p>x</p>")
    with pytest.raises(
        TemplateRenderError, match=r"t/email\.html: html_file '\.\./x\.html' must be"
    ):
        store.render("t", "email", sample())


def test_a_changed_file_is_reloaded(tmp_path: Path) -> None:
    store = write(tmp_path, "t", "sms: {text: one}\n")
    assert store.render("t", "sms", sample()).text == "one"
    write(tmp_path, "t", "sms: {text: two, two: 2}\n")
    with pytest.raises(TemplateRenderError, match="unknown part 'two'"):
        store.render("t", "sms", sample())


# ---- rendering details ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("89|money", "$89.00"),
        ("'12.5'|money", "$12.50"),
        ("1234.5|money('EUR')", "€1,234.50"),
        ("1999|money('jpy')", "¥1,999"),
        ("(0 - 5)|money('CHF')", "-CHF 5.00"),
        ("2|pluralize('item')", "items"),
        ("1|pluralize('box', 'boxes')", "box"),
        ("{'name': 'Ada Lovelace'}|first_name", "Ada"),
        ("{'firstName': 'Grace'}|first_name", "Grace"),
        ("'mailto:a@b.c'|href", "mailto:a@b.c"),
        ("' javascript:x'|href", ""),
    ],
)
def test_filters(tmp_path: Path, expression: str, expected: str) -> None:
    store = write(tmp_path, "t", "sms:\n  text: " + json.dumps("[{{ " + expression + " }}]") + "\n")
    assert store.render("t", "sms", sample()).text == f"[{expected}]"


def test_money_refuses_what_is_not_an_amount(tmp_path: Path) -> None:
    store = write(tmp_path, "t", "sms: {text: \"{{ 'lots'|money }}\"}\n")
    with pytest.raises(TemplateRenderError, match=r"t/sms\.text: ValueError: money: 'lots'"):
        store.render("t", "sms", sample())


def test_one_line_parts_are_collapsed_and_empty_optional_parts_are_none(tmp_path: Path) -> None:
    store = write(
        tmp_path,
        "t",
        """
        inapp:
          title: |
            Hello
              there
          body: "  b  "
          cta: Go
          cta_url: "{{ product.url|href }}"
        """,
    )
    rendered = store.render("t", "inapp", sample(product={"product_id": "p"}))
    assert rendered == Rendered(title="Hello there", body="b", cta="Go", cta_url=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rendered.title = "x"  # type: ignore[misc]


# ---- CLI ------------------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> int:
    return main(argv)


def test_cli_render_prints_every_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = tmp_path / "user.json"
    user.write_text(json.dumps(sample()))
    assert (
        run_cli(
            [
                "templates",
                "render",
                "cart_abandonment",
                "--user",
                str(user),
                "--templates",
                str(TEMPLATES),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "subject: Ada, you left Trail Shoe and 1 more item in your cart" in out
    assert "=== cart_abandonment / inapp ===" in out and "=== cart_abandonment / push ===" in out


def test_cli_render_accepts_a_user_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = {
        "user_id": "u1",
        "traits": {"email": "ada@example.com"},
        "segment": "casual browsers",
        "cart": [{"product_id": "p1", "name": "Trail Shoe", "price": 89, "qty": 1}],
    }
    user = tmp_path / "profile.json"
    user.write_text(json.dumps(profile))
    argv = ["templates", "render", "cart_abandonment", "--user", str(user), "--channel", "email"]
    assert run_cli([*argv, "--templates", str(TEMPLATES), "--json"]) == 0
    email = json.loads(capsys.readouterr().out)["channels"]["email"]
    assert email["subject"] == "You left Trail Shoe in your cart"


def test_cli_render_exits_1_on_a_missing_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    variables = sample()
    del variables["cart"]
    user = tmp_path / "user.json"
    user.write_text(json.dumps(variables))
    assert (
        run_cli(
            [
                "templates",
                "render",
                "cart_abandonment",
                "--user",
                str(user),
                "--templates",
                str(TEMPLATES),
            ]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "cart_abandonment/email.subject: 'cart' is undefined" in captured.err
    assert captured.out == ""


def test_cli_render_exits_2_on_an_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = tmp_path / "user.json"
    user.write_text("[1, 2]")
    assert run_cli(["templates", "render", "cart_abandonment", "--user", str(user)]) == 2
    assert (
        run_cli(["templates", "render", "cart_abandonment", "--user", str(tmp_path / "no.json")])
        == 2
    )


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "good", "sms: {text: '{{ cart|length }} in your cart'}\n")
    assert run_cli(["templates", "validate", str(tmp_path), "--triggers", "none"]) == 0
    assert capsys.readouterr().out == "ok: 1 template: good (sms)\n"
    write(tmp_path, "bad", "sms: {text: '{{ x'}\n")
    assert run_cli(["templates", "validate", str(tmp_path), "--triggers", "none"]) == 1
    assert "bad.yaml:1: sms.text: syntax error" in capsys.readouterr().out


def test_cli_validate_checks_the_channels_the_triggers_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a trigger that sends `t` by push with an in-app fallback, and `t` with push only
    (tmp_path / "triggers").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "triggers" / "t.yaml").write_text(
        textwrap.dedent(
            """
            triggers:
              - id: t
                when: {event: Product Viewed}
                action: {channel: push, template: t, fallback: inapp}
            """
        )
    )
    write(tmp_path / "templates", "t", "push: {title: a, body: b}\n")
    argv = ["templates", "validate", str(tmp_path / "templates")]
    assert run_cli([*argv, "--triggers", str(tmp_path / "triggers")]) == 1
    assert "no inapp section, but a trigger sends this template by inapp" in capsys.readouterr().out
