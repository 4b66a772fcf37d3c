"""What the console tests do with a page: open a query, wait for its states, read the rows of the
virtualized list (scrolling through it, as a user would), and ship lines to the collector."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.harness import ROOT, CollectorProcess

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "console"
# The page cuts lines longer than this (rows.js CUT_CHARS); its rows show that much.
CUT_CHARS = 240

# Scrolls through the list one screen at a time (a bounded number of steps), waiting two frames
# after each for the rows to render, and returns every row's line text by row number.
_READ_ROWS = """async (max) => {
  const vp = document.getElementById("hits");
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const seen = new Map();
  let most = 0;
  vp.scrollTop = 0;
  for (let i = 0; i < max; i++) {
    await frame();
    const rows = vp.querySelectorAll(".row");
    most = Math.max(most, rows.length);
    for (const el of rows) seen.set(Number(el.dataset.seq), el.querySelector(".line").textContent);
    if (vp.scrollTop + vp.clientHeight >= vp.scrollHeight - 1) break;
    vp.scrollTop += vp.clientHeight;
  }
  const seqs = [...seen.keys()].sort((a, b) => a - b);
  return { lines: seqs.map((s) => seen.get(s)), first: seqs[0] ?? 0, last: seqs.at(-1) ?? -1, most };
}"""


def ship_lines(c: CollectorProcess, topic: str, parser: str, lines: Sequence[str]) -> None:
    """``wharf ship`` the lines (returns once the collector acknowledged every one)."""
    c.ship(topic, parser, "-", stdin="".join(f"{line}\n" for line in lines))


def rfc3339(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, as the page writes it."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class ConsolePage:
    """A page of the console in its own browser context, recording what went wrong in it."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        # Responses the test expects to fail (a 401 before the token is typed): the browser
        # logs each as a console error.
        self.allowed_errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)

    def _console(self, msg: Any) -> None:
        if msg.type == "error" and not any(a in msg.text for a in self.allowed_errors):
            self.errors.append(f"console error: {msg.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_clean(self) -> None:
        assert not self.errors, self.errors
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"

    # -- navigation and states ------------------------------------------------------------

    def open(self, base: str, params: Sequence[tuple[str, str]] = ()) -> None:
        query = urllib.parse.urlencode(list(params))
        self.page.goto(f"{base}/{'?' + query if query else ''}")

    def query(self) -> dict[str, list[str]]:
        """The page's URL query, parsed."""
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.page.url).query)

    def state(self) -> str:
        return str(self.page.get_attribute("#progress", "data-state") or "")

    def progress(self) -> str:
        return str(self.page.text_content("#progress") or "")

    def wait_state(self, *states: str, timeout: float = 30_000) -> None:
        self.page.wait_for_function(
            "(states) => states.includes(document.getElementById('progress').dataset.state)",
            arg=list(states),
            timeout=timeout,
        )

    def wait_done(self) -> None:
        """Until the search, its histogram and its facets are shown; fails on an error."""
        self.wait_state("done", "error")
        assert self.state() == "done", self.progress()
        for part in ("histogram", "facets"):
            self.page.wait_for_function(
                f"() => document.getElementById('{part}').dataset.state !== 'loading'"
            )
            state = self.page.get_attribute(f"#{part}", "data-state")
            assert state == "ready", self.page.text_content(f"#{part}")

    # -- reading --------------------------------------------------------------------------

    def rows(self, max_screens: int = 10_000) -> dict[str, Any]:
        """Every row of the list, scrolling through it: ``lines`` (cut at CUT_CHARS),
        ``first``/``last`` row numbers, ``most`` rows in the DOM at once."""
        result: dict[str, Any] = self.page.evaluate(_READ_ROWS, max_screens)
        return result

    def lines(self) -> list[str]:
        return list(self.rows()["lines"])

    def dom_rows(self) -> int:
        return int(self.page.evaluate("document.querySelectorAll('#hits .row').length"))

    def histogram(self) -> list[dict[str, int]]:
        """The SVG's buckets: ``from``/``to`` (ms) and the count of every level's rect."""
        buckets: list[dict[str, int]] = self.page.evaluate(
            """() => [...document.querySelectorAll('#histogram g.bucket')].map((g) => ({
              from: Number(g.dataset.from), to: Number(g.dataset.to),
              count: [...g.querySelectorAll('rect.bar')].reduce((n, r) => n + Number(r.dataset.count), 0),
            }))"""
        )
        return buckets

    def clipboard(self) -> str:
        return str(self.page.evaluate("navigator.clipboard.readText()"))

    def screenshot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
