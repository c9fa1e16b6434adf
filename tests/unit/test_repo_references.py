"""The repository stands alone: no tracked file points outside it (issue 13 part 4).

A clone has only what is tracked. The team's working notes (the product brief, style and
session notes, kept beside the repository) are not in it, so README, docs, code and
comments cite the pages under docs/ instead. This fails when such a reference comes back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so this file does not match itself.
OUTSIDE = re.compile(
    "|".join(
        [
            re.escape("../" + "shared"),
            r"\b" + "SP" + r"EC\b",  # the brief, by name or by section (§)
            re.escape("NOTES" + ".md"),
            re.escape("STYLE" + ".md"),
        ]
    )
)
DOCS_PAGE = re.compile(r"\bdocs/[\w.-]+\.(?:md|json)\b")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_points_outside_the_repository():
    found = []
    for path in tracked_files():
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "references to files outside the repository:\n" + "\n".join(found)


def test_every_docs_page_a_file_names_exists():
    """What replaced those references: `docs/<page>` in code and comments, and the
    relative links of README.md and docs/*.md, all resolve."""
    missing = []
    for path in tracked_files():
        if not path.is_file() or path.suffix not in {".py", ".md", ".yaml", ".toml", ".html"}:
            continue
        text = path.read_text(encoding="utf-8")
        named = set(DOCS_PAGE.findall(text))
        if path.suffix == ".md":
            named |= {
                str((path.parent / link.split("#")[0]).resolve().relative_to(ROOT))
                for link in MD_LINK.findall(text)
                if not re.match(r"[a-z]+:", link) and not link.startswith("#")
            }
        missing += [
            f"{path.relative_to(ROOT)}: {n}" for n in sorted(named) if not (ROOT / n).exists()
        ]
    assert not missing, "\n".join(missing)


def test_the_pattern_catches_what_it_is_for():
    for line in (
        "see " + "../" + "shared/x",
        "(" + "SP" + "EC §5)",
        "SP" + "EC asks for 24 h",
        "NOTES" + ".md",
        "per " + "STYLE" + ".md",
    ):
        assert OUTSIDE.search(line), line
    assert not OUTSIDE.search("the OpenAPI specification; SPECIAL offers")
