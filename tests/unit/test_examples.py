"""examples/events.jsonl, the week of a small shop the README replays and backtests: the
committed file is what examples/generate_events.py writes, it is Segment-format, and
every default trigger fires when it is backtested."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from nudge.cli_triggers import read_events
from nudge.domain.triggers.backtest import backtest
from nudge.domain.triggers.loader import load_triggers

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "events.jsonl"
ECOMMERCE = (
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
)


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_events", ROOT / "examples" / "generate_events.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def sample() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def test_the_committed_file_is_what_the_generator_writes():
    expected = [json.dumps(e, separators=(",", ":")) for e in generator().generate()]
    assert SAMPLE.read_text(encoding="utf-8").splitlines() == expected


def test_every_event_is_a_segment_call_replay_sends_as_it_is():
    events = sample()
    assert len({e["messageId"] for e in events}) == len(events)
    for e in events:
        assert e["type"] in {"track", "page", "identify"}
        assert e.get("userId") or e.get("anonymousId")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"])
        assert "sentAt" not in e  # skew correction would move the week to the replay's day
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)


def test_the_shop_uses_segments_ecommerce_events_and_reserved_traits():
    events = sample()
    names = {e.get("event") for e in events if e["type"] == "track"}
    assert set(ECOMMERCE) <= names
    for order in (e for e in events if e.get("event") == "Order Completed"):
        props = order["properties"]
        assert props["order_id"] and props["products"] and props["revenue"] > 0
        assert all(p["product_id"] and p["quantity"] >= 1 for p in props["products"])
    for identify in (e for e in events if e["type"] == "identify"):
        assert {"email", "timezone"} <= set(identify["traits"])


def test_backtesting_the_week_fires_every_default_trigger():
    triggers = load_triggers(ROOT / "triggers")
    with SAMPLE.open(encoding="utf-8") as stream:
        report = backtest(list(read_events(stream, warn=io.StringIO())), triggers)
    assert report.events == len(sample())
    for trigger in triggers:
        assert report.trigger(trigger.id).fires > 0, f"{trigger.id} never fires on the sample"


def test_the_readme_describes_the_sample_as_it_is():
    events = sample()
    known = {e["anonymousId"] for e in events if e.get("userId") and e.get("anonymousId")}
    shoppers = {e["userId"] for e in events if e.get("userId")} | {
        e["anonymousId"] for e in events if not e.get("userId") and e["anonymousId"] not in known
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"holds (\d+)\s+Segment events of (\d+) shoppers", readme)
    assert m, "README.md no longer says how many events and shoppers the sample holds"
    assert (int(m.group(1)), int(m.group(2))) == (len(events), len(shoppers))
