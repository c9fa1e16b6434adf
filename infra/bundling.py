"""Builds the two Lambda layer folders on this machine, without Docker.

- core: ``layers/nudge`` as ``python/nudge``, plus the user-edited definitions
  (``triggers/``, ``templates/``, ``config/``) and the OpenAPI document
  (``docs/openapi.json``) as ``nudge-config/...``, so that they are at
  ``/opt/nudge-config/...`` at run time;
- deps: ``[project].dependencies`` of pyproject.toml minus the AWS SDK (the Lambda
  runtime has it), installed for the Lambda platform (arm64, CPython ``PYTHON_VERSION``)
  from binary wheels only;
- train: the train function's only third-party layer: the same minus duckdb, plus the
  ``train`` extra (scikit-learn with numpy and scipy), their ``tests/`` folders pruned
  (docs/decisions.md D36).

Both are content-addressed folders under ``build/layers/`` (``core-<hash>``,
``deps-<hash>``): a folder is built once into a temporary name and renamed into place,
so repeated synths reuse it and concurrent synths (pytest-xdist) cannot see half a
layer. The deps hash covers the requirement list and the target platform, so a change
to pyproject.toml rebuilds it; the core hash covers every file copied.

Run ``python -m infra.bundling`` to build both and print their paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "layers"

PYTHON_VERSION = "3.12"  # must match the Lambda runtime chosen in infra/constructs/function.py
PLATFORM = "manylinux2014_aarch64"  # functions run on ARM_64 (Graviton)
# The Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): wheels built for glibc 2.28
# run there too, and some packages (duckdb >= 1.3) publish no manylinux2014 aarch64 wheel.
PLATFORMS = (PLATFORM, "manylinux_2_28_aarch64")
IMPLEMENTATION = "cp"

# In the Lambda Python runtime already; a copy in the layer would shadow it for nothing.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
# The train function's layer (build_train_layer): without duckdb, whose 63 MB would take
# it over Lambda's 250 MiB with scikit-learn, numpy and scipy; their tests/ pruned.
TRAIN_LEAVES_OUT = frozenset({"duckdb"})
PRUNED_TESTS = ("numpy", "scipy", "sklearn")
CONFIG_DIRS = ("triggers", "templates", "config", "tracking-plan")
OPENAPI_FILE = "openapi.json"  # docs/openapi.json, served by the api function
_SKIP_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".DS_Store"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
_BUILDER_VERSION = "1"  # bump to invalidate every cached layer
_STALE_AFTER_S = 24 * 3600


class LayerBuildError(RuntimeError):
    """A layer folder could not be built (pip failed, or a source folder is missing)."""


def canonical_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise LayerBuildError(f"cannot read a package name in requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def layer_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The runtime dependencies the deps layer ships, in pyproject order."""
    with pyproject.open("rb") as f:
        deps: list[str] = tomllib.load(f)["project"]["dependencies"]
    return [d for d in deps if canonical_name(d) not in RUNTIME_PROVIDED]


def _files(base: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_NAMES and not d.endswith(".egg-info")
        )
        for name in sorted(filenames):
            if name in _SKIP_NAMES or name.endswith(_SKIP_SUFFIXES):
                continue
            yield Path(dirpath) / name


def _core_sources(root: Path) -> list[tuple[Path, Path]]:
    """(source file, path inside the layer) pairs of the core layer."""
    package = root / "layers" / "nudge"
    if not (package / "__init__.py").is_file():
        raise LayerBuildError(f"{package} is not a Python package: cannot build the core layer")
    pairs = [(f, Path("python") / "nudge" / f.relative_to(package)) for f in _files(package)]
    for name in CONFIG_DIRS:
        folder = root / name
        if folder.is_dir():
            pairs += [
                (f, Path("nudge-config") / name / f.relative_to(folder)) for f in _files(folder)
            ]
    openapi = root / "docs" / OPENAPI_FILE
    if not openapi.is_file():
        raise LayerBuildError(f"{openapi} is missing: run `make openapi` to generate it")
    pairs.append((openapi, Path("nudge-config") / OPENAPI_FILE))
    return pairs


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def _publish(tmp: Path, final: Path) -> Path:
    """Moves a finished build into place; whoever renames first wins a race."""
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise
    return final


