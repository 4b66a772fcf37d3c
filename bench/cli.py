"""CLI benchmark: ``wharf grep`` as a user runs it (a real child process against a real
``wharf collector run``), side by side with ``zstd -dc FILE.zst | grep``.

Run: ``.venv/bin/python bench/cli.py [--mb 512] [--runs 3] [--keep]``. Prints one JSON object.

The topic: ``../shared/data/logs/apache_combined.log`` repeated to at least ``--mb`` megabytes
of lines, cut into batches of about 4 MiB of text (``wharf ship``'s default), from 4 hosts on 4
partitions, its records spread evenly over the 24 hours that end when the data is written, so
the newest are recent. It is written straight into a store, then served by
``wharf collector run``. The same lines, in the same order, go to ``lines.log.zst`` (zstd -3,
what the store uses). Measured, each the median of ``--runs`` runs after one warm-up (files in
the page cache, as on a collector that serves them):

- ``grep -F -c``: ``wharf grep -F -c PATTERN`` against ``zstd -dc | grep -F -c PATTERN``
  (same count checked); ``speed_vs_zstd_grep`` is the pipeline's time over wharf's (target:
  0.8 or more);
- a 1-hour window: ``--from T --to T+1h`` in the middle of the 24 hours against the full
  scan (target: 8x faster or more), with the bytes each read;
- time to first result: ``wharf grep -F --since 5m PATTERN`` from starting the process to its
  first line of output (target: 300 ms or less); for scale, the same measured at the HTTP API
  (the server's share) and a ``wharf`` run that fails at once (the interpreter and imports).

Never a test: numbers depend on the machine. They are printed, not asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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
WHARF = str(Path(sys.executable).with_name("wharf"))
BATCH_BYTES = 4 << 20  # wharf ship's default batch size of text
PARTITIONS = 4
PATTERN = "Googlebot"
HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS


def _hosts() -> list[str]:
    """One host per partition."""
    by_part: dict[int, str] = {}
    i = 0
    while len(by_part) < PARTITIONS:
        name = f"web-{i}"
        by_part.setdefault(partition_for(name, PARTITIONS), name)
        i += 1
    return [by_part[p] for p in range(PARTITIONS)]


def _chunks(lines: list[str], copies: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for _ in range(copies):
        for line in lines:
            chunk.append(line)
            size += len(line) + 1
            if size >= BATCH_BYTES:
                yield chunk
                chunk, size = [], 0
    if chunk:
        yield chunk


def build(work: Path, megabytes: int) -> dict[str, Any]:
    """The store and the .zst file of the same lines; returns what was written."""
    text = SOURCE.read_text()
    lines = text.splitlines()
    copies = -(-megabytes * 1_000_000 // (len(text.encode()) + (not text.endswith("\n"))))
    total = copies * len(lines)
    end = time.time_ns()
    start = end - DAY_NS
    step = DAY_NS // total
    hosts = _hosts()
    raw = work / "lines.log"
    t = time.perf_counter()
    with Store(work / "data", fsync="never") as store, raw.open("w") as out:
        # retention: forever, so nothing is deleted while the benchmark runs
        store.create_topic("web", TopicConfig(partitions=PARTITIONS, retention_ms=-1))
        n = 0
        for k, chunk in enumerate(_chunks(lines, copies)):
            host = hosts[k % PARTITIONS]
            records = [
                Record(
                    ts=start + (n + i) * step, line=line, host=host, source="/var/log/access.log"
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


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update(WHARF_HTTP=url, LC_ALL="C")
    return env


def _median(fn: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    fn()  # warm-up: page cache, the collector's lazily built state
    times = [fn() for _ in range(runs)]
    return statistics.median(times), times


def _run(cmd: list[str], env: dict[str, str], shell: bool = False) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(
        cmd if not shell else " ".join(cmd), shell=shell, capture_output=True, text=True,
        env=env, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - t
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd}: exit {done.returncode}: {done.stderr.strip()}")
    return elapsed, done.stdout.strip()


def _first_line(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``cmd`` to its first line of output."""
    t = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - t
        proc.kill()
    if not line:
        raise SystemExit(f"{cmd}: no output")
    return elapsed


def _api_first_record(url: str, params: list[tuple[str, Any]]) -> float:
    host_port = url.removeprefix("http://")
    t = time.perf_counter()
    conn = http.client.HTTPConnection(host_port, timeout=60)
    try:
        conn.request("GET", "/v1/search?" + urlencode(params))
        resp = conn.getresponse()
        while True:
            line = resp.readline()
            if not line or b'"line"' in line:
                break
        return time.perf_counter() - t
    finally:
        conn.close()


