"""Web console benchmark: the page in Debian's chromium (Playwright) against a real
``wharf collector run`` holding a 2M-line topic that spans 24 hours, side by side with the same
requests made by a plain HTTP client (the anchor: what the API itself takes).

Run: ``.venv/bin/python bench/console.py [--lines 2000000] [--runs 5] [--live 300] [--keep]``.
Prints one JSON object.

The topic: ``--lines`` JSON lines (a service, a level, a request line; about 110 bytes each),
their times spread evenly over the 24 hours that end when the benchmark starts, shipped with
``wharf ship -p json`` (timed: ``ship_s``). Measured, each the median (and min, max) of
``--runs`` page loads in a fresh browser context (nothing cached):

- ``page``: for a 1-hour and a 24-hour query of every record (``since=1h``, ``since=24h``), and
  a 24-hour query for a rare pattern: from navigation start to the first hit row in the DOM
  (``first_hit_ms``) and to the histogram's SVG in the DOM (``histogram_ms``), modules, CSS and
  the page's own requests included; ``page_ready_ms``: to the end of DOMContentLoaded, when
  the modules have run and the page's requests are sent;
- ``api``: the page's two requests made directly: ``/v1/search`` (limit 1000, newest first,
  progress) to its first hit line and to its end, and ``/v1/histogram`` (the page's step) to
  its answer;
- ``live``: ``--live`` lines sent one at a time by a producer, each acknowledged before the
  next; latency from the acknowledgement (``time.time()`` in this process) to the row in the
  page (``performance.timeOrigin + performance.now()`` when the row was added, corrected by
  the browser clock's measured offset) and, the anchor, to the line read from ``/v1/tail`` by
  a plain client in this process. p50, p99, max (min below 0 is the clock's error).

Never a test: numbers depend on the machine. They are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _collector import CollectorProcess  # noqa: E402  (bench/ is the script's dir)

from shipper.transport import Producer  # noqa: E402
from wharf import batch as wb  # noqa: E402
from wharf.record import Record  # noqa: E402

WHARF = str(Path(sys.executable).with_name("wharf"))
CHROMIUM = "/usr/bin/chromium"
TOPIC = "bench"
LIVE_TOPIC = "bench-live"
DAY_S = 86_400
RARE = "checkout failed"  # one line in RARE_EVERY
RARE_EVERY = 1000
# The page's histogram steps (histogram.js pickStep) for these ranges: 80 buckets at most.
PAGE_STEP_MS = {"1h": 60_000, "24h": 1_800_000}
LEVELS = ["debug", "info", "info", "info", "info", "info", "warn", "error"]
SERVICES = ["api", "web", "auth", "billing", "search"]

# Installed before the page's own scripts (Playwright injects it; the page's CSP does not
# apply): when the first hit row and the histogram's SVG enter the DOM, and when each live row
# does, by its line.
_MARKS = """
window.__marks = { rows: {} };
new MutationObserver((records) => {
  const now = performance.now();
  for (const r of records) for (const n of r.addedNodes) {
    if (!(n instanceof Element)) continue;
    if (n.classList.contains("row")) {
      window.__marks.firstHit ??= now;
      const line = n.querySelector(".line")?.textContent ?? "";
      window.__marks.rows[line] ??= performance.timeOrigin + now;
    } else if (n.tagName === "svg" && n.closest("#histogram")) {
      window.__marks.histogram ??= now;
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


def generate(path: Path, n: int, end_s: float) -> None:
    rng = random.Random(14)
    start = end_s - DAY_S
    with path.open("w") as f:
        for i in range(n):
            ts = start + DAY_S * (i + 0.5) / n
            iso = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
            svc = SERVICES[i % len(SERVICES)]
            if i % RARE_EVERY == RARE_EVERY // 2:
                msg = f"{RARE}: card declined for order {rng.randrange(10**6)}"
                level = "error"
            else:
                msg = f"GET /{svc}/items/{rng.randrange(10**5)} {rng.choice((200, 200, 200, 404, 500))} {rng.randrange(400)}ms"
                level = LEVELS[rng.randrange(len(LEVELS))]
            f.write(json.dumps({"ts": iso, "level": level, "svc": svc, "msg": msg}) + "\n")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    at = lambda q: s[min(len(s) - 1, round(q * (len(s) - 1)))]  # noqa: E731
    return {
        "n": len(s),
        "p50": round(at(0.5), 1),
        "p99": round(at(0.99), 1),
        "max": round(s[-1], 1),
        "min": round(s[0], 1),
    }


# -- the page -----------------------------------------------------------------------------


def page_load(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.add_init_script(_MARKS)
        page.goto(url)
        page.wait_for_function(
            "() => window.__marks.firstHit !== undefined && window.__marks.histogram !== undefined",
            timeout=300_000,
        )
        marks: dict[str, float] = page.evaluate(
            "({first: window.__marks.firstHit, histogram: window.__marks.histogram,"
            " ready: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd})"
        )
        requests: dict[str, list[float]] = page.evaluate(
            """Object.fromEntries(performance.getEntriesByType('resource')
              .filter((e) => e.name.includes('/v1/'))
              .map((e) => [new URL(e.name).pathname, [e.startTime, e.responseStart, e.responseEnd]]))"""
        )
        timings = {
            f"{path.removeprefix('/v1/')}_{what}_ms": t[i]
            for path, t in requests.items()
            for i, what in ((0, "sent"), (1, "first_byte"), (2, "end"))
        }
        return {
            **timings,
            "page_ready_ms": marks["ready"],
            "first_hit_ms": marks["first"],
            "histogram_ms": marks["histogram"],
        }
    finally:
        context.close()


# -- the API directly -----------------------------------------------------------------------


def ns(seconds: float) -> str:
    return str(round(seconds * 1000) * 1_000_000)


def api_search(http: int, params: list[tuple[str, str]]) -> dict[str, float]:
    conn = http_client(http)
    t0 = time.perf_counter()
    conn.request("GET", "/v1/search?" + urllib.parse.urlencode(params))
    resp = conn.getresponse()
    first = None
    for line in resp:
        if first is None and line.startswith(b'{"topic"'):
            first = time.perf_counter()
    end = time.perf_counter()
    conn.close()
    return {
        "first_hit_ms": ((first or end) - t0) * 1000,
        "done_ms": (end - t0) * 1000,
    }


def api_histogram(http: int, params: list[tuple[str, str]]) -> float:
    conn = http_client(http)
    t0 = time.perf_counter()
    conn.request("GET", "/v1/histogram?" + urllib.parse.urlencode(params))
    body = conn.getresponse().read()
    elapsed = (time.perf_counter() - t0) * 1000
    conn.close()
    assert b'"buckets"' in body, body[:300]
    return elapsed


def http_client(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=300)


# -- live -----------------------------------------------------------------------------------


class ApiTail(threading.Thread):
    """A plain client on ``/v1/tail``: when each line arrived (wall clock, ms)."""

    def __init__(self, http: int) -> None:
        super().__init__(daemon=True)
        self.http = http
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self.closing = False
        self.conn = http_client(http)

    def run(self) -> None:
        self.conn.request("GET", f"/v1/tail?topic={LIVE_TOPIC}")
        resp = self.conn.getresponse()
        try:
            for raw in resp:
                now = time.time() * 1000
                row = json.loads(raw)
                if row.get("heartbeat"):
                    self.ready.set()
                elif "line" in row:
                    self.seen.setdefault(row["line"], now)
        except (OSError, ValueError, AttributeError):
            if not self.closing:
                raise

    def close(self) -> None:
        self.closing = True
        self.conn.close()


async def send_live(address: str, n: int, gap_s: float) -> dict[str, float]:
    """Send ``n`` one-record batches, one at a time; the wall-clock ms of each ack by line."""
    pid = os.urandom(16)
    producer = Producer([address], producer_id=pid, client_name="bench-console", deadline_s=30)
    acked: dict[str, float] = {}
    try:
        for i in range(n):
            line = f"live {i:05d} {time.time():.3f}"
            record = Record(ts=time.time_ns(), line=line, host="bench", source="live")
            batch = wb.build([record], producer_id=pid, producer_seq=i + 1)
            await producer.send(LIVE_TOPIC, batch)
            acked[line] = time.time() * 1000
            await asyncio.sleep(gap_s)
    finally:
        await producer.close()
    return acked


def clock_offset(page: Any, tries: int = 20) -> tuple[float, float]:
    """The browser's wall clock (``performance.timeOrigin + performance.now()``) minus this
    process's ``time.time()``, in ms, from the round trip that took least; and half that round
    trip, the most the offset can be off by."""
    best = (0.0, float("inf"))
    for _ in range(tries):
        t0 = time.time() * 1000
        browser = float(page.evaluate("performance.timeOrigin + performance.now()"))
        t1 = time.time() * 1000
        if (t1 - t0) / 2 < best[1]:
            best = (browser - (t0 + t1) / 2, (t1 - t0) / 2)
    return best


def in_thread(coro: Any) -> Any:
    """Run a coroutine to its end on a thread of its own (Playwright's sync API holds this
    thread's event loop)."""
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(asyncio.run(coro)))
    t.start()
    t.join()
    if not result:
        raise SystemExit("the live producer failed (see above)")
    return result[0]


def live_latency(browser: Any, c: CollectorProcess, address: str, n: int) -> dict[str, Any]:
    in_thread(send_live(address, 1, 0))  # the topic exists before anyone tails it
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tail = ApiTail(c.http)
    try:
        page = context.new_page()
        page.add_init_script(_MARKS)
        page.goto(f"{c.url}/?topic={LIVE_TOPIC}&live=1")
        page.wait_for_function("() => document.getElementById('progress').dataset.state === 'live'")
        tail.start()
        tail.ready.wait(30)
        acked = in_thread(send_live(address, n, 0.02))
        last = list(acked)[-1]
        page.wait_for_function(
            "(l) => window.__marks.rows[l] !== undefined", arg=last, timeout=60_000
        )
        deadline = time.monotonic() + 30
        while last not in tail.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        rows: dict[str, float] = page.evaluate("window.__marks.rows")
        offset, error = clock_offset(page)
    finally:
        tail.close()
        context.close()
    missing = [line for line in acked if line not in rows]
    return {
        "lines": n,
        "page_missing": len(missing),
        "page_ms": percentiles(
            [rows[line] - offset - t for line, t in acked.items() if line in rows]
        ),
        "browser_clock_offset_ms": round(offset, 2),
        "browser_clock_offset_error_ms": round(error, 2),
        "api_ms": percentiles(
            [tail.seen[line] - t for line, t in acked.items() if line in tail.seen]
        ),
    }


# -- main -----------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--live", type=int, default=300, help="live lines sent (>= 200 for a p99)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (a dev dependency)

    work = Path(tempfile.mkdtemp(prefix="wharf-bench-console-"))
    end = time.time()
    source = work / "lines.log"
    out: dict[str, Any] = {"lines": args.lines, "runs": args.runs}
    c = CollectorProcess(work / "data")
    try:
        out["generate_s"] = round(timed(lambda: generate(source, args.lines, end)), 1)
        out["source_mb"] = round(source.stat().st_size / 1e6, 1)
        env = {**os.environ, "WHARF_COLLECTOR": f"127.0.0.1:{c.port}"}

        def ship() -> None:
            done = subprocess.run(
                [WHARF, "ship", "-q", "-t", TOPIC, "-p", "json", str(source)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"wharf ship failed: {done.stderr}")

        out["ship_s"] = round(timed(ship), 1)
        queries = {
            "1h": ([("topic", TOPIC)], 3600, "1h"),
            "24h": ([("topic", TOPIC)], DAY_S, "24h"),
            "24h_rare_pattern": ([("topic", TOPIC), ("q", RARE), ("fixed", "1")], DAY_S, "24h"),
        }
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            try:
                page_out: dict[str, Any] = {}
                api_out: dict[str, Any] = {}
                for name, (filters, span, since) in queries.items():
                    url = f"{c.url}/?" + urllib.parse.urlencode([*filters, ("since", since)])
                    page_load(browser, url)  # warm-up: files in the page cache
                    loads = [page_load(browser, url) for _ in range(args.runs)]
                    page_out[name] = {
                        k: summary([run[k] for run in loads if k in run]) for k in sorted(loads[0])
                    }
                    now = time.time()
                    rng = [("since", ns(now - span)), ("until", ns(now))]
                    search = [
                        *filters,
                        *rng,
                        ("limit", "1000"),
                        ("order", "desc"),
                        ("progress", "1"),
                    ]
                    step = [("step", str(PAGE_STEP_MS[since] * 1_000_000))]
                    api_search(c.http, search)
                    searches = [api_search(c.http, search) for _ in range(args.runs)]
                    api_out[name] = {
                        "search_first_hit_ms": summary([s["first_hit_ms"] for s in searches]),
                        "search_done_ms": summary([s["done_ms"] for s in searches]),
                        "histogram_ms": summary(
                            [
                                api_histogram(c.http, [*filters, *rng, *step])
                                for _ in range(args.runs)
                            ]
                        ),
                    }
                out["page"] = page_out
                out["api"] = api_out
                out["live"] = live_latency(browser, c, f"127.0.0.1:{c.port}", args.live)
            finally:
                browser.close()
    finally:
        c.stop()
        if args.keep:
            out["data"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
