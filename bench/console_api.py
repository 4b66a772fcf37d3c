"""Console API benchmark: what the web console waits for, measured at the HTTP API of a real
``wharf collector run``, side by side with ``zstd -dc FILE.zst | grep -c`` over the same lines.

Run: ``.venv/bin/python bench/console_api.py [--lines 2000000] [--runs 3] [--keep]``. Prints one
JSON object.

The topic: ``../shared/data/logs/apache_combined.log`` repeated to ``--lines`` lines, cut into
batches of about 4 MiB of text (``wharf ship``'s default), from 6 hosts on 4 partitions, each
line's level taken from its status (5xx error, 4xx warn, 3xx debug, else info), its records
spread evenly over the 24 hours that end when the data is written. The same lines, in the same
order, go to ``lines.log.zst`` (zstd -3, what the store uses). Measured, each the median of
``--runs`` runs after one warm-up (files in the page cache, as on a collector that serves them),
for the last hour and for the whole 24 hours:

- time to first hit: from sending ``/v1/search?since&until&limit=200`` to reading its first
  record, oldest first (the API's default) and newest first (a console's first screen);
- time to the histogram: ``/v1/histogram?since&until`` (100 buckets at most), sent until its
  JSON is read and decoded; and the same with a pattern (``q=PATTERN&fixed=1``);
- the anchor: ``zstd -dc lines.log.zst | grep -F -c PATTERN`` (every line decompressed and
  searched once, as a histogram with a pattern must); ``anchor_over_*`` is the anchor's time
  over ours (above 1: we are faster). The anchor cannot prune by time, so the 1-hour figures
  also show what the index saves.

Never a test: numbers depend on the machine. They are printed, not asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _collector import CollectorProcess  # noqa: E402  (bench/ is the script's dir)

from collector.storage import Store, TopicConfig  # noqa: E402
from wharf import batch as wb  # noqa: E402
from wharf.record import Record  # noqa: E402
from wharf.topics import partition_for  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "logs" / "apache_combined.log"
BATCH_BYTES = 4 << 20  # wharf ship's default batch size of text
PARTITIONS = 4
HOSTS = [f"web-{i}" for i in range(6)]
PATTERN = "Googlebot"
HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS
_STATUS = re.compile(r'" (\d{3}) ')


def _level(line: str) -> str:
    m = _STATUS.search(line)
    status = int(m.group(1)) if m else 200
    return (
        "error"
        if status >= 500
        else "warn"
        if status >= 400
        else "debug"
        if status >= 300
        else "info"
    )


def _chunks(lines: list[str], total: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for n in range(total):
        line = lines[n % len(lines)]
        chunk.append(line)
        size += len(line) + 1
        if size >= BATCH_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def build(work: Path, total: int) -> dict[str, Any]:
    """The store and the .zst file of the same lines; returns what was written."""
    lines = SOURCE.read_text().splitlines()
    levels = {line: _level(line) for line in lines}
    end = time.time_ns()
    start = end - DAY_NS
    step = DAY_NS // total
    raw = work / "lines.log"
    t = time.perf_counter()
    with Store(work / "data", fsync="never") as store, raw.open("w") as out:
        # retention: forever, so nothing is deleted while the benchmark runs
        store.create_topic("web", TopicConfig(partitions=PARTITIONS, retention_ms=-1))
        n = 0
        for k, chunk in enumerate(_chunks(lines, total)):
            host = HOSTS[k % len(HOSTS)]
            records = [
                Record(
                    ts=start + (n + i) * step,
                    line=line,
                    host=host,
                    source="/var/log/nginx/access.log",
                    level=levels[line],
                )
                for i, line in enumerate(chunk)
            ]
            store.append("web", partition_for(host, PARTITIONS), wb.build(records))
            out.write("\n".join(chunk) + "\n")
            n += len(chunk)
        info = store.describe("web")
    subprocess.run(["zstd", "-q", "-3", "-T0", "-f", str(raw), "-o", f"{raw}.zst"], check=True)
    raw_bytes = raw.stat().st_size
    raw.unlink()  # only the compressed copy is compared, as stored logs would be
    return {
        "records": n,
        "raw_bytes": raw_bytes,
        "stored_bytes": sum(p.bytes for p in info.partitions),
        "zst_bytes": Path(f"{raw}.zst").stat().st_size,
        "first_ts": start,
        "last_ts": start + (n - 1) * step,
        "build_s": round(time.perf_counter() - t, 1),
    }


def _median(url: str, fn: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    _quiet(url)
    fn()  # warm-up: page cache, the collector's lazily built state
    times = []
    for _ in range(runs):
        _quiet(url)
        times.append(fn())
    return statistics.median(times), times


def _quiet(url: str, timeout: float = 60) -> None:
    """Wait until the collector scans nothing: a first-hit request hangs up after one row, and
    its search stops only at its next batch; timing the next request meanwhile would measure
    both."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = _get(url, "/metrics", [])
        text = resp.read().decode()
        m = re.search(r"^wharf_http_searches_active (\S+)$", text, re.M)
        if m is None or float(m.group(1)) == 0:
            return
        time.sleep(0.05)
    raise SystemExit(f"searches still running after {timeout} s")