def _api_stats(url: str, params: list[tuple[str, Any]]) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/v1/search?{urlencode(params)}", timeout=600) as resp:
        last = resp.read().splitlines()[-1]
    stats: dict[str, Any] = json.loads(last)["stats"]
    return stats


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=512, help="megabytes of lines (default 512)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("zstd is not installed")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cli-", dir=out_dir))
    result: dict[str, Any] = {"bench": "cli", "cpus": os.cpu_count(), "pattern": PATTERN}
    try:
        built = build(work, args.mb)
        result["topic"] = built
        c = CollectorProcess(work / "data")
        try:
            env = _env(c.url)
            runs = args.runs
            # time to first result first: the newest records are recent right now
            since = [WHARF, "grep", "-t", "web", "-F", "--since", "5m", "--limit", "20", PATTERN]
            ttfr, ttfr_all = _median(lambda: _first_line(since, env), max(5, runs))
            now = time.time_ns()
            api_params = [("topic", "web"), ("q", PATTERN), ("fixed", 1),
                          ("since", now - 5 * 60 * 10**9), ("limit", 20)]  # fmt: skip
            api, _ = _median(lambda: _api_first_record(c.url, api_params), max(5, runs))
            failing = [WHARF, "grep", "-c", "x", "--http", "http://127.0.0.1:9"]
            noop, _ = _median(lambda: _timed_fail(failing, env), runs)
            recent = _api_stats(c.url, [("topic", "web"), ("since", now - 5 * 60 * 10**9),
                                        ("count", 1)])  # fmt: skip
            result["time_to_first_result"] = {
                "command": " ".join(since[1:]),
                "cli_ms": round(ttfr * 1000, 1),
                "cli_runs_ms": [round(x * 1000, 1) for x in ttfr_all],
                "api_first_record_ms": round(api * 1000, 1),
                "cli_that_fails_at_once_ms": round(noop * 1000, 1),
                "records_in_last_5m": recent["matched"],
                "target_ms": 300,
                "met": ttfr * 1000 <= 300,
            }
            # full scan: wharf against zstd | grep
            count_cmd = [WHARF, "grep", "-t", "web", "-F", "-c", PATTERN]
            ours = _run(count_cmd, env)[1]
            zcmd = ["zstd", "-dc", f"{work / 'lines.log.zst'}", "|", "grep", "-F", "-c", PATTERN]
            theirs = _run(zcmd, env, shell=True)[1]
            if ours != theirs:
                raise SystemExit(f"counts differ: wharf {ours}, zstd|grep {theirs}")
            wharf_s, wharf_all = _median(lambda: _run(count_cmd, env)[0], runs)
            zstd_s, zstd_all = _median(lambda: _run(zcmd, env, shell=True)[0], runs)
            result["count"] = {
                "matches": int(ours),
                "wharf_grep_F_c_s": round(wharf_s, 3),
                "wharf_runs_s": [round(x, 3) for x in wharf_all],
                "zstd_dc_grep_F_c_s": round(zstd_s, 3),
                "zstd_runs_s": [round(x, 3) for x in zstd_all],
                "speed_vs_zstd_grep": round(zstd_s / wharf_s, 2),
                "wharf_MB_per_s": round(built["raw_bytes"] / wharf_s / 1e6, 1),
                "target": 0.8,
                "met": zstd_s / wharf_s >= 0.8,
            }
            # a 1-hour window in the middle of the 24 hours, against the full scan
            lo = built["first_ts"] + 12 * HOUR_NS
            window_cmd = [*count_cmd, "--from", _rfc3339(lo), "--to", _rfc3339(lo + HOUR_NS)]
            window_s, window_all = _median(lambda: _run(window_cmd, env)[0], runs)
            full_q = [("topic", "web"), ("q", PATTERN), ("fixed", 1), ("count", 1)]
            part_q = [*full_q, ("since", lo), ("until", lo + HOUR_NS)]
            full = _api_stats(c.url, full_q)
            part = _api_stats(c.url, part_q)
            server_full, _ = _median(lambda: _api_stats(c.url, full_q)["elapsed_ms"], runs)
            server_part, _ = _median(lambda: _api_stats(c.url, part_q)["elapsed_ms"], runs)
            result["count"]["server_scan_ms"] = round(server_full, 1)
            result["window_1h"] = {
                "command": " ".join(window_cmd[1:]),
                "window_s": round(window_s, 3),
                "window_runs_s": [round(x, 3) for x in window_all],
                "full_scan_s": round(wharf_s, 3),
                "speedup": round(wharf_s / window_s, 1),
                "server_window_ms": round(server_part, 1),
                "server_full_scan_ms": round(server_full, 1),
                "server_speedup": round(server_full / server_part, 1),
                "bytes_read_window": part["bytes_read"],
                "bytes_read_full": full["bytes_read"],
                "matches_window": part["matched"],
                "target": 8,
                "met": wharf_s / window_s >= 8,
            }
        finally:
            c.stop()
    finally:
        if args.keep:
            result["data"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


def _timed_fail(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, env=env, check=False)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
