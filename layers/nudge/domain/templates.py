"""Message templates: `templates/<name>.yaml`, rendered with Jinja2 in a sandbox
(docs/delivery.md).

A template file holds one section per channel it supports; a template need not define
every channel, and rendering a channel it lacks is an error:

    email:  {subject, html | html_file, text}   html_file: a file beside the YAML (name.html)
    sms:    {text}
    push:   {title, body}
    inapp:  {title, body, cta, cta_url?}        cta: the button label, cta_url: its link

Rendering rules
- Jinja2 `ImmutableSandboxedEnvironment` (a `SandboxedEnvironment` that also forbids
  mutating lists and dicts): no `__class__`-style attribute access, no unsafe calls, no
  changing the variables; an attempt is an error.
- Strict undefined: a missing variable is an error, never an empty string. A missing key
  of a dict that exists (an optional field such as `product.name` or `item.price`) may
  be tested (`{% if item.price is defined %}`, `item.name or item.product_id`), but
  printing, iterating or computing with it is an error.
- Autoescape is on for `email.html` only; subject, text, SMS, push and in-app parts are
  plain text and are not HTML-escaped.
- One-line parts (subject, title, cta, cta_url) have their whitespace collapsed; the
  others are stripped. An optional part that renders empty is None.
- Any failure (missing template or channel, YAML or Jinja syntax error, undefined
  variable, sandbox violation, a filter given a bad value) is a `TemplateRenderError`
  naming template, part and reason: delivery sends nothing and dead-letters the action.
  `TemplateStore.sending_problems` finds those that do not depend on the variables (a
  missing template or channel section, a syntax error, a variable outside the contract)
  before anything is sent, for the channels a trigger sends on (`nudge triggers validate`).

Variables (the contract; `build_variables` assembles it)
    user             {id, traits (dict), segment (str | None)}
    traits           the same dict as user.traits (shortcut)
    event            {name, properties}: the event behind the action
    properties       the same dict as event.properties (shortcut)
    cart             [{product_id, qty, name?, price?, currency?, url?, image_url?, ...}]
    product          {product_id, name?, price?, url?, ...} or None
    recommendations  [{item_id, score, name?, ...}] (may be empty)
    segment          the user's segment name ("frequent buyers", ...) or None
    unsubscribe_url  the one-click unsubscribe link (email, where it must not be empty;
                     "" on other channels)
    trigger          the trigger id
    variant          the experiment variant or None
    app_url          base URL of the shop (may be "")

Filters, besides Jinja's own (`truncate`, `length`, `format`, ...)
    money(currency=None)    89 -> "$89.00"; 1234.5|money("EUR") -> "€1,234.50"; "CHF 89.00"
    pluralize(word, plural) 1|pluralize("item") -> "item"; 2|pluralize("item") -> "items"
    first_name              traits|first_name: first_name, firstName or the first word of name, else ""
    href                    a link if it is http(s) or mailto, else "" (event properties are
                            client input: never put a `javascript:` URL in an email)
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from nudge.domain.channels import CHANNELS as DELIVERY_CHANNELS
from nudge.domain.errors import NudgeError

VARIABLES: tuple[str, ...] = (
    "user",
    "traits",
    "event",
    "properties",
    "cart",
    "product",
    "recommendations",
    "segment",
    "unsubscribe_url",
    "trigger",
    "variant",
    "app_url",
)

# channel -> (required parts, optional parts); a part name is the Rendered field it fills
CHANNEL_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "email": (("subject", "html", "text"), ()),
    "sms": (("text",), ()),
    "push": (("title", "body"), ()),
    "inapp": (("title", "body", "cta"), ("cta_url",)),
}
CHANNELS: tuple[str, ...] = DELIVERY_CHANNELS  # every channel has its parts above
HTML_PARTS = frozenset({("email", "html")})
ONE_LINE_PARTS = frozenset({"subject", "title", "cta", "cta_url"})
TOP_LEVEL_KEYS = frozenset({*CHANNELS, "description"})
YAML_SUFFIXES = (".yaml", ".yml")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")  # as trigger actions name them

MAX_REPEAT = 100_000  # longest string or list a template may build with `*`
MAX_EXPONENT = 100


class TemplateRenderError(NudgeError):
    """A template could not be rendered; nothing must be sent. Permanent: retrying the
    same action with the same template gives the same error (dead-letter it)."""

    code = "template_error"

    def __init__(self, template: str, channel: str, reason: str, part: str | None = None) -> None:
        where = f"{template}/{channel}" if channel else template
        where = f"{where}.{part}" if part else where
        super().__init__(
            f"{where}: {reason}",
            [{"template": template, "channel": channel, "part": part, "reason": reason}],
        )
        self.template = template
        self.channel = channel
        self.part = part
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rendered:
    """The rendered parts of one channel; parts the channel does not have are None."""

    subject: str | None = None
    html: str | None = None
    text: str | None = None
    title: str | None = None
    body: str | None = None
    cta: str | None = None
    cta_url: str | None = None

    def parts(self) -> dict[str, str]:
        """The parts that are set, in declaration order."""
        return {
            name: value
            for name in ("subject", "html", "text", "title", "body", "cta", "cta_url")
            if (value := getattr(self, name)) is not None
        }


def build_variables(
    *,
    user_id: str,
    traits: Mapping[str, Any],
    segment: str | None,
    trigger: str,
    event: Mapping[str, Any] | None = None,
    cart: Iterable[Mapping[str, Any]] = (),
    product: Mapping[str, Any] | None = None,
    recommendations: Iterable[Mapping[str, Any]] = (),
    unsubscribe_url: str = "",
    variant: str | None = None,
    app_url: str = "",
) -> dict[str, Any]:
    """The variables contract from its pieces, shortcuts included. `event`: {name,
    properties} (an empty event when None). Pass `unsubscribe_url` for email only."""
    traits_d = dict(traits)
    ev = dict(event) if event is not None else {}
    ev_out = {"name": ev.get("name", ""), "properties": dict(ev.get("properties") or {})}
    return {
        "user": {"id": user_id, "traits": traits_d, "segment": segment},
        "traits": traits_d,
        "event": ev_out,
        "properties": ev_out["properties"],
        "cart": [dict(item) for item in cart],
        "product": dict(product) if product is not None else None,
        "recommendations": [dict(rec) for rec in recommendations],
        "segment": segment,
        "unsubscribe_url": unsubscribe_url,
        "trigger": trigger,
        "variant": variant,
        "app_url": app_url,
    }


# ---- the Jinja environment -----------------------------------------------------------------


class _Undefined(StrictUndefined):
    """Strict, except that a missing key of an existing object may be tested (falsy,
    equal only to another undefined). A missing variable or a sandbox violation fails
    on any use."""

    __slots__ = ()

    def _testable(self) -> bool:
        return self._undefined_obj is not missing and self._undefined_exception is UndefinedError

    # override: Undefined declares these for any use; here they may raise (strict) instead
    def __bool__(self) -> bool:  # type: ignore[override]
        if self._testable():
            return False
        self._fail_with_undefined_error()

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        if self._testable():
            return isinstance(other, Undefined)
        self._fail_with_undefined_error()

    def __ne__(self, other: object) -> bool:  # type: ignore[override]
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        if self._testable():
            return hash(type(self))
        self._fail_with_undefined_error()


def _money(value: Any, currency: Any = None) -> str:
    if isinstance(value, Undefined):
        str(value)  # raises: the amount is missing
    if value is None or isinstance(value, bool):
        raise ValueError(f"money: {value!r} is not an amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"money: {value!r} is not an amount") from None
    if not amount.is_finite():
        raise ValueError(f"money: {value!r} is not an amount")
    if currency is None or isinstance(currency, Undefined) or currency == "":
        code = "USD"
    else:
        code = str(currency).strip().upper()
    symbol, places = _CURRENCIES.get(code, (f"{code} ", 2))
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    return f"{sign}{symbol}{abs(rounded):,.{places}f}"


_CURRENCIES: dict[str, tuple[str, int]] = {
    "USD": ("$", 2),
    "EUR": ("€", 2),
    "GBP": ("£", 2),
    "JPY": ("¥", 0),
    "CAD": ("CA$", 2),
    "AUD": ("A$", 2),
    "INR": ("₹", 2),
}


def _pluralize(count: Any, singular: str, plural: str | None = None) -> str:
    return singular if count == 1 else (plural if plural is not None else f"{singular}s")


def _first_name(traits: Any) -> str:
    if not isinstance(traits, Mapping):
        str(traits)  # an undefined raises
        return ""
    for key in ("first_name", "firstName"):
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name.split()[0]
    return ""


def _href(value: Any) -> str:
    if value is None or (isinstance(value, Undefined) and not value):
        return ""
    url = str(value).strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https", "mailto") else ""


FILTERS: dict[str, Callable[..., Any]] = {
    "money": _money,
    "pluralize": _pluralize,
    "first_name": _first_name,
    "href": _href,
}


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, plus limits on `*` and `**` so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right!r} is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT
                ):
                    raise SecurityError(f"repetition longer than {MAX_REPEAT} is not allowed")
        return super().call_binop(context, operator, left, right)


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        undefined=_Undefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)


# ---- loading --------------------------------------------------------------------------------


@dataclass
class _Part:
    label: str  # "cart_abandonment/email.subject"
    file: str  # where the source is (for problems)
    line: int  # line in `file` of the source's first line
    source: str = ""
    template: Template | None = None
    error: str | None = None  # why it cannot be rendered
    error_line: int | None = None
    ast: nodes.Template | None = None  # kept for validate_templates


@dataclass
class _Channel:
    parts: dict[str, _Part] = field(default_factory=dict)
    error: str | None = None  # a structural problem of the section
    error_part: str | None = None
    error_line: int = 1


@dataclass
class _Loaded:
    name: str
    file: Path
    stamp: tuple[Any, ...]
    channels: dict[str, _Channel] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # "file:line: where: message"
    error: str | None = None  # the file cannot be used at all (YAML error, not a mapping)


_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _stamp(files: Iterable[Path]) -> tuple[Any, ...]:
    out: list[Any] = []
    for f in files:
        try:
            st = f.stat()
            out.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(f), None))
    return tuple(out)


def _template_file(folder: Path, name: str) -> Path | None:
    for suffix in YAML_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _value_lines(root: yaml.Node) -> dict[tuple[str, str], int]:
    """1-based line where the text of each channel part starts, from the YAML nodes."""
    lines: dict[tuple[str, str], int] = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, section in root.value:
        lines[(str(key.value), "")] = key.start_mark.line + 1
        if not isinstance(section, yaml.MappingNode):
            continue
        for pkey, value in section.value:
            block = isinstance(value, yaml.ScalarNode) and value.style in ("|", ">")
            lines[(str(key.value), str(pkey.value))] = value.start_mark.line + 1 + int(block)
    return lines


def _duplicate_keys(root: yaml.Node, label: str) -> list[str]:
    problems: list[str] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in seen:
                    problems.append(
                        f"{label}:{key.start_mark.line + 1}: duplicate key {key.value!r}"
                    )
                if isinstance(key, yaml.ScalarNode):
                    seen.add(key.value)
                stack.append(value)
    return problems


def _compile(part: _Part, html: bool) -> None:
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        part.ast = env.parse(part.source, name=part.label, filename=part.label)
        code = env.compile(part.ast, name=part.label, filename=part.label)
        part.template = env.template_class.from_code(env, code, env.make_globals(None), None)
    except TemplateSyntaxError as exc:
        part.error_line = part.line + (exc.lineno or 1) - 1
        part.error = f"syntax error (line {part.error_line} of {part.file}): {exc.message}"
    except SecurityError as exc:
        part.error = f"sandbox: {exc}"


def _load(folder: Path, name: str) -> _Loaded:
    file = _template_file(folder, name)
    if file is None:
        raise FileNotFoundError(name)
    label = str(file)
    text = file.read_text(encoding="utf-8")
    loaded = _Loaded(name=name, file=file, stamp=())
    try:
        loader = _YamlLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        loaded.error = f"invalid YAML ({file.name}{line}): {problem}"
        loaded.problems.append(f"{label}{line}: invalid YAML: {problem}")
        loaded.stamp = _stamp([file])
        return loaded
    if not isinstance(data, dict) or root is None:
        loaded.error = f"{file.name} must be a mapping of channel sections ({', '.join(CHANNELS)})"
        loaded.problems.append(f"{label}:1: {loaded.error}")
        loaded.stamp = _stamp([file])
        return loaded
    loaded.problems.extend(_duplicate_keys(root, label))
    lines = _value_lines(root)
    watched = [file]
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            loaded.problems.append(
                f"{label}:{lines.get((str(key), ''), 1)}: unknown section {key!r} (channels: {', '.join(CHANNELS)})"
            )
    for channel in CHANNEL_PARTS:
        if channel in data:
            loaded.channels[channel] = _load_channel(
                loaded, folder, channel, data[channel], lines, watched
            )
    loaded.stamp = _stamp(watched)
    return loaded


def _load_channel(
    loaded: _Loaded,
    folder: Path,
    channel: str,
    section: Any,
    lines: Mapping[tuple[str, str], int],
    watched: list[Path],
) -> _Channel:
    """Checks one channel section and compiles its parts; problems go to `loaded`."""
    required, optional = CHANNEL_PARTS[channel]
    label, name = str(loaded.file), loaded.name
    ch = _Channel()
    line0 = lines.get((channel, ""), 1)

    def fail(reason: str, part: str | None = None, line: int = line0) -> None:
        if ch.error is None:
            ch.error, ch.error_part, ch.error_line = reason, part, line
        where = f"{channel}.{part}" if part else channel
        loaded.problems.append(f"{label}:{line}: {where}: {reason}")

    if not isinstance(section, dict):
        fail(f"must be a mapping with {', '.join(required + optional)}")
        return ch
    allowed = set(required) | set(optional) | ({"html_file"} if channel == "email" else set())
    for key in section:
        if key not in allowed:
            fail(
                f"unknown part {key!r} (parts: {', '.join(sorted(allowed))})",
                line=lines.get((channel, str(key)), line0),
            )
    if channel == "email" and "html" in section and "html_file" in section:
        fail("give html or html_file, not both", "html")
    for part_name in required + optional:
        source_key = part_name
        if channel == "email" and part_name == "html" and "html_file" in section:
            source_key = "html_file"
        if source_key not in section:
            if part_name in required:
                fail(f"missing part {part_name!r}", part_name)
            continue
        value = section[source_key]
        pline = lines.get((channel, source_key), line0)
        if not isinstance(value, str) or not value.strip():
            fail(f"{source_key} must be a non-empty string", part_name, pline)
            continue
        part = _Part(label=f"{name}/{channel}.{part_name}", file=label, line=pline, source=value)
        if source_key == "html_file":
            html_path = (folder / value).resolve()
            if Path(value).is_absolute() or not html_path.is_relative_to(folder.resolve()):
                fail(f"html_file {value!r} must be a file inside {folder}", part_name, pline)
                continue
            watched.append(html_path)
            if not html_path.is_file():
                fail(f"html_file {value!r}: no such file", part_name, pline)
                continue
            part.file, part.line = str(folder / value), 1
            part.source = html_path.read_text(encoding="utf-8")
        _compile(part, (channel, part_name) in HTML_PARTS)
        if part.error is not None:
            line = part.error_line or part.line
            loaded.problems.append(f"{part.file}:{line}: {channel}.{part_name}: {part.error}")
        ch.parts[part_name] = part
    return ch


# ---- rendering ------------------------------------------------------------------------------


def _runtime_line(exc: BaseException, label: str) -> int | None:
    """The template line an exception was raised at (Jinja rewrites the traceback so its
    frames carry the template's file name and line)."""
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == label:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _finish(part: str, value: str) -> str:
    return " ".join(value.split()) if part in ONE_LINE_PARTS else value.strip()


class TemplateStore:
    """The templates of one folder, loaded on first use and cached (reloaded when a file
    changes, so local mode picks up edits)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cache: dict[str, _Loaded] = {}

    def names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(
            {p.stem for p in self.path.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES}
        )

    def channels(self, name: str) -> tuple[str, ...]:
        """The channels template `name` defines, in CHANNELS order."""
        loaded = self._get(name, "")
        return tuple(c for c in CHANNELS if c in loaded.channels)

    def render(self, name: str, channel: str, variables: Mapping[str, Any]) -> Rendered:
        loaded = self._get(name, channel)
        if channel not in CHANNEL_PARTS:
            raise TemplateRenderError(
                name, channel, f"unknown channel (channels: {', '.join(CHANNELS)})"
            )
        ch = loaded.channels.get(channel)
        if ch is None:
            has = ", ".join(c for c in CHANNELS if c in loaded.channels) or "none"
            raise TemplateRenderError(
                name, channel, f"the template has no {channel} section (it has: {has})"
            )
        if ch.error is not None:
            raise TemplateRenderError(name, channel, ch.error, ch.error_part)
        if channel == "email" and not variables.get("unsubscribe_url"):
            # docs/delivery.md: every email carries its unsubscribe link; never send one without
            raise TemplateRenderError(
                name, channel, "unsubscribe_url is empty: an email needs its unsubscribe link"
            )
        context = dict(variables)
        out: dict[str, str | None] = {}
        for part_name, part in ch.parts.items():
            if part.error is not None or part.template is None:
                raise TemplateRenderError(name, channel, part.error or "not compiled", part_name)
            try:
                value = _finish(part_name, part.template.render(context))
            except SecurityError as exc:
                raise TemplateRenderError(
                    name, channel, self._reason(f"sandbox: {exc}", exc, part), part_name
                ) from exc
            except UndefinedError as exc:
                raise TemplateRenderError(
                    name, channel, self._reason(str(exc), exc, part), part_name
                ) from exc
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                raise TemplateRenderError(
                    name, channel, self._reason(reason, exc, part), part_name
                ) from exc
            if not value and part_name in CHANNEL_PARTS[channel][0]:
                raise TemplateRenderError(name, channel, "rendered empty", part_name)
            out[part_name] = value or None
        return Rendered(**out)

    @staticmethod
    def _reason(reason: str, exc: BaseException, part: _Part) -> str:
        line = _runtime_line(exc, part.label)
        if line is None or "\n" not in part.source.strip():
            return reason
        return f"{reason} (line {part.line + line - 1} of {part.file})"

    def sending_problems(self, name: str, channels: Iterable[str]) -> list[SendingProblem]:
        """What would stop template `name` from being sent on each of `channels` (a
        trigger's channel and fallback), found before anything is sent: the template is
        missing or does not load, a channel has no section or a broken one, or a part of
        it uses a variable outside the contract. An empty list: it can be sent."""
        if not NAME_RE.match(name):
            return [_missing(self.path, name, "a template name is lowercase a-z, 0-9, _ and -")]
        try:
            loaded = self._cached(name)
        except FileNotFoundError:
            return [_missing(self.path, name)]
        except (OSError, UnicodeDecodeError) as exc:
            return [_unusable(name, self.path / f"{name}.yaml", f"cannot read: {exc}")]
        return _sending_problems(loaded, channels)

    def _cached(self, name: str) -> _Loaded:
        """The loaded template, reloaded when a file changed. Raises FileNotFoundError
        when there is no such template, OSError when it cannot be read."""
        cached = self._cache.get(name)
        if cached is not None and _stamp(Path(s[0]) for s in cached.stamp) == cached.stamp:
            return cached
        try:
            loaded = _load(self.path, name)
        except FileNotFoundError:
            self._cache.pop(name, None)
            raise
        self._cache[name] = loaded
        return loaded

    def _get(self, name: str, channel: str) -> _Loaded:
        if not NAME_RE.match(name):
            raise TemplateRenderError(
                name, channel, "a template name is lowercase a-z, 0-9, _ and - (no path)"
            )
        try:
            loaded = self._cached(name)
        except FileNotFoundError:
            raise TemplateRenderError(
                name, channel, f"no template {self.path / name}.yaml"
            ) from None
        except OSError as exc:
            raise TemplateRenderError(name, channel, f"cannot read: {exc}") from exc
        if loaded.error is not None:
            raise TemplateRenderError(name, channel, loaded.error)
        return loaded


# ---- validation -----------------------------------------------------------------------------


def _unknown_variables(part: _Part, channel: str, part_name: str) -> list[str]:
    """The names a part uses that are neither template variables nor Jinja globals."""
    env = _HTML_ENV if (channel, part_name) in HTML_PARTS else _TEXT_ENV
    ast = part.ast if part.ast is not None else env.parse(part.source)
    # a name set only in some branches ({% if %}{% set x = 1 %}{% endif %}) counts as
    # undeclared for Jinja; any name the template assigns is the template's own
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    names = meta.find_undeclared_variables(ast) - assigned
    return sorted(names - set(VARIABLES) - set(env.globals))


def _undeclared(part: _Part, channel: str, part_name: str) -> list[str]:
    return [
        f"{part.file}:{part.line}: {channel}.{part_name}: uses {n!r}, which is not a template "
        f"variable ({', '.join(VARIABLES)})"
        for n in _unknown_variables(part, channel, part_name)
    ]


SendingKind = Literal[
    "missing_template", "unusable_template", "missing_section", "broken_section", "unknown_variable"
]


@dataclass(frozen=True, slots=True)
class SendingProblem:
    """Why a template cannot be sent on a channel. `channel`: the section concerned (None:
    the whole template); `file` and `line`: where in the template (the file it would be,
    when missing); `message` names the template and its file."""

    kind: SendingKind
    template: str
    channel: str | None
    file: str
    line: int
    message: str


def _missing(folder: Path, name: str, reason: str | None = None) -> SendingProblem:
    file = f"{folder / name}.yaml"
    message = f"unknown template '{name}': {reason or f'no {file}'}"
    return SendingProblem("missing_template", name, None, file, 1, message)


def _unusable(name: str, file: Path, reason: str) -> SendingProblem:
    message = f"template '{name}' cannot be used: {reason} ({file})"
    return SendingProblem("unusable_template", name, None, str(file), 1, message)


def _section_problems(loaded: _Loaded, channel: str) -> list[SendingProblem]:
    """What stops the template's `channel` section from rendering: there is none, it is
    broken (the first structural problem, each part that does not compile), or a part
    uses an unknown variable."""
    name, file = loaded.name, str(loaded.file)
    ch = loaded.channels.get(channel)
    if ch is None:
        has = ", ".join(c for c in CHANNELS if c in loaded.channels) or "no channel"
        message = f"template '{name}' has no {channel} section ({file} has: {has})"
        return [SendingProblem("missing_section", name, channel, file, 1, message)]
    broken = [(ch.error_part, ch.error, file, ch.error_line)] if ch.error is not None else []
    broken += [
        (part_name, part.error, part.file, part.error_line or part.line)
        for part_name, part in ch.parts.items()
        if part.error is not None
    ]
    out: list[SendingProblem] = []
    for part_name, reason, at, line in broken:
        where = f"{channel}.{part_name}" if part_name else channel
        message = f"template '{name}' cannot render {where}: {reason} ({at}:{line})"
        out.append(SendingProblem("broken_section", name, channel, at, line, message))
    for part_name, part in ch.parts.items():
        for var in _unknown_variables(part, channel, part_name) if part.template else ():
            message = (
                f"template '{name}' uses {var!r} in {channel}.{part_name} ({part.file}:"
                f"{part.line}), which is not a template variable ({', '.join(VARIABLES)})"
            )
            out.append(
                SendingProblem("unknown_variable", name, channel, part.file, part.line, message)
            )
    return out


def _sending_problems(loaded: _Loaded, channels: Iterable[str]) -> list[SendingProblem]:
    """What would stop a loaded template from being sent on each of `channels`: it does
    not load (invalid YAML, not a mapping), a channel has no section, or a broken one
    (a missing part, a syntax error), or a part of it uses a variable outside the
    contract. The template's other sections are not looked at."""
    if loaded.error is not None:
        return [_unusable(loaded.name, loaded.file, loaded.error)]
    return [p for channel in dict.fromkeys(channels) for p in _section_problems(loaded, channel)]


def validate_templates(
    path: str | Path, *, required_channels: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    """Problems of a templates folder (or one template file), as `file:line: message`:
    YAML and Jinja syntax errors, unknown or missing sections and parts, missing
    html_file, and variables outside the contract. `required_channels`: template name ->
    channels something sends it on (the triggers' action channel and fallback); a
    template or section missing for one of them is a problem. An empty list: all is well."""
    path = Path(path)
    if path.is_file():
        folder, names = path.parent, [path.stem]
    elif path.is_dir():
        folder, names = path, TemplateStore(path).names()
    else:
        return [f"{path}: no such file or folder"]
    problems: list[str] = []
    defined: dict[str, _Loaded] = {}
    for name in names:
        if not NAME_RE.match(name):
            problems.append(f"{folder / name}: template names are lowercase a-z, 0-9, _ and -")
            continue
        suffixes = [s for s in YAML_SUFFIXES if (folder / f"{name}{s}").is_file()]
        if len(suffixes) > 1:
            problems.append(f"{folder / name}: both {' and '.join(suffixes)} exist; keep one")
        try:
            loaded = _load(folder, name)
        except OSError as exc:
            problems.append(f"{folder / name}: cannot read: {exc}")
            continue
        problems.extend(loaded.problems)
        defined[name] = loaded
        for channel, ch in loaded.channels.items():
            for part_name, part in ch.parts.items():
                if part.template is not None:
                    problems.extend(_undeclared(part, channel, part_name))
    for name, channels in sorted((required_channels or {}).items()):
        if path.is_file() and name != path.stem:
            continue
        if name not in defined:
            problems.append(f"{folder / name}.yaml: missing (a trigger sends it)")
            continue
        # the rest of what stops sending (broken sections, variables) is reported above
        for p in _sending_problems(defined[name], sorted(set(channels))):
            if p.kind == "missing_section":
                problems.append(
                    f"{p.file}:{p.line}: no {p.channel} section, but a trigger sends this "
                    f"template by {p.channel}"
                )
    return problems
