"""Fixtures of the web console's browser tests: Debian's chromium driven by Playwright, a real
collector child process with real logs shipped by ``wharf ship``, and a page that fails the test
on any script error, CSP violation or unexpected dialog.

Every test of this folder is marked ``browser``. Without ``/usr/bin/chromium`` they are skipped
with the reason, except in CI (``CI`` set), where a missing browser fails them: ``.ci/run``
installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.helpers import ARTIFACTS, CHROMIUM, ConsolePage, ship_lines
from tests.harness import ROOT, CollectorProcess

LOGS = ROOT.parent / "shared" / "data" / "logs"

# Chromium refuses to connect to these ports (net/base/port_util.cc, kRestrictedPorts, those
# >= 1024); a collector restarted on a fixed port (tests/harness/ports.py hands out ports below
# the ephemeral range) may get one of them.
_UNSAFE_PORTS = "1719,1720,1723,2049,3659,4045,4190,5060,5061,6000,6566,6665,6666,6667,6668,6669,6679,6697,10080"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and every later asyncio.run() of the same xdist worker then fails
# ("cannot be called from a running event loop": 247 errors in a fresh-clone CI run).
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the worker's whole session (each test gets its own context)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI runs these tests")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (only when a browser exists)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=[f"--explicitly-allowed-ports={_UNSAFE_PORTS}"]
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def console(browser: Any) -> Iterator[ConsolePage]:
    """A fresh browser context (storage, permissions) and page; after the test, no script
    error, console error or dialog may have happened in it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    context.set_default_timeout(30_000)
    page = ConsolePage(context)
    try:
        yield page
        page.assert_clean()
    finally:
        context.close()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """A collector with real logs (../shared/data/logs, see its README): ``web`` (the 10,000
    Apache combined lines, elastic/examples), ``kafka`` (the Kafka controller's log4j log, levels
    trace to error, elastic/examples), and ``xss`` (lines that look like HTML)."""
    base = tmp_path_factory.mktemp("console")
    c = CollectorProcess(base / "data").start()
    c.ship("web", "clf", LOGS / "apache_combined.log")
    c.ship("kafka", "auto", LOGS / "kafka_controller.log")
    ship_lines(c, "xss", "json", XSS_LINES)
    yield c
    c.close()


# Lines a page must show as text: if any became HTML, a script would run or an image load.
XSS_LINES = [
    '{"level": "error", "msg": "<script>alert(1)</script>", "user": "<img src=x onerror=alert(2)>"}',
    "<img src=x onerror=alert(3)> and <b>bold</b> &amp; <svg onload=alert(4)>",
]