def _prune_stale(prefix: str, keep: Path, out: Path) -> None:
    now = time.time()
    for old in out.glob(f"{prefix}-*"):
        if old != keep and old.is_dir() and now - old.stat().st_mtime > _STALE_AFTER_S:
            shutil.rmtree(old, ignore_errors=True)


def build_core_layer(root: Path = ROOT, out: Path = BUILD_DIR) -> Path:
    pairs = _core_sources(root)
    key = _digest(
        [_BUILDER_VERSION.encode()]
        + [p for src, dst in pairs for p in (dst.as_posix().encode(), src.read_bytes())]
    )
    final = out / f"core-{key}"
    if final.is_dir():
        return final
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".core-", dir=out))
    for src, dst in pairs:
        target = tmp / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    for name in CONFIG_DIRS:  # the folders exist at run time even when empty
        (tmp / "nudge-config" / name).mkdir(parents=True, exist_ok=True)
    _prune_stale("core", final, out)
    return _publish(tmp, final)


def build_deps_layer(root: Path = ROOT, out: Path = BUILD_DIR) -> Path:
    return _build_pip_layer("deps", layer_requirements(root / "pyproject.toml"), out=out)


def train_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What the train function's layer ships: the runtime dependencies but duckdb (the
    train function reads the archive's objects with boto3), plus the `train` extra
    (scikit-learn, and numpy and scipy with it)."""
    with pyproject.open("rb") as f:
        extra: list[str] = tomllib.load(f)["project"]["optional-dependencies"]["train"]
    runtime = [
        d for d in layer_requirements(pyproject) if canonical_name(d) not in TRAIN_LEAVES_OUT
    ]
    return runtime + extra


def build_train_layer(root: Path = ROOT, out: Path = BUILD_DIR) -> Path:
    """The train function's one third-party layer (it carries no deps layer): see
    train_requirements; the test suites of PRUNED_TESTS' packages are left out (about
    33 MB of numpy's, scipy's and scikit-learn's `tests/` folders, never imported)."""
    return _build_pip_layer(
        "train", train_requirements(root / "pyproject.toml"), out=out, prune_tests=PRUNED_TESTS
    )


def _prune_tests(site: Path, packages: Iterable[str]) -> None:
    for package in packages:
        base = site / package
        if not base.is_dir():
            continue
        for folder in sorted(base.rglob("tests"), key=lambda p: len(p.parts)):
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)


def _build_pip_layer(
    prefix: str,
    requirements: list[str],
    *,
    out: Path,
    prune_tests: tuple[str, ...] = (),
) -> Path:
    spec: dict[str, object] = {
        "builder": _BUILDER_VERSION,
        "requirements": requirements,
        "python": PYTHON_VERSION,
        "platform": list(PLATFORMS),
        "implementation": IMPLEMENTATION,
        "pruned": sorted(RUNTIME_PROVIDED),
    }
    if prune_tests:
        spec["pruned_tests"] = list(prune_tests)
    key = _digest([json.dumps(spec, sort_keys=True).encode()])
    final = out / f"{prefix}-{key}"
    if final.is_dir():
        return final
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=out))
    target = tmp / "python"
    cmd = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target),
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "--only-binary=:all:",
        "--python-version", PYTHON_VERSION,
        "--implementation", IMPLEMENTATION,
        *requirements,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LayerBuildError(
            f"Could not build the Lambda {prefix} layer: `pip install` for "
            f"{'/'.join(PLATFORMS)} / CPython {PYTHON_VERSION} failed (exit {proc.returncode}). "
            "It needs to download wheels from the package index: check that PyPI is "
            "reachable (or that pip's configured index is), then synth again.\n"
            f"command: {' '.join(cmd)}\n{proc.stderr.strip()[-4000:]}"
        )
    # Transitive dependencies (pynamodb, aws-xray-sdk -> botocore) bring the SDK back in;
    # console scripts (bin/) are of no use in a layer.
    for entry in target.iterdir():
        top = entry.name.split("-")[0] if entry.name.endswith(".dist-info") else entry.name
        if top in RUNTIME_PROVIDED or entry.name == "bin":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    _prune_tests(target, prune_tests)
    _prune_stale(prefix, final, out)
    return _publish(tmp, final)


if __name__ == "__main__":
    print(build_core_layer())
    print(build_deps_layer())
    print(build_train_layer())
