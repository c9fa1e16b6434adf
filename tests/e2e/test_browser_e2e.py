"""analytics.js in a real browser: Segment's own bundle and snippet (npm
`@segment/analytics-next` and `@segment/snippet`, pinned in tests/e2e/browser), on a page
served from another origin than local mode, send to nudge unchanged but for where they
point; the profile shows what the page did (docs/browser.md).

Headless Chromium (Debian's `chromium` with its matching `chromium-driver`) driven by
Selenium; what the browser sent is recorded as local mode received it."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from nudge.local.server import LocalMode

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e

BROWSER_DIR = Path(__file__).parent / "browser"
NODE_MODULES = BROWSER_DIR / "node_modules" / "@segment"
AJS_DIST = NODE_MODULES / "analytics-next" / "dist" / "umd"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


# ---- the customer's site: its own origin, serving its pages and the analytics.js bundle ----


class Site:
    """A web site on 127.0.0.1 with a port of its own (so another origin than local mode)
    that hosts the analytics.js bundles itself, as a site that does not use Segment's CDN
    would: the snippet's bundle at the path the snippet loads it from, the npm build at
    /npm/analytics-next.js, their lazy chunks under /analytics-next/bundles/."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, name="site", daemon=True).start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _file(self, path: str) -> Path | None:
        if path.startswith("/analytics.js/v1/") and path.endswith("/analytics.min.js"):
            return AJS_DIST / "standalone.js"
        if path == "/npm/analytics-next.js":
            return AJS_DIST / "index.js"
        name = path.removeprefix("/analytics-next/bundles/")
        if name != path and "/" not in name and (AJS_DIST / name).is_file():
            return AJS_DIST / name
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path in site.pages:
                    data, kind = site.pages[path].encode(), "text/html; charset=utf-8"
                elif (file := site._file(path)) is not None:
                    data, kind = file.read_bytes(), "text/javascript"
                else:
                    data, kind = b"not found", "text/plain"
                self.send_response(200 if kind != "text/plain" else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    if not (AJS_DIST / "standalone.js").is_file():
        pytest.fail(
            f"analytics.js is not installed in {BROWSER_DIR}: run `npm ci --prefix "
            "tests/e2e/browser` (`make test` does it)"
        )
    s = Site()
    yield s
    s.stop()


def segment_snippet(*, write_key: str, host: str) -> str:
    """Segment's snippet as @segment/snippet renders it (no page call: the test makes its
    own), loading the bundle from `host` instead of Segment's CDN."""
    node = shutil.which("node")
    assert node, "node is needed to render Segment's snippet"
    script = (
        "process.stdout.write(require('@segment/snippet')"
        ".min({apiKey: process.argv[1], host: process.argv[2], page: false}))"
    )
    out = subprocess.run(
        [node, "-e", script, write_key, host],
        cwd=BROWSER_DIR,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout


# ---- the browser ------------------------------------------------------------------------------


@dataclass
class Received:
    """A request from the browser as local mode received it, and its answer."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON when it is JSON
    status: int


@pytest.fixture
def received(local: LocalMode, monkeypatch: pytest.MonkeyPatch) -> list[Received]:
    """What reached local mode from the browser during the test (its HTTP server calls
    `local.dispatch` for every request): CORS preflights, keepalive posts sent while the
    page goes away, bodies as they arrived."""
    log: list[Received] = []
    dispatch = local.dispatch

    def recording(
        method: str, path: str, query: str, headers: dict[str, str], body: bytes, ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        status, out_headers, data = dispatch(method, path, query, headers, body, ip)
        lower = {k.lower(): v for k, v in headers.items()}
        if "HeadlessChrome" in lower.get("user-agent", ""):
            parsed: Any = body.decode("utf-8", "replace")
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
            log.append(Received(method, path, lower, parsed, status))
        return status, out_headers, data

    monkeypatch.setattr(local, "dispatch", recording)
    return log


@dataclass
class Browser:
    driver: Any

    def console(self) -> list[str]:
        return [f"{e['level']}: {e['message']}" for e in self.driver.get_log("browser")]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A fresh headless Chromium per test: nothing persisted (analytics.js keeps the user
    and anonymous ids in localStorage) and no cached CORS preflight."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):  # .ci/run installs it: a skip there would hide a failure
            pytest.fail(f"Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}) in CI")
        pytest.skip(
            f"Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install -y chromium chromium-driver (.ci/run does it)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="nudge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---- waiting for the profile ------------------------------------------------------------------


def wait_for_profile(
    client: Client,
    browser: Browser,
    received: list[Received],
    user_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    profile: dict[str, Any] = {}
    while time.monotonic() < deadline:
        client.settle()
        r = client.admin_get(f"/v1/users/{user_id}")
        if r.status_code == 200:
            profile = r.json()
            if done(profile):
                return profile
        time.sleep(0.3)
    sent = [(r.method, r.path, r.status) for r in received]
    pytest.fail(
        f"the profile of {user_id} never got there: {profile}\n"
        f"sent to nudge: {sent}\nbrowser console: {browser.console()}"
    )


def has_the_visit(email: str) -> Callable[[dict[str, Any]], bool]:
    def done(profile: dict[str, Any]) -> bool:
        counts = profile.get("event_counts") or {}
        return (
            (profile.get("traits") or {}).get("email") == email
            and counts.get("Page Viewed", 0) >= 1
            and counts.get("Product Viewed", 0) >= 1
        )

    return done


def the_visit(uid: str, email: str) -> str:
    """What the page does: who the visitor is, the page, a product view."""
    return (
        f"analytics.identify({json.dumps(uid)}, {{email: {json.dumps(email)}}});\n"
        "analytics.page('Home');\n"
        "analytics.track('Product Viewed', {product_id: 'p-42'});\n"
    )


def assert_cross_origin(sent: list[Received], site: Site, local: LocalMode) -> None:
    """The posts came from the site's origin, each after a CORS preflight the browser
    accepted (analytics.js's Authorization header is not CORS-safelisted)."""
    assert urlsplit(site.url).netloc != urlsplit(local.url).netloc
    posts = [s for s in sent if s.method == "POST"]
    assert posts and all(s.headers.get("origin") == site.url for s in posts)
    assert all(s.status == 200 for s in posts), [(s.path, s.status) for s in posts]
    preflights = {s.path: s for s in sent if s.method == "OPTIONS"}
    for post in posts:
        preflight = preflights[post.path]
        assert preflight.headers["origin"] == site.url
        assert preflight.headers["access-control-request-method"] == "POST"
        assert "authorization" in preflight.headers["access-control-request-headers"]
        assert preflight.status == 204


# ---- the tests --------------------------------------------------------------------------------


def test_segment_snippet_sends_to_nudge_with_only_its_cdn_pointed_at_nudge(
    local: LocalMode,
    client: Client,
    site: Site,
    browser: Browser,
    received: list[Received],
    uid: str,
) -> None:
    # given Segment's snippet as Segment renders it, with the bundle hosted by the site
    # (http: the test's servers have no TLS) and analytics._cdn set to nudge, which then
    # serves analytics.js its settings: apiHost and protocol come from there
    email = f"{uid}@example.com"
    snippet = segment_snippet(write_key=local.write_key, host=urlsplit(site.url).netloc).replace(
        't.src="https://', 't.src="http://'
    )
    write_key_line = f'analytics._writeKey="{local.write_key}";'
    assert write_key_line in snippet
    snippet = snippet.replace(write_key_line, f'{write_key_line}analytics._cdn="{local.url}";')
    site.pages["/snippet.html"] = (
        "<!doctype html><html><head><title>Shop</title>"
        f"<script>{snippet}</script></head><body><h1>Shop</h1>"
        f"<script>{the_visit(uid, email)}</script></body></html>"
    )
    # when a visitor opens the page
    browser.driver.get(f"{site.url}/snippet.html")
    # then the profile shows the visit
    profile = wait_for_profile(client, browser, received, uid, has_the_visit(email))
    assert profile["traits"]["email"] == email
    assert profile["event_counts"]["Page Viewed"] == 1
    assert profile["event_counts"]["Product Viewed"] == 1
    # and this is what analytics.js sent: its settings fetched from nudge, then one
    # text/plain post per event to /v1/<first letter of the type>, the write key both as
    # HTTP Basic user and in the body
    sent = list(received)
    assert ("GET", f"/v1/projects/{local.write_key}/settings") in [(s.method, s.path) for s in sent]
    posts = {s.path: s for s in sent if s.method == "POST"}
    assert {"/v1/i", "/v1/p", "/v1/t"} <= set(posts)
    basic = "Basic " + base64.b64encode(f"{local.write_key}:".encode()).decode()
    for s in posts.values():
        assert s.headers["content-type"] == "text/plain"
        assert s.headers["authorization"] == basic
        assert s.body["writeKey"] == local.write_key
        assert s.body["sentAt"]
    assert posts["/v1/t"].body["properties"] == {"product_id": "p-42"}
    assert_cross_origin(sent, site, local)


def test_npm_build_with_only_cdn_url_set_takes_its_settings_from_nudge(
    local: LocalMode,
    client: Client,
    site: Site,
    browser: Browser,
    received: list[Received],
    uid: str,
) -> None:
    # given the npm build loaded the documented way with one option changed: cdnURL
    email = f"{uid}@example.com"
    load = {"writeKey": local.write_key, "cdnURL": local.url}
    site.pages["/npm-cdn.html"] = (
        "<!doctype html><html><head><title>Shop</title>"
        '<script src="/npm/analytics-next.js"></script></head><body><h1>Shop</h1>'
        "<script>\n"
        f"window.analytics = AnalyticsNext.AnalyticsBrowser.load({json.dumps(load)});\n"
        f"{the_visit(uid, email)}"
        "</script></body></html>"
    )
    # when a visitor opens the page
    browser.driver.get(f"{site.url}/npm-cdn.html")
    # then the settings came from nudge and the events followed them
    profile = wait_for_profile(client, browser, received, uid, has_the_visit(email))
    assert profile["event_counts"] == {"Page Viewed": 1, "Product Viewed": 1}
    sent = list(received)
    assert [r.path for r in sent if r.method == "GET"] == [
        f"/v1/projects/{local.write_key}/settings"
    ]
    assert sorted(r.path for r in sent if r.method == "POST") == ["/v1/i", "/v1/p", "/v1/t"]
    assert_cross_origin(sent, site, local)


def test_npm_build_with_inline_settings_batches_and_sends_on_page_hide(
    local: LocalMode,
    client: Client,
    site: Site,
    browser: Browser,
    received: list[Received],
    uid: str,
) -> None:
    # given the npm build loaded with its settings inline (no settings fetch at all) and
    # the batching delivery strategy with a long timeout: nothing leaves before the page
    # is hidden, then one keepalive post to /v1/b carries the batch
    email = f"{uid}@example.com"
    host = urlsplit(local.url).netloc
    load = {
        "writeKey": local.write_key,
        "cdnSettings": {
            "integrations": {"Segment.io": {"apiKey": local.write_key, "apiHost": f"{host}/v1"}},
            "metrics": {"sampleRate": 0},
        },
    }
    options = {
        "integrations": {
            "Segment.io": {
                "protocol": "http",
                "deliveryStrategy": {
                    "strategy": "batching",
                    "config": {"size": 100, "timeout": 600000},
                },
            }
        }
    }
    site.pages["/npm.html"] = (
        "<!doctype html><html><head><title>Shop</title>"
        '<script src="/npm/analytics-next.js"></script></head><body><h1>Shop</h1>'
        "<script>\n"
        "window.analytics = AnalyticsNext.AnalyticsBrowser.load("
        f"{json.dumps(load)}, {json.dumps(options)});\n"
        f"{the_visit(uid, email)}"
        "analytics.ready(function () { document.title = 'ready'; });\n"
        "</script></body></html>"
    )
    browser.driver.get(f"{site.url}/npm.html")
    deadline = time.monotonic() + 30
    while browser.driver.title != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.driver.title == "ready", browser.console()
    time.sleep(0.5)  # the three calls reach the batching buffer
    assert [r for r in received if r.method == "POST"] == []
    # when the visitor leaves the page
    browser.driver.get("about:blank")
    # then the batch arrives and the profile shows the visit
    profile = wait_for_profile(client, browser, received, uid, has_the_visit(email))
    assert profile["event_counts"] == {"Page Viewed": 1, "Product Viewed": 1}
    sent = list(received)
    [batch] = [s for s in sent if s.method == "POST"]
    assert batch.path == "/v1/b"
    assert batch.headers["content-type"] == "text/plain"
    assert batch.body["writeKey"] == local.write_key
    assert [e["type"] for e in batch.body["batch"]] == ["identify", "page", "track"]
    assert not [s for s in sent if "/settings" in s.path]  # the inline settings were used
    assert_cross_origin(sent, site, local)


def test_a_preflight_from_any_page_is_answered_with_what_analytics_js_needs(
    local: LocalMode, client: Client
) -> None:
    # what the browser asks before each post above, checked on its own
    r = client.s.options(
        f"{local.url}/v1/t",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
        },
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-retry-count"} <= allowed
    # and the answer to the post itself lets the page read it, Retry-After included
    r = client.s.post(
        f"{local.url}/v1/t",
        data=json.dumps(
            {
                "userId": f"u-{uuid.uuid4().hex[:10]}",
                "event": "Preflighted",
                "writeKey": local.write_key,
            }
        ),
        headers={"Origin": "https://shop.example.com", "Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
