"""The dashboard's page and assets as the api function serves them (docs/dashboard.md):
no key needed (no data in them), a strict Content-Security-Policy with no inline script,
the right content types and cache headers, a 404 for any name that is not one of the
assets (path traversal included); and `GET /v1/experiments`, the list the page starts
from, behind the admin key."""

from __future__ import annotations

import base64
import fnmatch
import gzip
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from nudge import dashboard

from tests.integration.conftest import Fn, basic, bearer, body_of, http

ROOT = Path(__file__).resolve().parents[2]


def text_of(resp: dict[str, Any]) -> str:
    raw = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        data = base64.b64decode(raw)
        if resp["headers"].get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return data.decode()
    return str(raw)


class Page(HTMLParser):
    """What the page's markup loads and whether any of it is inline."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in a:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}>")
        if tag == "script":
            self._in_script = True
            if a.get("src"):
                self.scripts.append(str(a["src"]))
        if tag == "style":
            self.inline.append("<style>")
        if tag == "link" and a.get("rel") == "stylesheet":
            self.styles.append(str(a["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"<script>{data[:40]}")


def test_the_page_is_served_without_a_key_with_a_strict_csp(api_fn: Fn) -> None:
    resp = api_fn(http("GET", "/dashboard"))
    assert resp["statusCode"] == 200
    headers = resp["headers"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = {d.split()[0]: d.split()[1:] for d in headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    page = Page()
    page.feed(text_of(resp))
    assert page.inline == []  # what the CSP would block: nothing
    assert len(page.scripts) == 2 and len(page.styles) == 2
    for url in page.scripts + page.styles:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url  # served by nudge, no CDN
        assert parts.path.startswith("dashboard/assets/"), url  # relative: any prefix works


def test_every_asset_the_page_names_is_served_with_its_type_and_a_long_cache(
    api_fn: Fn,
) -> None:
    page = Page()
    page.feed(text_of(api_fn(http("GET", "/dashboard"))))
    kinds = {".js": "text/javascript", ".css": "text/css"}
    for url in page.scripts + page.styles:
        parts = urlsplit(url)
        resp = api_fn(http("GET", "/" + parts.path, query=parts.query))
        assert resp["statusCode"] == 200, url
        h = resp["headers"]
        assert h["Content-Type"].split(";")[0] == kinds[Path(parts.path).suffix]
        assert h["Cache-Control"] == "public, max-age=31536000, immutable"
        assert h["X-Content-Type-Options"] == "nosniff"
        name = Path(parts.path).name
        assert text_of(resp) == dashboard.asset(name).body  # type: ignore[union-attr]
        assert parse_qs(parts.query)["v"] == [dashboard.asset(name).version]  # type: ignore[union-attr]


def test_an_asset_without_the_current_version_is_cached_briefly(api_fn: Fn) -> None:
    for query in ("", "v=stale"):
        resp = api_fn(http("GET", "/dashboard/assets/dashboard.js", query=query))
        assert resp["statusCode"] == 200
        assert resp["headers"]["Cache-Control"] == "public, max-age=300"


def test_assets_are_gzipped_for_a_client_that_accepts_it(api_fn: Fn) -> None:
    resp = api_fn(
        http("GET", "/dashboard/assets/uplot.min.js", headers={"accept-encoding": "gzip"})
    )
    assert resp["statusCode"] == 200
    assert resp["headers"]["Content-Encoding"] == "gzip"
    sent = base64.b64decode(resp["body"])
    assert len(sent) < len(dashboard.asset("uplot.min.js").body) / 2  # type: ignore[union-attr]
    assert text_of(resp) == dashboard.asset("uplot.min.js").body  # type: ignore[union-attr]


def test_the_chart_library_licence_is_served_as_text(api_fn: Fn) -> None:
    resp = api_fn(http("GET", "/dashboard/assets/uplot.LICENSE.txt"))
    assert resp["statusCode"] == 200
    assert resp["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert "MIT License" in text_of(resp)


@pytest.mark.parametrize(
    "name",
    [
        "nope.js",
        "page.html",  # in the package, but not an asset
        "__init__.py",
        "..%2F__init__.py",
        "%2e%2e%2fpage.html",
        "..%2F..%2Fdashboard%2F__init__.py",
        "dashboard.js%00",
        "DASHBOARD.JS",
        "..",
    ],
)
def test_any_other_name_is_a_404_and_reads_no_file(api_fn: Fn, name: str) -> None:
    resp = api_fn(http("GET", f"/dashboard/assets/{name}"))
    assert resp["statusCode"] == 404, name
    body = body_of(resp)
    assert body["error"] == "not_found"
    assert "import" not in text_of(resp)  # no Python source in the answer


def test_a_path_below_the_assets_is_not_routed(api_fn: Fn) -> None:
    for path in ("/dashboard/assets/../__init__.py", "/dashboard/assets/a/b.js"):
        resp = api_fn(http("GET", path))
        assert resp["statusCode"] == 404, path


def test_the_assets_are_package_data_of_the_wheel() -> None:
    """pyproject's package-data globs cover every asset and the page, so an installed
    nudge (not only a checkout) serves them."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["nudge"]
    files = ["dashboard/page.html", *(f"dashboard/assets/{n}" for n in dashboard.ASSET_NAMES)]
    for f in files:
        assert any(fnmatch.fnmatch(f, g) for g in globs), f
        assert (ROOT / "layers" / "nudge" / f).is_file(), f


def test_the_experiment_list_needs_the_admin_key(api_fn: Fn) -> None:
    assert api_fn(http("GET", "/v1/experiments"))["statusCode"] == 401
    wrote = api_fn(http("GET", "/v1/experiments", headers={"authorization": basic()}))
    assert wrote["statusCode"] == 403
    resp = api_fn(http("GET", "/v1/experiments", headers={"authorization": bearer()}))
    assert resp["statusCode"] == 200
    assert body_of(resp) == {
        "experiments": [
            {
                "id": "cart_abandonment_holdout",
                "name": "Cart reminder against a holdout",
                "trigger": "cart_abandonment",
            }
        ]
    }
