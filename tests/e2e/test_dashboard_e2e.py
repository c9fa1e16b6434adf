"""The dashboard in a real browser on local mode (docs/dashboard.md): it asks for the
admin key with a form (a refused key asks again), keeps the key in the tab's
sessionStorage and nowhere else, and draws the experiment report of the shipped
experiment with its variants; a section whose route answers 404 shows its empty state,
and no script error reaches the console. First paint under 1 s; screenshots at a
laptop's and a phone's width (NUDGE_SCREENSHOT_DIR keeps them)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nudge.local.server import LocalMode

from tests.e2e import test_browser_e2e as chromium
from tests.e2e.conftest import Client, _user_in
from tests.e2e.test_browser_e2e import Browser
from tests.e2e.test_delivery_e2e import identify, next_utc
from tests.e2e.test_train_e2e import history, now_of, train

pytestmark = pytest.mark.e2e
browser = chromium.browser  # the headless Chromium fixture (skips when it is absent)

KEY = "nudge.adminKey"
EXPERIMENT = "cart_abandonment_holdout"
# section -> the route it reads (the funnel's with the form's default steps)
SECTION_ROUTES = {
    "triggers": "/v1/reports/triggers?days=30",
    "cohorts": "/v1/reports/cohorts?period=week",
    "funnel": "/v1/reports/funnel?steps=Product+Viewed,Product+Added,Checkout+Started,"
    "Order+Completed&within=7d",
    "tracking": "/v1/reports/tracking?days=7",
    "deadletters": "/v1/reports/dead-letters?limit=50",
}


def wait_until(browser: Browser, what: str, check: Callable[[], Any], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what} never happened; console: {browser.console()}")


def js(browser: Browser, script: str, *args: Any) -> Any:
    return browser.driver.execute_script(script, *args)


def screenshot(browser: Browser, width: int, out: Path) -> Path:
    """The whole page at that width (the window made as tall as the page)."""
    d = browser.driver
    d.set_window_size(width, 900)
    height = js(browser, "return document.documentElement.scrollHeight")
    d.set_window_size(width, min(int(height) + 100, 6000))
    path = out / f"dashboard-{width}.png"
    d.save_screenshot(str(path))
    keep = os.environ.get("NUDGE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def script_errors(browser: Browser, allowed_urls: set[str]) -> list[str]:
    """SEVERE console entries but the browser's own note of an HTTP error answer for a
    URL the test expects one from (a report route not built yet, the refused key)."""
    out = []
    for entry in browser.driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        message = entry["message"]
        network = "Failed to load resource" in message
        if network and any(message.startswith(url) for url in allowed_urls):
            continue
        out.append(message)
    return out


def seed_the_experiment(client: Client) -> None:
    """One user in each variant of the shipped experiment is exposed (the cart trigger
    fires for both), so the report has users to draw."""
    next_utc(client, 14)
    for variant in ("reminder", "holdout"):
        user = _user_in(variant)
        identify(client, user)
        client.track(user, "Product Added", {"product_id": "sku-9", "name": "Lamp", "price": 30})
    client.clock(advance_seconds=16 * 60)


def seed_shoppers(client: Client) -> None:
    """Buyers and one-view visitors, imported, so a training run finds segments."""
    now = now_of(client)
    batch = [
        ev
        for i in range(4)
        for ev in history(f"dash-buyer-{i}", "buyer", now, 4 + i)
        + history(f"dash-visitor-{i}", "visitor", now)
    ]
    r = client.s.post(
        f"{client.url}/v1/import", json={"batch": batch}, auth=(client.local.write_key, "")
    )
    assert r.status_code == 200, r.text
    client.settle()


def test_the_dashboard_asks_for_the_key_and_draws_the_experiment(
    local: LocalMode, client: Client, browser: Browser, tmp_path: Path
) -> None:
    seed_the_experiment(client)
    report = client.admin_get(f"/v1/experiments/{EXPERIMENT}").json()
    users = {v["name"]: v["users"] for v in report["variants"]}
    assert users["reminder"] >= 1 and users["holdout"] >= 1
    d = browser.driver
    d.set_window_size(1280, 900)

    # when the page is opened with no key in the tab
    d.get(f"{local.url}/dashboard")
    # then it paints fast, and asks for the key with a labelled, focused field
    # (the paint entry is recorded when the frame is presented, which can come after
    # d.get returns on a loaded machine: wait for it, then judge its time)
    paint = wait_until(
        browser,
        "the first contentful paint",
        lambda: js(
            browser,
            "var p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return p ? p.startTime : null;",
        ),
    )
    assert paint < 1000, f"first contentful paint {paint} ms"
    print(f"dashboard first contentful paint: {paint:.0f} ms")  # shown with -s
    wait_until(browser, "the key form", lambda: d.find_element("id", "key").is_displayed())
    assert js(browser, "return document.activeElement.id") == "key"
    assert js(browser, "return document.querySelector('label[for=key]').textContent") == (
        "Admin key"
    )
    assert not d.find_element("id", "main").is_displayed()

    # when a wrong key is entered, the form asks again and says why
    d.find_element("id", "key").send_keys("not-the-key\n")
    error = wait_until(
        browser, "the refusal", lambda: d.find_element("id", "key-error").text.strip()
    )
    assert "401" in error
    assert js(browser, f"return sessionStorage.getItem('{KEY}')") is None
    assert d.find_element("id", "key").is_displayed()
    # the console holds the refused requests' 401s, and nothing else
    refused = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert all("status of 401" in m for m in refused), refused

    # when the admin key is entered
    d.find_element("id", "key").send_keys(local.admin_key + "\n")
    wait_until(
        browser,
        "the experiment",
        lambda: d.find_elements("css selector", f"[data-experiment={EXPERIMENT}] tbody tr"),
    )
    # then the experiment's variants show with the report's numbers
    rows = js(
        browser,
        "return Array.from(document.querySelectorAll("
        f"'[data-experiment={EXPERIMENT}] tbody tr')).map("
        "r => Array.from(r.children).map(c => c.textContent));",
    )
    assert [r[0] for r in rows] == [v["name"] for v in report["variants"]]
    assert {r[0]: int(r[1].replace(",", "")) for r in rows} == users
    dots = d.find_elements("css selector", f"[data-experiment={EXPERIMENT}] svg circle.dot")
    assert len(dots) == len(report["variants"])  # an interval per variant that has users

    # and each other section shows its report, or its empty state when the route has none
    for section, route in SECTION_ROUTES.items():
        answered = client.admin_get(route).status_code
        selector = f"#{section} .body .empty" if answered == 404 else f"#{section} .body > *"
        error = f"#{section} .body .error"
        wait_until(
            browser,
            f"the {section} section",
            lambda s=selector, e=error: (
                d.find_elements("css selector", s) and not d.find_elements("css selector", e)
            ),
        )
        if answered == 404:
            text = d.find_element("css selector", f"#{section} .body .empty").text
            assert "404" in text, (section, text)
    # the segments: "not trained yet" before any training, the trained ones after it
    trained_before = client.admin_get("/v1/reports/segments").json()["segments"]
    if not trained_before:  # this file run alone: the local mode has never trained
        wait_until(
            browser,
            "the segments' empty state",
            lambda: "not trained yet" in d.find_element("id", "segments").text,
        )
    seed_shoppers(client)
    summary = train(client)
    assert summary["ok"], summary
    d.refresh()  # the key is kept in the tab: the dashboard opens straight away
    wait_until(
        browser, "the segments", lambda: d.find_elements("css selector", "#segments .bars li")
    )
    shown = {
        li.get_attribute("data-segment"): li.text
        for li in d.find_elements("css selector", "#segments .bars li")
    }
    assert set(shown) == set(summary["segments"]), (shown, summary)
    for name, size in summary["segments"].items():
        assert f"{size} users" in shown[name]
    assert "Last training run: ok" in d.find_element("id", "segments-run").text
    centroid_rows = d.find_elements("css selector", "#segments table.centroid tbody tr")
    assert len(centroid_rows) == len(summary["segments"])
    wait_until(
        browser,
        "the tracking section",
        lambda: (
            d.find_elements("css selector", "#tracking .body > *")
            and not d.find_elements("css selector", "#tracking .body .error")
        ),
    )

    # and the key is in this tab's sessionStorage only: not in the URL, not in a cookie
    assert js(browser, f"return sessionStorage.getItem('{KEY}')") == local.admin_key
    assert js(browser, f"return localStorage.getItem('{KEY}')") is None
    assert local.admin_key not in d.current_url
    assert js(browser, "return document.cookie") == ""

    # and no script error: only the HTTP errors the browser notes for the refused key
    # and the routes that answered 404
    allowed = {f"{local.url}/v1/experiments"} | {
        f"{local.url}{route.split('?')[0]}"
        for route in SECTION_ROUTES.values()
        if client.admin_get(route).status_code == 404
    }
    assert script_errors(browser, allowed) == []

    shot = screenshot(browser, 1280, tmp_path)
    assert shot.stat().st_size > 10_000

    # at a phone's width, a reload opens the dashboard straight away (the key is kept
    # in the tab) and nothing is wider than the screen
    d.set_window_size(375, 812)
    d.refresh()
    wait_until(
        browser,
        "the experiment after a reload",
        lambda: d.find_elements("css selector", f"[data-experiment={EXPERIMENT}] tbody tr"),
    )
    assert not d.find_element("id", "auth").is_displayed()
    overflow = js(
        browser,
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
    )
    assert overflow <= 0, f"the page is {overflow} px wider than a 375 px screen"
    screenshot(browser, 375, tmp_path)
    assert script_errors(browser, allowed) == []

    # and forgetting the key asks for it again
    d.find_element("id", "signout").click()
    assert d.find_element("id", "key").is_displayed()
    assert js(browser, f"return sessionStorage.getItem('{KEY}')") is None


# ---- every report shape of the contract, drawn -------------------------------------------

# The shapes of the report routes as the HTTP API contract gives them (docs/api.md,
# docs/measurement.md), with values that exercise each drawing: an anomaly day, a
# sample-ratio mismatch, a sequential verdict, a heatmap, a funnel split by variant.
DAYS = [
    {
        "date": f"2026-11-{d:02d}",
        "fired": 20 + d % 5,
        "sent": 15,
        "conversions": 2,
        "anomaly": d == 17,
    }
    for d in range(1, 31)
]
SHAPES: dict[str, Any] = {
    "/v1/experiments": {
        "experiments": [
            {"id": "steady", "name": "Steady split", "trigger": "cart_abandonment"},
            {"id": "broken", "name": "broken", "trigger": "inactivity_winback"},
        ]
    },
    "/v1/experiments/steady": {
        "experiment": "steady",
        "goal": {"event": "Order Completed", "within_seconds": 259200},
        "variants": [
            {
                "name": "holdout",
                "users": 120,
                "conversions": 12,
                "conversion_rate": 0.1,
                "ci_low": 0.058,
                "ci_high": 0.167,
                "lift": None,
                "p_value": None,
            },
            {
                "name": "reminder",
                "users": 1080,
                "conversions": 162,
                "conversion_rate": 0.15,
                "ci_low": 0.13,
                "ci_high": 0.172,
                "lift": 0.5,
                "p_value": 0.14,
                "sequential": {
                    "p_value": 0.2,
                    "ci_low": -0.01,
                    "ci_high": 0.1,
                    "verdict": "continue",
                },
            },
        ],
        "srm_p_value": 0.6,
        "metrics": {"control": "holdout"},
    },
    "/v1/experiments/broken": {
        "experiment": "broken",
        "goal": {"event": "Order Completed", "within_seconds": 604800},
        "variants": [
            {
                "name": "a",
                "users": 500,
                "conversions": 50,
                "conversion_rate": 0.1,
                "ci_low": 0.077,
                "ci_high": 0.129,
                "lift": None,
                "p_value": None,
            },
            {
                "name": "b",
                "users": 300,
                "conversions": 45,
                "conversion_rate": 0.15,
                "ci_low": 0.114,
                "ci_high": 0.195,
                "lift": 0.5,
                "p_value": 0.03,
            },
        ],
        "srm_p_value": 0.00001,
        "metrics": {"control": "a"},
    },
    "/v1/reports/triggers": {
        "triggers": [
            {
                "id": "cart_abandonment",
                "fired": 900,
                "sent": 700,
                "response_rate": 0.21,
                "conversion_rate": 0.12,
                "engagement_seconds": 340,
                "retention_vs_holdout": 0.04,
                "daily": DAYS,
            },
            {
                "id": "inactivity_winback",
                "fired": 0,
                "sent": 0,
                "response_rate": None,
                "conversion_rate": None,
                "engagement_seconds": None,
                "retention_vs_holdout": None,
                "daily": [],
            },
        ]
    },
    "/v1/reports/cohorts": {
        "period": "week",
        "cohorts": [
            {"cohort": "2026-W46", "size": 140, "retention": [1.0, 0.48, 0.3]},
            {"cohort": "2026-W47", "size": 90, "retention": [1.0, 0.41]},
            {"cohort": "2026-W48", "size": 75, "retention": [1.0]},
        ],
    },
    "/v1/reports/funnel": {
        "steps": [
            {"event": "Product Viewed", "users": 1000, "conversion": 1.0, "drop_off": 0.0},
            {"event": "Product Added", "users": 400, "conversion": 0.4, "drop_off": 0.6},
            {"event": "Order Completed", "users": 100, "conversion": 0.1, "drop_off": 0.75},
        ],
        "groups": {
            "reminder": {
                "steps": [
                    {"event": "Product Viewed", "users": 900, "conversion": 1.0, "drop_off": 0.0},
                    {"event": "Product Added", "users": 380, "conversion": 0.42, "drop_off": 0.58},
                    {"event": "Order Completed", "users": 95, "conversion": 0.11, "drop_off": 0.75},
                ]
            },
            "holdout": [
                {"event": "Product Viewed", "users": 100, "conversion": 1.0, "drop_off": 0.0},
                {"event": "Product Added", "users": 20, "conversion": 0.2, "drop_off": 0.8},
                {"event": "Order Completed", "users": 5, "conversion": 0.05, "drop_off": 0.75},
            ],
        },
    },
}


SHAPES["/v1/reports/segments"] = {
    "trained_at": "2026-11-30T03:00:00Z",
    "k": 3,
    "silhouette": 0.41,
    "features": ["recency_days", "orders", "revenue", "sessions"],
    "transform": "log1p, then standardized with mean and scale",
    "segments": [
        {
            "name": "frequent buyers",
            "size": 120,
            "centroid": {"recency_days": -0.8, "orders": 1.9, "revenue": 1.7, "sessions": 1.1},
            "means": {"recency_days": 3.2, "orders": 6.5, "revenue": 812.4, "sessions": 14.0},
        },
        {
            "name": "casual browsers",
            "size": 600,
            "centroid": {"recency_days": 0.1, "orders": -0.4, "revenue": -0.4, "sessions": -0.2},
            "means": {"recency_days": 12.0, "orders": 0.1, "revenue": 4.0, "sessions": 2.0},
        },
        {
            "name": "lapsed",
            "size": 280,
            "centroid": {"recency_days": 1.4, "orders": 0.0, "revenue": 0.1, "sessions": -0.9},
            "means": {"recency_days": 61.0, "orders": 1.0, "revenue": 60.0, "sessions": 1.0},
        },
    ],
    "last_run": {
        "ok": False,
        "started": "2026-12-01T03:00:00Z",
        "finished": "2026-12-01T03:00:09Z",
        "duration_seconds": 9.1,
        "users": 0,
        "errors": ["read: ClientError: AccessDenied"],
    },
}
SHAPES["/v1/reports/tracking"] = {
    "days": 7,
    "violations": [
        {
            "event": "Order Completed",
            "rule": "minimum",
            "field": "properties.revenue",
            "violations": 42,
            "events": 40,
            "blocked": 40,
            "last_seen": "2026-11-30T22:10:00Z",
            "sample": {
                "message_id": "m-991",
                "description": "-5 is less than the minimum of 0",
                "value": "-5",
            },
        },
        {
            "event": "Sign Up",
            "rule": "unplanned",
            "field": "event",
            "violations": 3,
            "events": 3,
            "blocked": 0,
            "last_seen": "2026-11-29T08:00:00Z",
            "sample": {"message_id": "m-12", "description": "not in the plan", "value": None},
        },
    ],
}

SHAPES["/v1/reports/dead-letters"] = {
    "retention_days": 14,
    "queues": [{"queue": "events", "messages": 2}, {"queue": "actions", "messages": 0}],
    "dead_letters": [
        {
            "queue": "events",
            "message_id": "5f1c-redrive",
            "group": "u-77",
            "receive_count": 5,
            "moved_by": "redrive",
            "error_type": "DependencyUnavailableError",
            "error": "archive: ResourceNotFoundException",
            "body": '{"kind":"events","v":1,"user_id":"u-77","events":[{"event":"Order',
            "body_bytes": 2048,
            "truncated": True,
            "at": "2026-11-30T21:04:05.120Z",
        },
        {
            "queue": "events",
            "message_id": "9a0b-moved",
            "group": "u-78",
            "receive_count": 1,
            "moved_by": "function",
            "error_type": "ValueError",
            "error": "invalid message: unknown events message version 9",
            "body": '{"kind":"events","v":9}',
            "body_bytes": 23,
            "truncated": False,
            "at": "2026-11-30T20:00:00.000Z",
        },
    ],
}


class ReportShapes:
    """The dashboard's page and assets as nudge serves them (nudge.dashboard, what the
    api function answers with), beside report routes answering SHAPES: the page drawn
    against every shape of the contract, including routes local mode may not have yet.
    `refuse` makes every report route answer 401 (an admin key revoked mid-session)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        from nudge import dashboard

        shapes = self
        self.refuse = False
        self.asked: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                headers = dict(dashboard.SECURITY_HEADERS)
                asset = dashboard.asset(parts.path.removeprefix("/dashboard/assets/"))
                if parts.path == "/dashboard":
                    status, kind, body = 200, "text/html; charset=utf-8", dashboard.page()
                elif parts.path.startswith("/dashboard/assets/") and asset is not None:
                    status, kind, body = 200, asset.content_type, asset.body
                elif parts.path in SHAPES:
                    shapes.asked.append(self.path)
                    auth = self.headers.get("Authorization")
                    status, kind = 200, "application/json"
                    body = json.dumps(SHAPES[parts.path])
                    if shapes.refuse or auth != "Bearer the-key":
                        status, body = (
                            401,
                            json.dumps(
                                {
                                    "error": "unauthorized",
                                    "message": "invalid admin key",
                                    "details": [],
                                }
                            ),
                        )
                else:
                    status, kind, body = 404, "application/json", '{"error":"not_found"}'
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def shapes() -> Iterator[ReportShapes]:
    s = ReportShapes()
    yield s
    s.stop()