def _get(url: str, path: str, params: list[tuple[str, Any]]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=600)
    conn.request("GET", path + ("?" + urlencode(params) if params else ""))
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"{path}: HTTP {resp.status}: {resp.read()[:300]!r}")
    return resp


def _first_hit(url: str, params: list[tuple[str, Any]]) -> float:
    """Seconds from sending the search to reading its first record."""
    t = time.perf_counter()
    resp = _get(url, "/v1/search", params)
    try:
        while True:
            line = resp.readline()
            if not line:
                raise SystemExit(f"no hit for {params}")
            if b'"line"' in line:
                return time.perf_counter() - t
    finally:
        resp.close()


def _histogram(url: str, params: list[tuple[str, Any]]) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    resp = _get(url, "/v1/histogram", params)
    answer: dict[str, Any] = json.loads(resp.read())
    return time.perf_counter() - t, answer


def _anchor(zst: Path) -> tuple[float, int]:
    t = time.perf_counter()
    done = subprocess.run(
        f"zstd -dc {zst} | grep -F -c {PATTERN}", shell=True, capture_output=True, text=True,
        env={**os.environ, "LC_ALL": "C"}, check=False,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise SystemExit(f"zstd | grep: exit {done.returncode}: {done.stderr.strip()}")
    return time.perf_counter() - t, int(done.stdout.strip())


def _ms(x: float) -> float:
    return round(x * 1000, 1)


def measure(url: str, since: int, until: int, runs: int) -> dict[str, Any]:
    """One time window: first hits and histograms."""
    window = [("topic", "web"), ("since", since), ("until", until)]
    out: dict[str, Any] = {}
    for order in ("asc", "desc"):
        params = [*window, ("limit", 200), ("order", order)]
        med, all_runs = _median(url, lambda p=params: _first_hit(url, p), runs)
        out[f"first_hit_{order}_ms"] = _ms(med)
        out[f"first_hit_{order}_runs_ms"] = [_ms(x) for x in all_runs]
    for name, params in (("histogram", window), ("histogram_pattern", [*window, ("q", PATTERN),
                                                                       ("fixed", 1)])):  # fmt: skip
        med, all_runs = _median(url, lambda p=params: _histogram(url, p)[0], runs)
        _quiet(url)
        _, answer = _histogram(url, params)
        out[f"{name}_ms"] = _ms(med)
        out[f"{name}_runs_ms"] = [_ms(x) for x in all_runs]
        out[f"{name}_server_ms"] = answer["stats"]["elapsed_ms"]
        out[f"{name}_records"] = answer["total"]
        out[f"{name}_buckets"] = len(answer["buckets"])
        out[f"{name}_step_s"] = answer["step"] / 1e9
        out[f"{name}_batches_read"] = answer["stats"]["batches_read"]
        out[f"{name}_bytes_read"] = answer["stats"]["bytes_read"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=2_000_000, help="records (default 2,000,000)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("zstd is not installed")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="console-", dir=out_dir))
    result: dict[str, Any] = {"bench": "console_api", "cpus": os.cpu_count(), "pattern": PATTERN}
    try:
        built = build(work, args.lines)
        result["topic"] = built
        c = CollectorProcess(work / "data")
        try:
            end = built["last_ts"] + 1
            zst = work / "lines.log.zst"
            anchor, all_anchor = _median(c.url, lambda: _anchor(zst)[0], args.runs)
            matches = _anchor(zst)[1]
            result["anchor"] = {
                "command": f"zstd -dc lines.log.zst | grep -F -c {PATTERN}",
                "s": round(anchor, 3),
                "runs_s": [round(x, 3) for x in all_anchor],
                "matches": matches,
            }
            for name, span in (("last_1h", HOUR_NS), ("whole_24h", DAY_NS)):
                m = measure(c.url, end - span, end, args.runs)
                m["anchor_over_histogram"] = round(anchor * 1000 / m["histogram_ms"], 2)
                m["anchor_over_histogram_pattern"] = round(
                    anchor * 1000 / m["histogram_pattern_ms"], 2
                )
                result[name] = m
            if result["whole_24h"]["histogram_pattern_records"] != matches:
                raise SystemExit(
                    f"counts differ: histogram {result['whole_24h']['histogram_pattern_records']},"
                    f" zstd|grep {matches}"
                )
        finally:
            c.stop()
    finally:
        if args.keep:
            result["data"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
