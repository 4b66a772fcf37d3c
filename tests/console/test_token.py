"""The console with read tokens set: the shell and its files are served without a token (they
hold no data, and carry the security headers), the API is not, and the page asks for a token
when the API answers 401 (or 403 for a wrong one), keeps it for the tab and sends it."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.http.console import CSP
from tests.console.helpers import ConsolePage, ship_lines
from tests.harness import ROOT, CollectorProcess

TOKEN = "s3cret-read-token"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    base = tmp_path_factory.mktemp("token")
    config = base / "collector.toml"
    config.write_text(f'[auth]\nread_tokens = ["{TOKEN}"]\n')
    c = CollectorProcess(base / "data", args=["--config", str(config)]).start()
    ship_lines(c, "app", "raw", ["guarded line one", "guarded line two"])
    yield c
    c.close()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_the_shell_is_open_and_carries_the_security_headers(guarded: CollectorProcess) -> None:
    status, headers, body = get(f"{guarded.url}/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CSP
    assert (
        "default-src 'none'" in CSP
        and "script-src 'self'" in CSP
        and "frame-ancestors 'none'" in CSP
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    # No inline script or style: every script has a src, no style element or attribute.
    html = body.decode()
    assert re.findall(r"<script\b[^>]*>", html) and all(
        "src=" in tag for tag in re.findall(r"<script\b[^>]*>", html)
    )
    assert "<style" not in html and " style=" not in html and "on" + "click=" not in html
    # Revalidation: the same ETag gets 304, with the headers.
    again, h304, empty = get(f"{guarded.url}/", {"If-None-Match": headers["ETag"]})
    assert (again, empty) == (304, b"")
    assert h304["Content-Security-Policy"] == CSP
    for name, kind in (
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        status, headers, body = get(f"{guarded.url}/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert (
            headers["Cache-Control"] == "no-cache"
            and headers["X-Content-Type-Options"] == "nosniff"
        )
        assert body == (ROOT / "collector" / "console" / name).read_bytes()
    status, headers, body = get(f"{guarded.url}/static/__init__.py")
    assert status == 404 and headers["Content-Security-Policy"] == CSP
    assert b'"code":"not_found"' in body.replace(b" ", b"")
    # The API is not open.
    assert get(f"{guarded.url}/v1/topics")[0] == 401


def test_the_page_asks_for_a_token_and_keeps_it_for_the_tab(
    console: ConsolePage, guarded: CollectorProcess
) -> None:
    page = console.page
    # The API's 401 and 403 answers before the token is typed.
    console.allowed_errors += ["status of 401", "status of 403"]
    console.open(guarded.url, [("topic", "app"), ("since", "1h"), ("order", "asc")])
    dialog = page.locator("#token-dialog")
    dialog.wait_for(state="visible")
    assert "needs a read token" in (page.text_content("#token-why") or "")
    page.fill("#token", "wrong")
    page.press("#token", "Enter")
    page.wait_for_selector("#token-why >> text=refused")
    assert dialog.is_visible()
    page.fill("#token", TOKEN)
    page.click("#token-dialog button[type=submit]")
    console.wait_done()
    assert console.lines() == ["guarded line one", "guarded line two"]
    assert page.evaluate("sessionStorage.getItem('wharf.token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0  # never kept beyond the tab
    page.wait_for_selector("#status .ok")
    # A reload keeps it: no prompt.
    page.reload()
    console.wait_done()
    assert dialog.is_hidden()
    console.screenshot("token-light")


def test_declining_the_prompt_says_why(console: ConsolePage, guarded: CollectorProcess) -> None:
    console.allowed_errors += ["status of 401"]
    console.open(guarded.url, [("topic", "app")])
    console.page.locator("#token-dialog").wait_for(state="visible")
    console.page.click("#token-cancel")
    console.wait_state("error")
    assert "authentication required" in console.progress()
    assert console.page.locator("#token-dialog").is_hidden()


def test_console_files_are_package_data() -> None:
    """What the wheel and the Debian package carry: every file the page loads."""
    import tomllib  # noqa: PLC0415

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["collector.console"]
    files = sorted(
        p.name
        for p in (ROOT / "collector" / "console").iterdir()
        if p.suffix != ".py" and p.is_file()
    )
    assert files and all(any(Path(f).match(p) for p in patterns) for f in files)