def test_every_report_shape_is_drawn(
    shapes: ReportShapes, browser: Browser, tmp_path: Path
) -> None:
    d = browser.driver
    d.set_window_size(1280, 900)
    d.get(f"{shapes.url}/dashboard")
    wait_until(browser, "the key form", lambda: d.find_element("id", "key").is_displayed())
    d.find_element("id", "key").send_keys("the-key\n")
    wait_until(browser, "the funnel", lambda: d.find_elements("css selector", "#funnel .bars"))
    wait_until(browser, "the sparkline", lambda: d.find_elements("css selector", ".spark canvas"))

    # triggers: a KPI row per trigger, the anomaly day counted and named
    rows = d.find_elements("css selector", "#triggers tbody tr")
    assert [r.find_element("tag name", "th").text for r in rows] == [
        "cart_abandonment",
        "inactivity_winback",
    ]
    cells = [c.text for c in rows[0].find_elements("tag name", "td")]
    assert cells[:6] == ["900", "700", "21%", "12%", "5.7 min", "+4%"]
    flag = rows[0].find_element("css selector", "td.anomaly")
    assert flag.text == "⚠ 1 day" and flag.get_attribute("title") == "2026-11-17"
    label = rows[0].find_element("css selector", ".spark").get_attribute("aria-label")
    assert "anomalies on 2026-11-17" in label
    assert rows[1].find_elements("css selector", "td.anomaly") == []

    # experiments: intervals per variant, the sequential verdict, SRM only where broken
    steady = d.find_element("css selector", "[data-experiment=steady]")
    broken = d.find_element("css selector", "[data-experiment=broken]")
    assert len(steady.find_elements("css selector", "svg line.ci")) == 6  # bar + 2 ends each
    assert steady.find_element("css selector", ".badge").text == "continue [-1%, +10%]"
    assert steady.find_elements("css selector", ".warn") == []
    warning = broken.find_element("css selector", ".warn")
    assert "Sample-ratio mismatch" in warning.text and warning.get_attribute("role") == "alert"
    lifts = [
        r.find_elements("tag name", "td")[4].text
        for r in steady.find_elements("css selector", "tbody tr")
    ]
    assert lifts == ["—", "+50%"]

    # cohorts: one coloured cell per retention value, the darkest with light text
    heat = d.find_elements("css selector", "#cohorts td.cell")
    assert len(heat) == 3 + 2 + 1
    assert heat[0].text == "100%" and "dark" in heat[0].get_attribute("class")
    colours = {c.value_of_css_property("background-color") for c in heat}
    assert len(colours) >= 3  # 100 %, 48 %, 41 %, 30 %: shades apart

    # funnel: bars of the share of the first step with the drop-off; then split by
    # variant, one set of bars per group (both group shapes)
    bars = d.find_elements("css selector", "#funnel .bars")[0].find_elements("tag name", "li")
    assert [b.find_element("tag name", "strong").text for b in bars] == [
        "1. Product Viewed",
        "2. Product Added",
        "3. Order Completed",
    ]
    assert "drop-off 60%" in bars[1].text and "drop-off" not in bars[0].text
    widths = [
        js(browser, "return arguments[0].querySelector('.bar-fill').style.width", b) for b in bars
    ]
    assert widths == ["100%", "40%", "10%"]
    from selenium.webdriver.support.ui import Select

    Select(d.find_element("id", "funnel-by")).select_by_value("variant")
    d.find_element("css selector", "#funnel-form button").click()
    wait_until(
        browser, "the groups", lambda: len(d.find_elements("css selector", "#funnel .group")) == 2
    )
    assert shapes.asked[-1].endswith("&by=variant")
    groups = [
        g.find_element("tag name", "h3").text
        for g in d.find_elements("css selector", "#funnel .group")
    ]
    assert groups == ["variant: reminder", "variant: holdout"]

    # segments: a bar per segment (its share of the users), the centroids standardized
    # (signed) and the raw means, and the failed last run named
    seg = wait_until(
        browser, "the segments", lambda: d.find_elements("css selector", "#segments .bars li")
    )
    assert [li.get_attribute("data-segment") for li in seg] == [
        "frequent buyers",
        "casual browsers",
        "lapsed",
    ]
    assert "120 users · 12%" in seg[0].text
    assert [
        js(browser, "return arguments[0].querySelector('.bar-fill').style.width", li) for li in seg
    ] == ["12%", "60%", "28%"]
    std = d.find_element("css selector", "#segments table.centroid")
    assert "standardized" in std.find_element("tag name", "caption").text
    heads = [th.text for th in std.find_elements("css selector", "thead th")]
    assert heads == ["Segment", "Recency (days)", "Orders", "Revenue", "Sessions"]
    first = [
        td.text
        for td in std.find_elements("css selector", "tbody tr")[0].find_elements("tag name", "td")
    ]
    assert first == ["\u22120.80", "+1.90", "+1.70", "+1.10"]
    raw = d.find_element("css selector", "#segments table.means tbody tr")
    assert [td.text for td in raw.find_elements("tag name", "td")] == [
        "3.2",
        "6.5",
        "812.40",
        "14.0",
    ]
    run = d.find_element("id", "segments-run")
    assert "failed" in run.text and "AccessDenied" in run.text
    assert run.get_attribute("role") == "alert"

    # tracking plan: a row per event, rule and field with its counts and the sample
    trows = wait_until(
        browser, "the violations", lambda: d.find_elements("css selector", "#tracking tbody tr")
    )
    assert len(trows) == 2
    cells = [c.text for c in trows[0].find_elements("tag name", "td")]
    assert trows[0].find_element("tag name", "th").text == "Order Completed"
    assert cells[:6] == ["minimum", "properties.revenue", "42", "40", "40", "2026-11-30 22:10"]
    assert "less than the minimum" in cells[6] and "-5" in cells[6] and "m-991" in cells[6]
    assert "anomaly" in trows[0].find_elements("tag name", "td")[4].get_attribute("class")
    assert trows[1].find_elements("tag name", "td")[4].get_attribute("class") in ("", None)
    Select(d.find_element("id", "tracking-days")).select_by_value("30")
    wait_until(
        browser,
        "the 30 days' violations",
        lambda: any("tracking?days=30" in a for a in shapes.asked),
    )

    # dead letters: each DLQ's size (a full one marked), a row per entry with its reason
    sizes = d.find_elements("css selector", "#deadletters .sizes li")
    assert [li.text for li in sizes] == ["events DLQ: 2 messages", "actions DLQ: 0 messages"]
    assert sizes[0].get_attribute("class") == "full"
    assert sizes[1].get_attribute("class") in ("", None)
    drows = d.find_elements("css selector", "#deadletters tbody tr")
    assert [r.get_attribute("data-message-id") for r in drows] == ["5f1c-redrive", "9a0b-moved"]
    first = [c.text for c in drows[0].find_elements("css selector", "th, td")]
    assert first[:4] == ["2026-11-30 21:04", "events", "u-77", "after 5 receives"]
    assert first[4] == "DependencyUnavailableError archive: ResourceNotFoundException"
    assert first[5].startswith('{"kind":"events"') and first[5].endswith("2,048 bytes")
    second = [c.text for c in drows[1].find_elements("css selector", "th, td")]
    assert second[3] == "at once (receive 1)" and "bytes" not in second[5]

    # the cohort period toggle asks for the other period
    d.find_element("css selector", "input[name=period][value=month]").click()
    wait_until(browser, "the month cohorts", lambda: any("period=month" in a for a in shapes.asked))

    assert script_errors(browser, set()) == []
    screenshot(browser, 1280, tmp_path)
    d.set_window_size(375, 812)
    overflow = js(
        browser,
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
    )
    assert overflow <= 0

    # and the intervals are redrawn at the phone's width, their text kept readable
    def view_width() -> int:
        box = js(
            browser,
            "return document.querySelector('[data-experiment=steady] svg').getAttribute('viewBox')",
        )
        return int(float(box.split()[2]))

    wait_until(browser, "the intervals redrawn", lambda: view_width() <= 375)
    screenshot(browser, 375, tmp_path)

    # a key refused later (revoked) asks for it again
    shapes.refuse = True
    Select(d.find_element("id", "trigger-days")).select_by_value("7")
    wait_until(browser, "the key form again", lambda: d.find_element("id", "key").is_displayed())
    assert "401" in d.find_element("id", "key-error").text
    assert js(browser, f"return sessionStorage.getItem('{KEY}')") is None
