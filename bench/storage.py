"""Storage benchmark: append, scan against ``zstd -dc | grep``, size against ``zstd -3``, pruning.

Run: ``.venv/bin/python bench/storage.py [--mb 200] [--json]``. Prints one JSON object.

For each real log (``../shared/data/logs/apache_combined.log`` and ``auth.log``), the file is
repeated to at least ``--mb`` megabytes, its lines are spread evenly over 24 hours of timestamps
and cut into batches of about ``BATCH_BYTES`` of text (what a busy shipper sends). Then:

- append: already-built batches into a fresh store, fsync "always" with group commit, a window
  of in-flight appends, as a collector would receive them from several connections;
- scan: ``grep -F -c`` and ``grep -E -c`` equivalents over the whole topic, side by side with
  ``zstd -dc FILE.zst | grep -c`` on the same lines (same answers checked), ratio printed;
- size: bytes on disk against ``zstd -3`` of the raw file;
- pruning: a 1-hour range out of the 24 hours, bytes read against a full scan.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.filters.query import Query  # noqa: E402
from collector.storage import Store, TopicConfig  # noqa: E402
from collector.storage.scan import ScanStats, count  # noqa: E402
from wharf import batch as wb  # noqa: E402
from wharf.record import Record  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "logs"
BATCH_BYTES = 4 << 20  # wharf ship's default batch size of text (shipper/oneshot.py)
DAY_NS = 86_400 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z

CASES = {
    "apache_combined.log": {"fixed": "Googlebot", "regex": r'HTTP/1\.[01]" 404 [0-9]+'},
    "auth.log": {"fixed": "Failed password", "regex": r"Invalid user [a-z]+ from [0-9.]+"},
}


def _repeat(src: Path, dst: Path, min_bytes: int) -> int:
    data = src.read_bytes()
    if not data.endswith(b"\n"):
        data += b"\n"
    copies = -(-min_bytes // len(data))
    with dst.open("wb") as f:
        for _ in range(copies):
            f.write(data)
    return copies * len(data)


def _batches(raw: Path, host: str, batch_bytes: int = BATCH_BYTES) -> tuple[list[bytes], int]:
    lines = raw.read_text().splitlines()
    n = len(lines)
    step = DAY_NS // n
    out: list[bytes] = []
    chunk: list[Record] = []
    size = 0
    for i, line in enumerate(lines):
        chunk.append(Record(ts=T0 + i * step, line=line, host=host, source=str(raw.name)))
        size += len(line) + 1
        if size >= batch_bytes:
            out.append(wb.build(chunk))
            chunk, size = [], 0
    if chunk:
        out.append(wb.build(chunk))
    return out, n


def _timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


def _grep_pipeline(zst: Path, args: list[str], pattern: str) -> tuple[int, float]:
    cmd = f"zstd -dc {zst} | LC_ALL=C.UTF-8 grep {' '.join(args)} -c -- '{pattern}'"
    t = time.perf_counter()
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
    return int(out.stdout.strip() or 0), time.perf_counter() - t


def _append_rate(
    store: Store, topic: str, batches: list[bytes], records: int, raw_bytes: int
) -> dict[str, object]:
    """Append ``batches`` (repeatedly, for at least 2 s and at most 20 rounds); report rates."""
    window: deque = deque()
    rounds = 0
    t = time.perf_counter()
    while rounds < 20 and (rounds == 0 or time.perf_counter() - t < 2.0):
        for b in batches:
            window.append(store.submit(topic, 0, b))
            if len(window) >= 16:
                window.popleft().result()
        rounds += 1
    while window:
        window.popleft().result()
    s = time.perf_counter() - t
    return {
        "batches": len(batches) * rounds,
        "records_per_s": round(records * rounds / s),
        "raw_mb_per_s": round(raw_bytes * rounds / s / 1e6, 1),
        "stored_mb_per_s": round(sum(map(len, batches)) * rounds / s / 1e6, 1),
        "seconds": round(s, 3),
    }


def bench_file(name: str, work: Path, min_bytes: int) -> dict[str, object]:
    raw = work / f"{name}.x"
    raw_bytes = _repeat(DATA / name, raw, min_bytes)
    zst = work / f"{name}.x.zst"
    subprocess.run(["zstd", "-q", "-3", "-f", str(raw), "-o", str(zst)], check=True)
    (batches, records), build_s = _timed(lambda: _batches(raw, "web-1"))
    small, _ = _batches(raw, "web-1", 1 << 20)
    small_bytes = sum(map(len, small))
    del small
    store_dir = work / f"store-{name}"
    result: dict[str, object] = {
        "file": name,
        "raw_bytes": raw_bytes,
        "records": records,
        "batches": len(batches),
        "build_records_per_s": round(records / build_s),
    }
    with Store(store_dir, fsync="always") as store:
        for topic in ("t", "rate-big", "rate-small"):
            store.create_topic(topic, TopicConfig(segment_bytes=256 << 20))
        small_batches, _ = _batches(raw, "web-1", 64 << 10)
        result["append"] = {
            "fsync": "always (group commit, 16 appends in flight)",
            f"batches_of_{BATCH_BYTES >> 20}mib": _append_rate(
                store, "rate-big", batches, records, raw_bytes
            ),
            "batches_of_64kib": _append_rate(
                store, "rate-small", small_batches, records, raw_bytes
            ),
        }
        del small_batches
        store.delete_topic("rate-big")
        store.delete_topic("rate-small")
        for b in batches:  # the topic that is scanned: one copy of the data
            store.append("t", 0, b)
        part = store.partition("t", 0)
        stored = part.size_bytes
        zst_bytes = zst.stat().st_size
        result["size"] = {
            "stored_bytes": stored,
            "zstd3_bytes": zst_bytes,
            "stored_over_zstd3": round(stored / zst_bytes, 3),
            "compression_ratio": round(raw_bytes / stored, 2),
            "batch_text_bytes": BATCH_BYTES,
            "with_1mib_batches_over_zstd3": round(small_bytes / zst_bytes, 3),
        }
        scans = {}
        for kind, pattern in CASES[name].items():
            q = Query(pattern=pattern, fixed=kind == "fixed")
            best = None
            for _ in range(3):
                stats = ScanStats()
                n, s = _timed(lambda q=q, stats=stats: count(part, q, stats=stats))
                best = s if best is None else min(best, s)
            grep_args = ["-F"] if kind == "fixed" else ["-E"]
            gbest = None
            for _ in range(3):
                gn, gs = _grep_pipeline(zst, grep_args, pattern)
                gbest = gs if gbest is None else min(gbest, gs)
            assert best is not None and gbest is not None
            scans[kind] = {
                "pattern": pattern,
                "matches": n,
                "grep_matches": gn,
                "same_answer": n == gn,
                "wharf_mb_per_s": round(raw_bytes / best / 1e6, 1),
                "zstd_grep_mb_per_s": round(raw_bytes / gbest / 1e6, 1),
                "ratio_vs_zstd_grep": round(gbest / best, 3),
            }
        result["scan"] = scans
        full, hour = ScanStats(), ScanStats()
        count(part, Query(pattern=CASES[name]["fixed"], fixed=True), stats=full)
        since = T0 + 12 * 3600 * 10**9
        q = Query(
            pattern=CASES[name]["fixed"], fixed=True, since_ns=since, until_ns=since + 3600 * 10**9
        )
        count(part, q, stats=hour)
        result["one_hour_of_24"] = {
            "bytes_read": hour.bytes_read,
            "full_scan_bytes_read": full.bytes_read,
            "fraction": round(hour.bytes_read / full.bytes_read, 4),
        }
    shutil.rmtree(store_dir)
    raw.unlink()
    zst.unlink()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mb", type=int, default=200, help="repeat each log to at least this many MB")
    ap.add_argument(
        "--json", action="store_true", help="JSON output (the default; kept for symmetry)"
    )
    ap.add_argument(
        "--dir",
        type=Path,
        default=ROOT / "bench" / "out",
        help="scratch space on a real disk (not tmpfs: fsync must cost what it costs)",
    )
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-", dir=args.dir))
    try:
        results = [bench_file(name, work, args.mb * 10**6) for name in CASES]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"bench": "storage", "cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
