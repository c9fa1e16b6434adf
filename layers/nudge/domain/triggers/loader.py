"""Loads `triggers/*.yaml` into a TriggerSet, or reports every problem as `file:line:
message`, the line being that of the offending YAML node.

The YAML is composed into nodes (which carry their marks), turned into plain data while
recording the line of every key and value by path, validated with the pydantic models of
model.py one trigger at a time (so one bad trigger does not hide the others' problems),
and pydantic's error locations are mapped back to lines.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from pydantic import BaseModel, ValidationError

from nudge import constants as C
from nudge.domain.errors import NudgeError
from nudge.domain.triggers.model import (
    CONDITION_KINDS,
    OPERATORS,
    TAG,
    TEMPLATE_RE,
    Experiment,
    Loc,
    Trigger,
    check_structure,
)

if TYPE_CHECKING:  # the templates (and Jinja) are imported only when triggers are validated
    from nudge.domain.templates import SendingProblem

YAML_SUFFIXES = (".yaml", ".yml")
MAX_DEPTH = 64


@dataclass(frozen=True, order=True)
class DefinitionIssue:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class DefinitionError(NudgeError):
    """Invalid trigger definitions; `.errors` lists each problem with its file and line."""

    code = "invalid_definitions"

    def __init__(self, errors: list[DefinitionIssue]) -> None:
        self.errors = sorted(errors)
        super().__init__(
            "\n".join(str(e) for e in self.errors),
            [{"file": e.file, "line": e.line, "message": e.message} for e in self.errors],
        )


class TriggerSet:
    """The loaded triggers, in file order; iterable, with lookup by id."""

    def __init__(
        self, triggers: Iterable[Trigger], sources: Mapping[str, tuple[str, int]] | None = None
    ) -> None:
        self._triggers = list(triggers)
        self._by_id = {t.id: t for t in self._triggers}
        if len(self._by_id) != len(self._triggers):
            raise ValueError("duplicate trigger ids")
        self._sources = dict(sources or {})

    def __iter__(self) -> Iterator[Trigger]:
        return iter(self._triggers)

    def __len__(self) -> int:
        return len(self._triggers)

    def __contains__(self, trigger_id: object) -> bool:
        return trigger_id in self._by_id

    def get(self, trigger_id: str) -> Trigger | None:
        return self._by_id.get(trigger_id)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self._triggers]

    def experiment(self, experiment_id: str) -> Experiment | None:
        """The experiment of that id, on whichever trigger carries it."""
        return next(
            (
                t.experiment
                for t in self._triggers
                if t.experiment is not None and t.experiment.id == experiment_id
            ),
            None,
        )

    def source(self, trigger_id: str) -> tuple[str, int] | None:
        """(file, line) where the trigger is defined, when loaded from YAML."""
        return self._sources.get(trigger_id)

    def only(self, *trigger_ids: str) -> TriggerSet:
        missing = [i for i in trigger_ids if i not in self._by_id]
        if missing:
            raise KeyError(
                f"unknown trigger {', '.join(missing)}; known: {', '.join(self.ids) or '(none)'}"
            )
        keep = [t for t in self._triggers if t.id in trigger_ids]
        return TriggerSet(keep, {t.id: self._sources[t.id] for t in keep if t.id in self._sources})


# ---- YAML with lines -------------------------------------------------------------------------
class _Lines:
    """(key line, value line) by path, 1-based."""

    def __init__(self) -> None:
        self.at: dict[Loc, tuple[int, int]] = {}

    def line(self, loc: Loc, *, key: bool = False) -> int:
        clean = clean_loc(loc)
        for n in range(len(clean), -1, -1):
            hit = self.at.get(clean[:n])
            if hit is not None:
                return hit[0] if key and n == len(clean) else hit[1]
        return 1


def clean_loc(loc: Iterable[Any]) -> Loc:
    """A pydantic error location without the union tags."""
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith(TAG)))


def _compose(text: str, file: str, issues: list[DefinitionIssue]) -> tuple[Any, _Lines]:
    lines = _Lines()
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, lines
        lines.at[()] = (root.start_mark.line + 1, root.start_mark.line + 1)
        return _build(loader, root, (), lines, file, issues, 0), lines
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(p for p in (err.context, err.problem) if p)
        issues.append(DefinitionIssue(file, line, f"invalid YAML: {problem or err}"))
        return None, lines
    except yaml.YAMLError as err:
        issues.append(DefinitionIssue(file, 1, f"invalid YAML: {err}"))
        return None, lines
    finally:
        loader.dispose()


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    loc: Loc,
    lines: _Lines,
    file: str,
    issues: list[DefinitionIssue],
    depth: int,
) -> Any:
    if depth > MAX_DEPTH:
        issues.append(
            DefinitionIssue(
                file, node.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels"
            )
        )
        return None
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key: Any = key_node.value  # a plain string: `on:` or `no:` stay names
            else:
                issues.append(
                    DefinitionIssue(
                        file, key_node.start_mark.line + 1, "a key must be a plain name"
                    )
                )
                continue
            key_line = key_node.start_mark.line + 1
            if key in out:
                issues.append(DefinitionIssue(file, key_line, f"duplicate key '{key}'"))
            sub = (*loc, key)
            lines.at[sub] = (key_line, value_node.start_mark.line + 1)
            out[key] = _build(loader, value_node, sub, lines, file, issues, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            sub = (*loc, i)
            lines.at[sub] = (item.start_mark.line + 1, item.start_mark.line + 1)
            items.append(_build(loader, item, sub, lines, file, issues, depth + 1))
        return items
    return loader.construct_object(node, deep=True)


# ---- messages ------------------------------------------------------------------------------
def _known_fields() -> set[str]:
    seen: set[str] = set()
    todo: list[type[BaseModel]] = [Trigger]
    names: set[str] = set()
    while todo:
        model = todo.pop()
        if model.__name__ in seen:
            continue
        seen.add(model.__name__)
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
        for sub in _submodels(model):
            todo.append(sub)
    return names


def _submodels(model: type[BaseModel]) -> list[type[BaseModel]]:
    from nudge.domain.triggers import model as m

    return [
        obj
        for obj in vars(m).values()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not model
    ]


_FIELDS: set[str] | None = None


def _suggest(name: str) -> str:
    global _FIELDS
    if _FIELDS is None:
        _FIELDS = _known_fields()
    close = difflib.get_close_matches(str(name), sorted(_FIELDS), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _message(err: Any) -> tuple[str, bool]:
    """(message, whether it points at the key rather than the value)."""
    raw = tuple(err["loc"])
    loc = clean_loc(raw)
    name = str(loc[-1]) if loc and isinstance(loc[-1], str) else ""
    kind, msg = err["type"], str(err["msg"])
    if kind == "value_error":  # ours: they say what is wrong
        return msg.removeprefix("Value error, "), False
    if kind == "extra_forbidden":
        if (len(loc) >= 3 and loc[-3] in ("where", "trait")) or (
            len(loc) >= 2 and loc[-2] == "segment"
        ):
            return f"unknown property operator '{name}' (use {', '.join(OPERATORS)})", True
        if name in CONDITION_KINDS and len(raw) >= 2 and str(raw[-2]).startswith(TAG):
            other = str(raw[-2])[len(TAG) :]
            return (
                f"one condition per mapping: '{name}' next to '{other}'; combine conditions with `all` or `any`",
                True,
            )
        return f"unknown field '{name}'{_suggest(name)}", True
    if kind == "missing":
        return f"missing field '{name}'", False
    if kind == "condition":
        found = err.get("input")
        keys = (
            f" (found: {', '.join(map(str, found))})" if isinstance(found, dict) and found else ""
        )
        return msg + keys, False
    if name == "reeligibility" and kind == "literal_error":
        return "reeligibility: use every_time, once or {once_per: <duration>}", False
    return (f"{name}: {msg}" if name else msg), False


# ---- parsing ----------------------------------------------------------------------------------
@dataclass
class _Parsed:
    triggers: list[Trigger]
    sources: dict[str, tuple[str, int]]
    issues: list[DefinitionIssue]


class TemplateChecker(Protocol):
    """What stops a template from being sent on channels (`TemplateStore` is one)."""

    def sending_problems(self, name: str, channels: Iterable[str]) -> list[SendingProblem]: ...


@dataclass
class _Context:
    """What the triggers of every source are checked against, and the result so far."""

    known_templates: set[str] | None
    templates_label: str
    checker: TemplateChecker | None
    out: _Parsed = field(default_factory=lambda: _Parsed([], {}, []))
    first_seen: dict[str, tuple[str, int]] = field(default_factory=dict)


def parse_sources(
    sources: Iterable[tuple[str, str]],
    *,
    templates: Iterable[str] | None = None,
    templates_label: str = "templates",
    checker: TemplateChecker | None = None,
) -> _Parsed:
    """Validates (file label, YAML text) pairs. `templates`: the template names that exist
    (None: not checked). `checker`: checks each valid trigger's template for its channel
    and fallback (None: not checked)."""
    ctx = _Context(None if templates is None else set(templates), templates_label, checker)
    for file, text in sources:
        found = _trigger_items(file, text, ctx.out.issues)
        if found is not None:
            items, lines = found
            for i, item in enumerate(items):
                _parse_trigger(item, ("triggers", i), file, lines, ctx)
    ctx.out.issues.sort()
    return ctx.out


def _trigger_items(
    file: str, text: str, issues: list[DefinitionIssue]
) -> tuple[list[Any], _Lines] | None:
    """The items of the file's `triggers:` list and the lines of its nodes; None when
    there are none (the file's problems go to `issues`)."""
    data, lines = _compose(text, file, issues)
    if data is None:
        return None
    if not isinstance(data, dict):
        issues.append(
            DefinitionIssue(file, lines.line(()), "expected a mapping with a `triggers:` list")
        )
        return None
    for key in data:
        if key != "triggers":
            issues.append(
                DefinitionIssue(
                    file, lines.line((key,), key=True), f"unknown field '{key}'{_suggest(key)}"
                )
            )
    items = data.get("triggers")
    if items is None:
        return None
    if not isinstance(items, list):
        issues.append(
            DefinitionIssue(
                file, lines.line(("triggers",)), "`triggers` must be a list of triggers"
            )
        )
        return None
    return items, lines


def _parse_trigger(item: Any, base: Loc, file: str, lines: _Lines, ctx: _Context) -> None:
    """Validates one item of a `triggers:` list; adds the trigger to `ctx.out` when it has
    no problem, else its problems."""
    if not _claim_id(item, base, file, lines, ctx):
        return
    problems = _unknown_template(item, base, ctx)
    trigger = _validate_model(item, base, file, lines, ctx.out.issues)
    if trigger is not None:
        problems.extend(check_structure(trigger, base))
        if not problems and ctx.checker is not None:
            problems.extend(_template_problems(trigger, base, ctx.checker))
    for loc, message in problems:
        ctx.out.issues.append(DefinitionIssue(file, lines.line(loc), message))
    if trigger is not None and not problems:
        ctx.out.triggers.append(trigger)
        ctx.out.sources[trigger.id] = (file, lines.line(base))


def _claim_id(item: Any, base: Loc, file: str, lines: _Lines, ctx: _Context) -> bool:
    """Records where the item's id is first defined; False (and an issue) for a duplicate."""
    raw_id = item.get("id") if isinstance(item, dict) else None
    if not isinstance(raw_id, str):
        return True
    id_line = lines.line((*base, "id"))
    where = ctx.first_seen.get(raw_id)
    if where is not None:
        ctx.out.issues.append(
            DefinitionIssue(
                file, id_line, f"duplicate id '{raw_id}' (first defined at {where[0]}:{where[1]})"
            )
        )
        return False
    ctx.first_seen[raw_id] = (file, id_line)
    return True


def _unknown_template(item: Any, base: Loc, ctx: _Context) -> list[tuple[Loc, str]]:
    """The action's template when it is not among the known ones (checked before the
    model, so that it is reported next to the trigger's other problems)."""
    if not isinstance(item, dict):
        return []
    places: list[tuple[Loc, Any]] = []
    action = item.get("action")
    if isinstance(action, dict):
        places.append(((*base, "action", "template"), action.get("template")))
    experiment = item.get("experiment")
    variants = experiment.get("variants") if isinstance(experiment, dict) else None
    for i, variant in enumerate(variants if isinstance(variants, list) else []):
        if isinstance(variant, dict) and "template" in variant:
            places.append(((*base, "experiment", "variants", i, "template"), variant["template"]))
    return [
        (loc, f"unknown template '{template}': no {ctx.templates_label}/{template}.yaml")
        for loc, template in places
        if ctx.known_templates is not None
        and isinstance(template, str)
        and TEMPLATE_RE.match(template)
        and template not in ctx.known_templates
    ]


def _validate_model(
    item: Any, base: Loc, file: str, lines: _Lines, issues: list[DefinitionIssue]
) -> Trigger | None:
    """The item as a Trigger, or None with pydantic's errors (located) in `issues`."""
    try:
        return Trigger.model_validate(item)
    except ValidationError as err:
        for e in err.errors():
            message, at_key = _message(e)
            issues.append(
                DefinitionIssue(file, lines.line((*base, *e["loc"]), key=at_key), message)
            )
        return None


def _template_problems(
    trigger: Trigger, base: Loc, checker: TemplateChecker
) -> list[tuple[Loc, str]]:
    """What stops the trigger's template from being sent on the action's channel and
    fallback, each at the `channel:` or `fallback:` line when it is about that channel's
    section, else at the `template:` line."""
    action = trigger.action
    fields: dict[str, str] = {action.channel: "channel"}
    if action.fallback is not None:
        fields.setdefault(action.fallback, "fallback")
    out: list[tuple[Loc, str]] = []
    for problem in checker.sending_problems(action.template, fields):
        name = fields.get(problem.channel or "")
        if problem.kind in ("missing_section", "broken_section") and name is not None:
            out.append(((*base, "action", name), f"{name}: {problem.message}"))
        else:
            out.append(((*base, "action", "template"), problem.message))
    experiment = trigger.experiment
    for i, v in enumerate(experiment.variants if experiment is not None else []):
        if v.holdout or (v.template is None and v.channel is None):
            continue
        at = (*base, "experiment", "variants", i, "template" if v.template else "channel")
        channel = v.channel or action.channel
        for problem in checker.sending_problems(v.template or action.template, [channel]):
            out.append((at, f"variant {v.name}: {problem.message}"))
    return out


def parse_text(
    text: str, file: str = "<text>", *, templates: Iterable[str] | None = None
) -> TriggerSet:
    """Triggers from one YAML text (tests, tools); raises DefinitionError."""
    parsed = parse_sources([(file, text)], templates=templates)
    if parsed.issues:
        raise DefinitionError(parsed.issues)
    return TriggerSet(parsed.triggers, parsed.sources)


def trigger_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)
    return [path]


