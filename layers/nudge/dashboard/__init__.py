"""The dashboard page (`GET /dashboard`) and its assets (`GET /dashboard/assets/<name>`),
served from this package's data by the api function, in local mode and on AWS alike.

The page holds no data: it is a shell whose script asks for the admin key once, keeps it
in sessionStorage and reads the same report routes as scripts do (docs/dashboard.md,
docs/decisions.md D34). Nothing is fetched from a CDN: the chart library (uPlot, MIT) is
vendored under assets/ with its licence.

An asset is looked up by its name in a fixed table, never by a path built from the
request, so no request can reach another file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

UPLOT_VERSION = "1.6.32"  # npm `uplot`; assets/uplot.min.js is its dist/uPlot.iife.min.js

# The page and its assets come from this origin only; no inline script or style, no
# eval (uPlot needs none), no framing, no form posted elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The page is revalidated on every load (a deploy shows at once); an asset asked for
# with the version the page names is that exact content, cached for a year.
PAGE_CACHE = "no-cache"
VERSIONED_ASSET_CACHE = "public, max-age=31536000, immutable"
ASSET_CACHE = "public, max-age=300"

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
ASSET_NAMES = (
    "dashboard.js",
    "dashboard.css",
    "uplot.min.js",
    "uplot.min.css",
    "uplot.LICENSE.txt",
)


@dataclass(frozen=True)
class Asset:
    name: str
    body: str
    content_type: str
    version: str  # a digest of the content: the page's `?v=`


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@cache
def assets() -> dict[str, Asset]:
    out = {}
    for name in ASSET_NAMES:
        body = _read(f"assets/{name}")
        kind = TYPES[name[name.rindex(".") :]]
        version = hashlib.sha256(body.encode()).hexdigest()[:12]
        out[name] = Asset(name, body, kind, version)
    return out


def asset(name: str) -> Asset | None:
    """The asset of that exact name, None for any other (`../x`, `a/b`, unknown)."""
    return assets().get(name)


def cache_control(found: Asset, version: str | None) -> str:
    return VERSIONED_ASSET_CACHE if version == found.version else ASSET_CACHE


@cache
def page() -> str:
    """The page's HTML: sections with their empty states, asset URLs with versions.
    Relative URLs, so the page works under any path prefix the API is served at."""
    html = _read("page.html")
    for a in assets().values():
        html = html.replace(f"{{{{{a.name}}}}}", f"dashboard/assets/{a.name}?v={a.version}")
    return html.replace("{{uplot_version}}", UPLOT_VERSION)
