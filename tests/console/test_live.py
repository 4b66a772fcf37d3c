"""The web console's live tail (``live=1``) in a real browser against a real collector child:
a line shipped after the page opened appears; Pause, scrolling up and a text selection pause the
view visibly, without moving it, and resuming loses nothing; a collector killed and restarted
under the page is followed again with no gap and no repeat."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.helpers import ConsolePage, ship_lines
from tests.harness import WHARF, CollectorProcess, clean_env


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    c = CollectorProcess(tmp_path_factory.mktemp("live") / "data").start()
    yield c
    c.close()


def batch(tag: str, n: int) -> list[str]:
    return [f"{tag} line {i:03d}" for i in range(n)]


def wait_lines(console: ConsolePage, n: int) -> None:
    """Until the list holds ``n`` rows (the status line counts them)."""
    console.page.wait_for_function(
        "(n) => document.getElementById('progress').textContent.includes(`${n.toLocaleString()} records`)",
        arg=n,
    )


def test_a_line_shipped_after_the_page_opened_appears(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    ship_lines(collector, "live-a", "raw", batch("before", 5))
    console.open(collector.url, [("topic", "live-a"), ("live", "1")])
    console.wait_state("live")
    wait_lines(console, 5)  # the backfill
    assert console.page.is_visible("#pause") and console.page.is_hidden("#histogram")
    ship_lines(collector, "live-a", "raw", ["shipped after the page opened"])
    wait_lines(console, 6)
    shown = [*batch("before", 5), "shipped after the page opened"]
    assert console.lines() == shown
    console.screenshot("live-light")
    # "Copy as CLI" gives the same tail as a command (run here without following).
    console.context.grant_permissions(["clipboard-read", "clipboard-write"])
    console.page.click("#copy-cli")
    command = console.clipboard()
    assert command == f"wharf tail -t live-a -n 100 --http {collector.url}"
    env = clean_env(PATH=f"{Path(WHARF).parent}:{os.environ['PATH']}")
    run = subprocess.run(
        ["bash", "-c", f"{command} --no-follow -o raw"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == shown


def test_pause_buffers_and_resume_loses_nothing(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    page = console.page
    ship_lines(collector, "live-b", "raw", batch("first", 3))
    console.open(collector.url, [("topic", "live-b"), ("live", "1")])
    console.wait_state("live")
    wait_lines(console, 3)
    page.focus("#hits")
    page.keyboard.press(" ")  # Space pauses
    console.wait_state("paused")
    ship_lines(collector, "live-b", "raw", batch("paused", 40))
    page.wait_for_selector("#newrows:text-is('40 new ↓')")
    assert console.dom_rows() == 3  # the DOM did not change while paused
    assert "paused (paused) · 40 new" in console.progress()
    page.click("#newrows")
    wait_lines(console, 43)
    assert console.state() == "live"
    assert console.lines() == [*batch("first", 3), *batch("paused", 40)]


def test_scrolling_up_pauses_and_a_selection_is_never_taken(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    page = console.page
    ship_lines(collector, "live-c", "raw", batch("fill", 20))
    console.open(collector.url, [("topic", "live-c"), ("live", "1")])
    console.wait_state("live")
    ship_lines(collector, "live-c", "raw", batch("more", 100))
    wait_lines(console, 120)
    # Following: the end is in view.
    page.wait_for_function(
        "() => { const v = document.getElementById('hits'); return v.scrollHeight - v.scrollTop - v.clientHeight < 20; }"
    )
    page.hover("#hits")
    page.mouse.wheel(0, -600)
    console.wait_state("paused")
    assert "paused (scrolled up)" in console.progress()
    top = page.evaluate("document.getElementById('hits').scrollTop")
    ship_lines(collector, "live-c", "raw", batch("while up", 30))
    page.wait_for_selector("#newrows:text-is('30 new ↓')")
    assert page.evaluate("document.getElementById('hits').scrollTop") == top  # nothing moved
    # Back at the end, it follows again and shows what came meanwhile.
    page.mouse.wheel(0, 100_000)
    wait_lines(console, 150)
    console.wait_state("live")
    # Select text in a row: the view pauses, new lines wait, the selection stays.
    row = page.locator("#hits .row .line").last
    row.select_text()
    chosen = page.evaluate("getSelection().toString()")
    assert chosen.startswith("while up line")
    console.wait_state("paused")
    assert "paused (text selected)" in console.progress()
    ship_lines(collector, "live-c", "raw", batch("while selected", 10))
    page.wait_for_selector("#newrows:text-is('10 new ↓')")
    assert page.evaluate("getSelection().toString()") == chosen
    page.evaluate("getSelection().removeAllRanges()")
    wait_lines(console, 160)
    console.wait_state("live")
    want = [
        *batch("fill", 20),
        *batch("more", 100),
        *batch("while up", 30),
        *batch("while selected", 10),
    ]
    assert console.lines() == want


def test_a_collector_restart_resumes_with_no_gap_and_no_repeat(
    console: ConsolePage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    page = console.page
    # While the collector is away the browser logs each failed connection as an error.
    console.allowed_errors += ["net::ERR_CONNECTION_REFUSED", "net::ERR_FAILED", "net::ERR_CONNECTION_RESET",
                               "net::ERR_INCOMPLETE_CHUNKED_ENCODING", "net::ERR_EMPTY_RESPONSE"]  # fmt: skip
    c = CollectorProcess(tmp_path_factory.mktemp("restart") / "data", fixed_ports=True).start()
    ship_lines(c, "app", "raw", batch("old", 3))
    console.open(c.url, [("topic", "app"), ("live", "1")])
    console.wait_state("live")
    wait_lines(console, 3)
    ship_lines(c, "app", "raw", batch("before", 10))
    wait_lines(console, 13)
    c.kill()
    console.wait_state("reconnecting")
    # Hold the page's reconnection until lines were stored after the restart: they are the
    # gap a tail that resumed from "now" would miss.
    refused: list[str] = []

    def unreachable(route: object) -> None:
        refused.append("tail")
        route.abort()  # type: ignore[attr-defined]

    page.route(lambda url: "/v1/tail" in url, unreachable)
    c.restart()
    ship_lines(c, "app", "raw", batch("during", 10))
    for _ in range(300):  # the page retries every few seconds; Playwright routes while it waits
        if refused:
            break
        page.wait_for_timeout(100)
    assert refused, "the page did not try to reconnect"
    page.unroute_all()
    wait_lines(console, 23)
    console.wait_state("live")
    ship_lines(c, "app", "raw", batch("after", 10))
    wait_lines(console, 33)
    want = [*batch("old", 3), *batch("before", 10), *batch("during", 10), *batch("after", 10)]
    assert console.lines() == want
    console.page.emulate_media(color_scheme="dark")
    console.screenshot("live-dark")
