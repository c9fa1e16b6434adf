"""The `nudge` CLI as a whole: every command and every option has a help text, the
commands and options of the public contract are there, a usage error is one line and
exit status 2, and the Lambda side never needs typer or rich."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from nudge import cli
from nudge.cli_templates import Channel
from nudge.domain.templates import CHANNELS

from infra import bundling

ROOT = Path(__file__).resolve().parents[2]
NUDGE = Path(sys.executable).parent / "nudge"

# The README's command table: the commands and the options scripts rely on
CONTRACT = {
    ("dev",): {"--port", "--aws-port", "--write-key", "--admin-key"},
    ("triggers", "validate"): {"--templates"},
    ("triggers", "backtest"): {
        "--events",
        "--archive",
        "--url",
        "--stack",
        "--since",
        "--trigger",
        "--json",
    },
    ("replay",): {"--url", "--write-key", "--import"},
    ("bench",): {"--json", "--quick", "--events", "--users", "--local-events", "--local-users"},
    ("sql",): {"--url", "--stack", "--since", "--json", "--engine", "--refresh"},
    ("templates", "render"): {"--user", "--channel", "--templates", "--json"},
    ("templates", "validate"): {"--triggers"},
    ("openapi",): {"--check", "--output"},
    ("report", "experiment"): {"--url", "--json"},
    ("report", "triggers"): {"--days", "--url", "--json"},
    ("recs", "evaluate"): {"--interactions", "--k", "--json"},
    ("users", "export"): {"--url", "--admin-key", "--output"},
}


def commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) of every command of the tree, groups included."""
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += commands(sub, (*path, name))
    return found


TREE = commands(cli.command())


@pytest.mark.parametrize(("path", "command"), TREE, ids=[" ".join(p) or "nudge" for p, _ in TREE])
def test_every_command_and_every_parameter_has_a_help_text(
    path: tuple[str, ...], command: Any
) -> None:
    assert (command.help or "").strip(), f"nudge {' '.join(path)} has no help"
    for param in command.params:
        assert (getattr(param, "help", None) or "").strip(), (
            f"nudge {' '.join(path)}: {param.opts} has no help"
        )


@pytest.mark.parametrize("path", sorted(CONTRACT), ids=[" ".join(p) for p in sorted(CONTRACT)])
def test_the_contract_s_commands_and_options_exist(path: tuple[str, ...]) -> None:
    tree = dict(TREE)
    assert path in tree, f"no command nudge {' '.join(path)}"
    options = {opt for param in tree[path].params for opt in param.opts}
    assert CONTRACT[path] <= options, CONTRACT[path] - options


@pytest.mark.parametrize(
    "path", [p for p, _ in TREE], ids=[" ".join(p) or "nudge" for p, _ in TREE]
)
def test_every_help_renders(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and f"nudge {' '.join(path)}".strip() in out


def test_the_channel_choices_are_the_template_channels() -> None:
    assert set(get_args(Channel)) == set(CHANNELS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay"], "Missing argument"),
        (["replay", "x.jsonl", "--nope"], "No such option: --nope"),
        (["bench", "--events", "many"], "'--events'"),
        (["sql", "select 1", "--engine", "sqlite"], "sqlite"),
        (["nope"], "No such command"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert message in captured.err and "--help" in captured.err


def test_bare_groups_print_their_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["triggers"]) == 2
    out = capsys.readouterr().out
    assert "validate" in out and "backtest" in out


def test_the_installed_script_runs_the_same_app() -> None:
    proc = subprocess.run(
        [str(NUDGE), "replay", str(ROOT / "no-such-file.jsonl"), "--write-key", "k"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: cannot read {ROOT / 'no-such-file.jsonl'}: No such file or directory"
    ]


# ---- the Lambda side ------------------------------------------------------------------------
CLI_MODULES = {"cli.py", "cli_output.py", "bench.py", "replay.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _cli_only(name: str) -> bool:
    top = name.split(".")[0]
    return top in {"typer", "rich", "click"} or any(
        name == f"nudge.{m[:-3]}" or name.startswith(f"nudge.{m[:-3]}.")
        for m in CLI_MODULES | {p.name for p in (ROOT / "layers" / "nudge").glob("cli_*.py")}
    )


def test_no_handler_and_no_core_module_imports_the_cli() -> None:
    package = ROOT / "layers" / "nudge"
    cli_files = CLI_MODULES | {p.name for p in package.glob("cli_*.py")}
    sources = [
        p for p in package.rglob("*.py") if not (p.parent == package and p.name in cli_files)
    ]
    sources += list((ROOT / "functions").rglob("*.py"))
    offenders = {
        str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if _cli_only(n)) for p in sources
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_typer_and_rich_stay_out_of_the_lambda_layer() -> None:
    shipped = {bundling.canonical_name(r) for r in bundling.layer_requirements()}
    assert not shipped & {"typer", "rich", "click"}
