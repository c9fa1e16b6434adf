"""What the Lambda functions import, the deps layer must ship (docs/decisions.md D29).

scipy and numpy are the package's `stats` extra, not in the deps layer (with them every
function would be within 1.5 MiB of Lambda's 250 MiB). This fails as soon as a handler
reaches them, through any chain of `nudge` imports, so that the route that needs them
comes with the layer D29 proposes instead of an ImportError on AWS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers"
NOT_IN_THE_LAYER = {"scipy", "numpy", "sklearn", "statsmodels", "pandas"}
# The train function carries the train layer instead of deps (D36): scikit-learn, numpy
# and scipy, and no duckdb
NOT_IN_ITS_LAYER = {"train": {"duckdb", "statsmodels", "pandas"}}


def _imports(path: Path) -> set[str]:
    """Every module an import statement of the file names (function bodies included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _source(module: str) -> Path | None:
    base = PACKAGE.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reached(handler: Path) -> dict[str, str]:
    """Third-party top-level names reachable from a handler -> the module importing it."""
    seen: set[Path] = set()
    found: dict[str, str] = {}
    todo = [(handler, "handler")]
    while todo:
        path, name = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path):
            top = module.split(".")[0]
            if top == "nudge":
                parts = module.split(".")
                # the module itself and its parent packages (whose __init__ runs first)
                for i in range(1, len(parts) + 1):
                    source = _source(".".join(parts[:i]))
                    if source is not None:
                        todo.append((source, ".".join(parts[:i])))
            else:
                found.setdefault(top, name)
    return found


HANDLERS = sorted((ROOT / "functions").glob("*/handler.py"))


@pytest.mark.parametrize("handler", HANDLERS, ids=[h.parent.name for h in HANDLERS])
def test_no_lambda_function_imports_what_the_deps_layer_leaves_out(handler):
    reached = _reached(handler)
    assert "nudge" not in reached
    left_out = NOT_IN_ITS_LAYER.get(handler.parent.name, NOT_IN_THE_LAYER)
    wrong = {top: by for top, by in reached.items() if top in left_out}
    assert not wrong, f"{handler.parent.name} reaches {wrong}: see docs/decisions.md D29, D36"


def test_the_train_function_reaches_scikit_learn_and_never_duckdb():
    reached = _reached(ROOT / "functions" / "train" / "handler.py")
    assert {"sklearn", "numpy"} <= set(reached)
    assert "duckdb" not in reached


def test_the_walk_finds_scipy_behind_the_statistics_module():
    assert _reached(PACKAGE / "nudge" / "domain" / "stats.py")["scipy"] == "handler"
    assert HANDLERS, "no handler found under functions/"
