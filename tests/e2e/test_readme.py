"""README.md's walk-through, run as it is written (issue 13 part 3).

The rule that makes the README runnable by a test: the shell blocks of the walk-through
are marked with an HTML comment on the line before their fence.

- `<!-- walkthrough: env -->` marks the one block that sets `NUDGE_URL`, `WRITE_KEY` and
  `ADMIN_KEY` (the URL of local mode and the keys `make run` printed). The test does not
  run it: it sets the same three variables in the environment, to the local mode it
  started on free ports and the keys that local mode printed.
- `<!-- walkthrough -->` marks a block the test runs as written, in order, each with
  `bash` under `set -euo pipefail`, from the repository's root, with `.venv/bin` first on
  PATH. Every block must succeed; a few key outputs are checked.

Local mode runs as `nudge dev` in a subprocess, as `make run` starts it (not in-process as
the other e2e tests' LocalMode: that one holds process-wide environment and clock for the
whole session). Nothing of the test process's environment that could steer a command
(AWS_*, NUDGE_*, POWERTOOLS_*) reaches the blocks: the README's own commands must set
what they need (the AWS CLI step its dummy credentials and endpoint).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import free_port_pair

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV_BIN = ROOT / ".venv" / "bin"
ENV_NAMES = ("NUDGE_URL", "WRITE_KEY", "ADMIN_KEY")
DEFAULT_TRIGGERS = (
    "cart_abandonment",
    "inactivity_winback",
    "repeat_product_view",
    "product_dwell_upsell",
)
BLOCK = re.compile(
    r"^<!-- walkthrough(?P<env>: env)? -->\n```(?:bash|sh)\n(?P<body>.*?)^```$", re.M | re.S
)
PATH_TOKEN = re.compile(r"^[\w.-]+(?:/[\w.-]+)+(?:/|\.\w+)$")
START_TIMEOUT_S = 90
BLOCK_TIMEOUT_S = 180


@dataclass(frozen=True)
class Block:
    line: int
    body: str
    env: bool

    @property
    def name(self) -> str:
        first = next(x for x in self.body.splitlines() if x.strip() and not x.startswith("#"))
        return f"README.md:{self.line}: {first.strip()[:60]}"


def walkthrough_blocks(text: str) -> list[Block]:
    return [
        Block(
            line=text.count("\n", 0, m.start()) + 2,
            body=m.group("body"),
            env=bool(m.group("env")),
        )
        for m in BLOCK.finditer(text)
    ]


BLOCKS = walkthrough_blocks(README.read_text(encoding="utf-8"))
RUN_BLOCKS = [b for b in BLOCKS if not b.env]


def json_values(text: str) -> list[Any]:
    """The JSON values printed one after another (curl prints no newline between them)."""
    decoder = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        value, i = decoder.raw_decode(text, i)
        out.append(value)


def table_row(text: str, first_cell: str) -> list[str]:
    for row in text.splitlines():
        cells = row.split()
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{text}")


def uses_aws_cli(block: Block) -> bool:
    return any(re.match(r"\s*aws\s", x) for x in block.body.splitlines())


# ---- the rule itself ------------------------------------------------------------------
def test_the_walkthrough_is_marked_and_its_env_block_sets_exactly_the_documented_names():
    env_blocks = [b for b in BLOCKS if b.env]
    assert len(env_blocks) == 1, "one `<!-- walkthrough: env -->` block"
    assert BLOCKS[0].env, "the env block comes first"
    assigned = re.findall(r"^export (\w+)=", env_blocks[0].body, re.M)
    assert tuple(assigned) == ENV_NAMES
    assert len(RUN_BLOCKS) >= 5


def test_walkthrough_blocks_hold_no_port_and_no_absolute_clock():
    """Any port and any day: the URL comes from NUDGE_URL, AWS's endpoint from
    /_local/aws, and the clock moves by durations (a fixed date is a 409 once passed)."""
    for block in RUN_BLOCKS:
        assert not re.search(r"(127\.0\.0\.1|localhost):\d+", block.body), block.name
        assert '"set"' not in block.body, block.name


def test_every_file_the_readme_names_exists():
    text = README.read_text(encoding="utf-8")
    named = {link.split("#")[0] for link in re.findall(r"\]\(([^)\s]+)\)", text)}
    named = {n for n in named if n and not re.match(r"\w+:", n)}  # not http:, mailto:
    named |= {t for t in re.findall(r"`([^`\n]+)`", text) if PATH_TOKEN.match(t)}
    for block in BLOCKS:
        named |= {
            t
            for t in re.split(r"[\s'\"=]+", block.body)
            if PATH_TOKEN.match(t) and not t.startswith(".venv/")
        }
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, f"README.md names files that do not exist: {missing}"


# ---- running it ----------------------------------------------------------------------
def clean_env(**extra: str) -> dict[str, str]:
    steering = ("AWS_", "NUDGE_", "POWERTOOLS_", "JSII_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(steering)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@dataclass
class Walkthrough:
    url: str
    write_key: str
    admin_key: str
    env: dict[str, str]
    log: list[str] = field(default_factory=list)  # what `nudge dev` printed (its logs)
    results: dict[int, subprocess.CompletedProcess[str] | str] = field(default_factory=dict)

    def run_through(self, index: int) -> subprocess.CompletedProcess[str]:
        """Runs the blocks up to `index` in order (once each) and returns its result."""
        for i in range(index + 1):
            if i not in self.results:
                self.results[i] = self._run(RUN_BLOCKS[i])
            earlier = self.results[i]
            failed = isinstance(earlier, subprocess.CompletedProcess) and earlier.returncode
            if i < index and failed:
                pytest.fail(f"an earlier block failed: {RUN_BLOCKS[i].name}")
        result = self.results[index]
        if isinstance(result, str):
            pytest.skip(result)
        return result

    def _run(self, block: Block) -> subprocess.CompletedProcess[str] | str:
        if uses_aws_cli(block) and shutil.which("aws", path=self.env["PATH"]) is None:
            return "the AWS CLI (`aws`) is not installed here: this block alone is skipped"
        return subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block.body],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walkthrough]:
    port = free_port_pair()
    cache = tmp_path_factory.mktemp("archive-cache")
    env = clean_env(NUDGE_ARCHIVE_CACHE_DIR=str(cache))
    proc = subprocess.Popen(
        [str(VENV_BIN / "nudge"), "dev", "--port", str(port), "--aws-port", str(port + 1)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    printed_lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            printed_lines.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    printed: dict[str, str] = {}
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while "admin" not in printed:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"nudge dev printed no keys in {START_TIMEOUT_S} s:\n{''.join(seen)}")
            if line is None:
                pytest.fail(f"nudge dev exited:\n{''.join(seen)}")
            seen.append(line)
            if m := re.match(r"nudge local mode on (\S+)", line):
                printed["url"] = m.group(1)
            if m := re.match(r"\s+(write|admin) key : (\S+)", line):
                printed[m.group(1)] = m.group(2)
        assert printed.get("url") == f"http://127.0.0.1:{port}"
        yield Walkthrough(
            url=printed["url"],
            write_key=printed["write"],
            admin_key=printed["admin"],
            env={
                **env,
                "NUDGE_URL": printed["url"],
                "WRITE_KEY": printed["write"],
                "ADMIN_KEY": printed["admin"],
            },
            log=printed_lines,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- what a few blocks must show, found by the command that makes them worth reading ----
def check_first_events(out: str, w: Walkthrough) -> None:
    *answers, profile = json_values(out)
    assert answers == [{"success": True}] * 3 + [{"settled": True}]
    assert profile["user_id"] == "u1"
    assert profile["traits"]["email"] == "ada@example.com"
    assert profile["event_counts"] == {"Page Viewed": 1, "Product Added": 1, "Product Viewed": 1}
    assert profile["cart"][0]["name"] == "Trail Shoe"


def check_clock(out: str, w: Walkthrough) -> None:
    _moved, outbox, first, _moved_again, later = json_values(out)
    # (u1's last page, p2's, may also count a dwell: the batch's page and product view
    # are stamped when received, in either order)
    (cart,) = [d for d in first["deliveries"] if d["trigger"] == "cart_abandonment"]
    assert cart["status"] in {"sent", "deferred"}  # deferred: at night in London
    emails = [m for m in outbox["messages"] if m["trigger"] == "cart_abandonment"]
    if cart["status"] == "sent":
        assert "Trail Shoe" in emails[0]["subject"]
    by_trigger = {d["trigger"]: d["status"] for d in later["deliveries"]}
    assert by_trigger["cart_abandonment"] == "sent"  # a deferral ends within two days
    assert by_trigger["inactivity_winback"] in {"sent", "deferred"}


def check_aws(out: str, w: Walkthrough) -> None:
    tables, item = json_values(out[: out.rindex("}") + 1])
    assert "nudge-profiles" in tables["TableNames"]
    assert item["Item"]["user_id"] == {"S": "u1"}
    assert "nudge-archive-" in out  # s3 ls


def check_replay(out: str, w: Walkthrough) -> None:
    lines = (ROOT / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    sent, _moved, profile = json_values(out)
    assert (sent["sent"], sent["rejected"]) == (len(lines), 0)
    assert profile["user_id"] == "user_009"
    counts = profile["event_counts"]
    assert counts.get("Order Completed", 0) >= 1, json.dumps(profile, indent=1)[:3000]
    assert profile["triggers"]["cart_abandonment"]["fired"] >= 1
    # what the README says of a replay of last week: counted, and nothing sent
    outbox = requests.get(f"{w.url}/_local/outbox", timeout=30).json()["messages"]
    assert {m["user_id"] for m in outbox} <= {"u1"}


def check_backtest_file(out: str, w: Walkthrough) -> None:
    for trigger in DEFAULT_TRIGGERS:
        fires = int(table_row(out, trigger)[3])
        assert fires > 0, f"{trigger} never fires on examples/events.jsonl"


def check_archive(out: str, w: Walkthrough) -> None:
    assert "Order Completed" in out
    orders = sum(
        1
        for line in (ROOT / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines()
        if json.loads(line).get("event") == "Order Completed"
    )
    answer = json.loads(next(x for x in out.splitlines() if x.startswith('{"columns"')))
    assert answer["rows"][0][0] == orders
    # the archive's backtest counts the live episodes; only u1's were sent
    assert int(table_row(out, "cart_abandonment")[2]) >= 2
    assert int(table_row(out, "cart_abandonment")[3]) == 1


CHECKS: dict[str, Callable[[str, Walkthrough], None]] = {
    '"$NUDGE_URL/v1/identify"': check_first_events,
    '"advance_seconds": 960': check_clock,
    "dynamodb get-item": check_aws,
    "nudge replay examples/events.jsonl": check_replay,
    "nudge triggers backtest --events examples/events.jsonl": check_backtest_file,
    "nudge triggers backtest --archive": check_archive,
}


def test_every_check_finds_its_block():
    for needle in CHECKS:
        assert any(needle in b.body for b in RUN_BLOCKS), f"no walk-through block has {needle}"


@pytest.mark.parametrize(
    "index", range(len(RUN_BLOCKS)), ids=[f"README.md:{b.line}" for b in RUN_BLOCKS]
)
def test_readme_block_runs_as_written(walkthrough: Walkthrough, index: int):
    block = RUN_BLOCKS[index]
    result = walkthrough.run_through(index)
    assert result.returncode == 0, (
        f"{block.name} failed ({result.returncode}):\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    for needle, check in CHECKS.items():
        if needle in block.body:
            try:
                check(result.stdout, walkthrough)
            except AssertionError as err:
                raise AssertionError(f"{err}\n{diagnosis(walkthrough)}") from err


def diagnosis(w: Walkthrough) -> str:
    """What local mode says of itself when a check fails: its dead letters and the end
    of its log (a lost or retried message shows there)."""
    try:
        report = requests.get(
            f"{w.url}/v1/reports/dead-letters",
            headers={"Authorization": f"Bearer {w.admin_key}"},
            timeout=30,
        ).text
    except requests.RequestException as err:
        report = repr(err)
    return f"--- dead letters\n{report[:4000]}\n--- nudge dev's log\n{''.join(w.log[-80:])}"
