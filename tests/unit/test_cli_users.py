"""`nudge users export USER_ID`: the export route's pages of archived events followed and
joined into one document; `--output` writes it to a file."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from nudge import cli_users
from nudge.cli import main


def pages(calls: list[str]) -> Any:
    answers = {
        "": {"user_id": "erin", "ids": ["erin"], "events": [{"n": 1}], "events_next": "c1"},
        "c1": {"user_id": "erin", "ids": ["erin"], "events": [{"n": 2}], "events_next": "c2"},
        "c2": {"user_id": "erin", "ids": ["erin"], "events": [{"n": 3}], "events_next": None},
    }

    def api_json(url: str, admin_key: str | None, **kw: Any) -> Any:
        calls.append(url)
        assert admin_key == "ak"
        cursor = url.split("?after=")[1] if "?after=" in url else ""
        return json.loads(json.dumps(answers[cursor]))

    return api_json


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_pages_are_joined_into_one_document(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli_users, "api_json", pages(calls))
    code, out, _ = run("users", "export", "erin/1", "--url", "http://n", "--admin-key", "ak")
    assert code == 0
    doc = json.loads(out)
    assert [e["n"] for e in doc["events"]] == [1, 2, 3] and doc["events_next"] is None
    assert calls == [
        "http://n/v1/users/erin%2F1/export",
        "http://n/v1/users/erin%2F1/export?after=c1",
        "http://n/v1/users/erin%2F1/export?after=c2",
    ]


def test_output_writes_the_document_to_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli_users, "api_json", pages([]))
    target = tmp_path / "erin.json"
    code, out, err = run("users", "export", "erin", "--admin-key", "ak", "-o", str(target))
    assert code == 0 and out == ""
    assert len(json.loads(target.read_text())["events"]) == 3
    assert "3 archived events" in err


def test_without_an_admin_key_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUDGE_ADMIN_KEY", raising=False)
    code, _, err = run("users", "export", "erin", "--url", "http://127.0.0.1:9")
    assert code == 2 and "admin key" in err
