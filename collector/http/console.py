"""The web console's files: ``GET /`` (the page shell) and ``GET /static/{name}`` (its ES
modules, style sheet and icon), read from the ``collector.console`` package.

The files are package data (``pyproject.toml``), so a wheel or the Debian package carries them;
they are read once, off the event loop, and kept in memory (about 100 KB). Each answer has an
``ETag`` (a hash of the bytes) and ``Cache-Control: no-cache``: a browser keeps the files but
asks again each time, and gets ``304 Not Modified`` until an upgrade changes them (no build step
puts hashes in the names, so nothing may be cached blindly).

Every console answer, errors included, carries the security headers: a Content-Security-Policy
that allows only this origin's scripts, styles and API (no inline script or style, nothing from
elsewhere, no framing, no form posts), ``nosniff`` and ``no-referrer``. The shell holds no data,
so it is served without a token even when read tokens are set (``auth_mw`` guards ``/v1`` only);
the page asks for a token when the API answers 401.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.resources
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from collector.http.keys import IO_POOL
from collector.http.middleware import error_response
from wharf.errors import NotFound

PACKAGE: Final = "collector.console"
INDEX: Final = "index.html"
# What the console is made of, by suffix; anything else in the package (its __init__.py) is
# not served.
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the console: its bytes, content type and entity tag."""

    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every servable file of the ``collector.console`` package, by name (blocking reads)."""
    assets: dict[str, Asset] = {}
    for entry in importlib.resources.files(PACKAGE).iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], etag)
    return assets


@functools.cache
def _cached_assets() -> dict[str, Asset]:
    # Read once per process: the files change only with the package, which restarts it. Two
    # first requests at once may both read them; either result is the same.
    return load_assets()


async def _assets(request: web.Request) -> dict[str, Asset]:
    if _cached_assets.cache_info().currsize:
        return _cached_assets()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[IO_POOL], _cached_assets)


def _answer(request: web.Request, asset: Asset) -> web.Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in _etags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = asset.content_type
    return web.Response(body=asset.body, headers=headers)


def _etags(header: str) -> set[str]:
    """The entity tags of an ``If-None-Match`` header (weak ones compare as strong: a GET)."""
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


def _not_found(request: web.Request, what: str) -> web.Response:
    answer = error_response(NotFound(f"{what}: {request.method} {request.path}"))
    answer.headers.update(SECURITY_HEADERS)
    return answer


async def index(request: web.Request) -> web.Response:
    """``GET /``: the page shell (no data in it; the page reads the API)."""
    assets = await _assets(request)
    if INDEX not in assets:
        return _not_found(request, f"the console is not installed ({PACKAGE} has no {INDEX})")
    return _answer(request, assets[INDEX])


async def static(request: web.Request) -> web.Response:
    """``GET /static/{name}``: one of the console's files."""
    name = request.match_info["name"]
    asset = (await _assets(request)).get(name)
    if asset is None:
        return _not_found(request, f"no console file {name!r}")
    return _answer(request, asset)