def default_templates_dir(path: Path) -> Path:
    """The templates/ folder beside the triggers folder (the repository's templates/)."""
    folder = path if path.is_dir() else path.parent
    return folder.resolve().parent / "templates"


def template_names(templates_dir: Path) -> set[str] | None:
    if not templates_dir.is_dir():
        return None
    return {p.stem for p in templates_dir.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES}


def _load(
    path: str | Path, templates_dir: Path | None, *, check_templates: bool = False
) -> _Parsed:
    path = Path(path)
    if not path.exists():
        return _Parsed([], {}, [DefinitionIssue(str(path), 1, "no such file or directory")])
    files = trigger_files(path)
    sources = []
    issues = []
    for file in files:
        try:
            sources.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as err:
            issues.append(DefinitionIssue(str(file), 1, f"cannot read: {err}"))
    tdir = templates_dir if templates_dir is not None else default_templates_dir(path)
    names = template_names(tdir)
    checker = None
    if check_templates and names is not None:
        from nudge.domain.templates import TemplateStore

        checker = TemplateStore(tdir)
    parsed = parse_sources(
        sources,
        templates=names if names is not None else set(),
        templates_label=str(tdir),
        checker=checker,
    )
    parsed.issues = sorted(issues + parsed.issues)
    return parsed


def load_triggers(path: str | Path, *, templates_dir: Path | None = None) -> TriggerSet:
    """Loads a trigger file or every *.yaml of a folder; raises DefinitionError. Checks
    that each trigger's template exists (not what is in it: see validate_path)."""
    parsed = _load(path, templates_dir)
    if parsed.issues:
        raise DefinitionError(parsed.issues)
    return TriggerSet(parsed.triggers, parsed.sources)


def validate_path(path: str | Path, *, templates_dir: Path | None = None) -> list[DefinitionIssue]:
    """Every problem of a trigger file or folder (`nudge triggers validate`): what
    load_triggers reports, and each trigger checked against its template in
    `templates_dir` (default: templates/ beside the triggers), which must have a section
    for the action's channel and for its fallback, sections that render, and only the
    template variables."""
    return _load(path, templates_dir, check_templates=True).issues


def default_triggers_path(environ: Mapping[str, str] | None = None) -> Path:
    """NUDGE_TRIGGERS_PATH when set, else ./triggers."""
    env = os.environ if environ is None else environ
    return Path(env.get(C.ENV_TRIGGERS_PATH) or "triggers")
