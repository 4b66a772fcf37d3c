"""Cold segments benchmark: a needle in a compacted topic, its bytes, compaction's cost.

Run: ``.venv/bin/python bench/cold.py [--lines 2000000] [--runs 3] [--ingest-rounds 3]
[--keep]``. Prints one JSON object on stdout (progress goes to stderr). Needs ``zstd``, ``grep``.

The data: ``--lines`` generated access lines in the Apache combined format with two fields
appended as many nginx ``log_format``s do, ``... "UA" rid=<32 hex> rt=0.123``: a unique request
id per line. Request, status, size, referer and user agent come from a random line of
``../shared/data/logs/apache_combined.log`` (so their mix is a real one), the client address
from 50,000 addresses with a Zipf-like skew, the times spread evenly over 2025-12-31 (fixed, so
every run has the same bytes). They go to ``lines.log``, compressed with ``zstd -3 -T1`` (kept,
for the grep pipeline) and ``zstd -19 -T1`` (its size, wall and CPU time).

The collector (``wharf collector run``, fsync "always") is started four times on one data
directory, each time with its own ``[compaction]`` section:

1. compaction off: the lines go into topic ``a`` and then ``idle-2``, ``idle-3``, ...
   (``--ingest-rounds`` topics, each of one partition with small ``--segment-mib`` segments, so
   most of ``a`` is sealed), after a few batches into a warm-up topic: idle lines/s; ``a``'s
   stored bytes at ingest level (zstd 3);
2. compaction on (defaults: level 19, ``cpu_share`` 0.5): the background thread starts on
   ``a``'s sealed segments at once; once it has used CPU, the same rounds go into ``b-1``,
   ``b-2``, ...: lines/s while compacting, with the compactor thread's CPU time over them (the
   collector's thread at nice 10, per round too) and ``a``'s compacted segments before and
   after (then, bounded, until one more is done);
3. compaction off, filters on: ``wharf topics compact a -o json`` does the rest of ``a`` (its
   active segment rolled first) unpaced; the collector's CPU time around it
   (``/proc/PID/stat``) gives MB/s of raw text per core. (Not with the background thread on:
   the command would wait for its paced pass over the partition.) Then counts through the
   HTTP API (``GET /v1/search?count=1``, what ``wharf grep -F -c`` asks): the needle (the
   request id of the middle line) against full scans;
4. filters off: the needle again (every batch read).

Producers send batches built beforehand (cut as a shipper cuts them at its default
``batch_bytes``: once 2 MiB of text is reached, so a line past it; zstd 3) with 8 in flight,
so the producer's CPU stays small next to the collector's. Timings of queries and
of the grep pipeline are the median of ``--runs`` after one warm-up (files in the page cache).
``bytes.sample`` says what limits the bytes and the speed of compaction: the first batches'
text at zstd 19 in the blocks compaction makes of them (``[compaction] block_bytes``), in
pairs of batches, and all at once, and the CPU time of recompressing, merging and filtering two
batches. Other work on the machine skews every number: the load average is printed at start
and end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _collector import CollectorProcess  # noqa: E402  (bench/ is the script's dir)

from collector.filters import tokens  # noqa: E402
from collector.storage.compaction import CompactionSettings  # noqa: E402
from shipper.transport import Producer  # noqa: E402
from wharf import batch as wb  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "logs" / "apache_combined.log"
WHARF = str(Path(sys.executable).with_name("wharf"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
BATCH_BYTES = 2 << 20  # the shipper's default batch_bytes of text
WINDOW = 8  # batches in flight per producer, as a shipper sends them
DAY_NS = 86_400 * 10**9
T0 = 1_767_139_200 * 10**9  # 2025-12-31T00:00:00Z: the same bytes at every run
ADDRESSES = 50_000
COMPACTOR_NICE = 10  # collector.storage.compaction._NICE: how its thread is told apart
FULL_SCAN = "GET"  # in ~99 % of the lines, and no token strictly inside: no filter applies
FREQUENT_TOKEN = " 200 "  # token "200" strictly inside, in ~91 % of the batches' lines
HTTP_TIMEOUT_S = 900.0
WAIT_COMPACTOR_S = 60.0  # for the background thread to show CPU use after the restart
SAMPLE_BATCHES = 8  # batches whose text is compressed one by one and at once
WAIT_SEGMENT_S = 240.0  # after ingest b, for the background thread to swap a segment in

TARGET_NEEDLE_SPEEDUP = 20.0  # full scan over needle, same topic, same API
TARGET_STORED_OVER_ZSTD19 = 1.0
TARGET_FILTER_SHARE = 0.05
TARGET_INGEST_RATIO = 0.9  # lines/s while compacting over idle ("within 10 %")

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _log(msg: str) -> None:
    print(f"[bench/cold] {msg}", file=sys.stderr, flush=True)


# -- the data --------------------------------------------------------------------------------


def _sample_requests() -> list[str]:
    """``"METHOD PATH PROTO" STATUS SIZE "REFERER" "UA"`` of every line of the sample."""
    out = []
    for line in SOURCE.read_text().splitlines():
        _, sep, rest = line.partition("] ")
        if sep and rest.startswith('"'):
            out.append(rest)
    return out


def generate(path: Path, lines: int, seed: int) -> dict[str, Any]:
    """Write ``lines`` access lines to ``path``; where each batch of about ``BATCH_BYTES``
    starts (line index and byte offset), the times, and the middle line's request id."""
    rng = random.Random(seed)
    requests = _sample_requests()
    addresses = [
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(ADDRESSES)
    ]
    # A few clients make most requests (crawlers, proxies): weight 1/rank.
    cum_weights = list(accumulate(1.0 / (k + 1) for k in range(ADDRESSES)))
    start = T0
    step = DAY_NS // lines
    cuts: list[tuple[int, int]] = [(0, 0)]
    middle = lines // 2
    needle_id = ""
    stamp_s, stamp = -1, ""
    offset = chunk = 0
    block = 100_000  # lines drawn at once
    with path.open("wb") as out:
        for lo in range(0, lines, block):
            n = min(block, lines - lo)
            ips = rng.choices(addresses, cum_weights=cum_weights, k=n)
            reqs = rng.choices(requests, k=n)
            ids = rng.randbytes(16 * n).hex()
            rts = [rng.randint(1, 2500) for _ in range(n)]
            text = []
            for j in range(n):
                i = lo + j
                sec = (start + i * step) // 10**9
                if sec != stamp_s:
                    t = time.gmtime(sec)
                    stamp_s = sec
                    stamp = (
                        f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
                    )
                rid = ids[32 * j : 32 * j + 32]
                if i == middle:
                    needle_id = rid
                rt = rts[j]
                line = (
                    f"{ips[j]} - - [{stamp}] {reqs[j]} rid={rid} rt={rt // 1000}.{rt % 1000:03d}\n"
                )
                text.append(line)
                size = len(line)  # ASCII: characters are bytes
                offset += size
                chunk += size
                if chunk >= BATCH_BYTES:
                    cuts.append((i + 1, offset))
                    chunk = 0
            out.write("".join(text).encode())
    if cuts[-1][0] != lines:
        cuts.append((lines, offset))
    with path.open() as f:
        first_line = f.readline().rstrip("\n")
    return {
        "first_line": first_line,
        "cuts": cuts,
        "start_ns": start,
        "step_ns": step,
        "bytes": offset,
        "needle_id": needle_id,
        "middle": middle,
    }


def build_batches(path: Path, data: dict[str, Any], producer_id: bytes) -> list[bytes]:
    """The lines of ``path`` as batches of one producer (zstd 3, a span each, one time per
    record), cut where ``generate`` said."""
    raw = path.read_bytes()
    cuts = data["cuts"]
    start, step = data["start_ns"], data["step_ns"]
    out = []
    for (i0, o0), (i1, o1) in pairwise(cuts):
        run = wb.Run(
            raw[o0 : o1 - 1],
            i1 - i0,
            o0,
            ts=range(start + i0 * step, start + i1 * step, step),
            host="web-1",
            source="/var/log/nginx/access.log",
            file_id="access.log",
        )
        out.append(
            wb.build_parts(
                [run], producer_id=producer_id, spans=[wb.Span("access.log", o0, o1)], level=3
            )
        )
    return out


def _blocks(batches: list[wb.Batch], block_bytes: int) -> list[list[wb.Batch]]:
    """Runs of ``batches`` as compaction merges them (``collector.storage.compaction._groups``:
    one producer here; a run ends where the next batch's text would pass ``block_bytes``)."""
    runs: list[list[wb.Batch]] = []
    text = 0
    for b in batches:
        n = b.header.lines_ulen
        if runs and text + n <= block_bytes:
            runs[-1].append(b)
            text += n
        else:
            runs.append([b])
            text = n
    return runs


def batch_costs(batches: list[bytes]) -> dict[str, Any]:
    """What limits compaction's bytes and speed, on the first ``SAMPLE_BATCHES`` batches: their
    text at zstd 19 in the blocks compaction makes of them, in pairs of batches, and all at once
    (the block boundaries' cost); the CPU time of recompressing, merging and filtering them."""
    sample = [wb.Batch(buf) for buf in batches[:SAMPLE_BATCHES]]
    block_bytes = CompactionSettings().block_bytes
    blocks = _blocks(sample, block_bytes)
    ctx = zstandard.ZstdCompressor(level=19, write_content_size=True)

    def size(runs: list[list[wb.Batch]]) -> int:
        return sum(len(ctx.compress(b"\n".join(b.lines_blob() for b in run))) for run in runs)

    singles = [[b] for b in sample]
    by_batch = size(singles)
    by_block = by_batch if len(blocks) == len(sample) else size(blocks)
    pairs = size([sample[k : k + 2] for k in range(0, len(sample), 2)])
    at_once = size([sample])
    cpu: dict[str, float] = {}
    t = time.process_time()
    for b in sample[:2]:
        wb.recompress(b, 19)
    cpu["recompress_19_s"] = time.process_time() - t
    t = time.process_time()
    wb.merge(sample[:2], 19)
    cpu["merge_19_s"] = time.process_time() - t
    t = time.process_time()
    filter_bytes = 0
    for b in sample[:2]:
        found = tokens.line_tokens(b.lines_blob())
        filter_bytes += len(tokens.build(found, len(found)))
    cpu["token_filters_s"] = time.process_time() - t
    text = sum(b.header.lines_ulen for b in sample[:2])
    return {
        "batches": len(sample),
        "batch_text_bytes": [b.header.lines_ulen for b in sample],
        "block_bytes": block_bytes,
        "blocks_compaction_makes": len(blocks),
        "text_bytes": sum(b.header.lines_ulen for b in sample),
        "zstd19_bytes": {
            "batch_by_batch": by_batch,
            "compaction_blocks": by_block,
            "pairs_of_batches": pairs,
            "all_at_once": at_once,
        },
        "over_all_at_once": {
            "batch_by_batch": round(by_batch / at_once, 3),
            "compaction_blocks": round(by_block / at_once, 3),
            "pairs_of_batches": round(pairs / at_once, 3),
        },
        "cpu_of_the_first_2_batches": {
            **{k: round(v, 3) for k, v in cpu.items()},
            "text_bytes": text,
            "recompress_mb_per_s": round(text / cpu["recompress_19_s"] / 1e6, 2),
            "merge_mb_per_s": round(text / cpu["merge_19_s"] / 1e6, 2),
            "filter_share_of_cpu": round(
                cpu["token_filters_s"] / (cpu["recompress_19_s"] + cpu["token_filters_s"]), 3
            ),
            "filter_bytes_per_text_byte": round(filter_bytes / text, 4),
        },
    }


# -- processes -------------------------------------------------------------------------------


def _stat_fields(path: str) -> list[str] | None:
    try:
        raw = Path(path).read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # comm may hold spaces and parentheses


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    f = _stat_fields(f"/proc/{pid}/stat")
    return 0.0 if f is None else (int(f[11]) + int(f[12])) / CLK_TCK


def _compactor_cpu_s(pid: int) -> float | None:
    """CPU time of the collector's threads at the compactor's niceness (``None``: none)."""
    found = None
    for entry in os.scandir(f"/proc/{pid}/task"):
        f = _stat_fields(f"/proc/{pid}/task/{entry.name}/stat")
        if f is not None and int(f[16]) == COMPACTOR_NICE:
            found = (found or 0.0) + (int(f[11]) + int(f[12])) / CLK_TCK
    return found


def _pid(c: CollectorProcess) -> int:
    assert c.proc is not None, "the collector is not running"
    return c.proc.pid


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _config(work: Path, name: str, enabled: bool, filters: bool) -> Path:
    path = work / f"{name}.toml"
    path.write_text(
        "[compaction]\n"
        f"enabled = {str(enabled).lower()}\n"
        f"filters = {str(filters).lower()}\n"
    )  # fmt: skip
    return path


def _start(work: Path, name: str, *, enabled: bool, filters: bool = True) -> CollectorProcess:
    config = _config(work, name, enabled, filters)
    return CollectorProcess(
        work / "data", log=work / f"collector-{name}.log", args=["--config", str(config)]
    )


# -- the HTTP API ------------------------------------------------------------------------------


def _http(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
        return json.loads(resp.read())


def _describe(c: CollectorProcess, topic: str) -> dict[str, Any]:
    answer: dict[str, Any] = _http(f"{c.url}/v1/topics/{topic}")
    return answer


def _compaction(c: CollectorProcess, topic: str) -> dict[str, int]:
    parts = _describe(c, topic)["partitions"]
    keys = ("segments", "bytes_before", "bytes_after", "filter_bytes")
    return {k: sum((p["compaction"] or {}).get(k, 0) for p in parts) for k in keys}


def _count(url: str, topic: str, literal: str) -> tuple[float, int, dict[str, Any]]:
    """``GET /v1/search?count=1`` of ``-F literal``, as ``wharf grep -F -c`` asks: seconds at
    the client, the count, the search's stats."""
    params = [("topic", topic), ("q", literal), ("fixed", 1), ("count", 1)]
    t = time.perf_counter()
    with urllib.request.urlopen(
        f"{url}/v1/search?{urlencode(params)}", timeout=HTTP_TIMEOUT_S
    ) as resp:
        body = resp.read()
    elapsed = time.perf_counter() - t
    done = json.loads(body.splitlines()[-1])
    if not done.get("done"):
        raise SystemExit(f"search for {literal!r} ended without its last line: {body[-300:]!r}")
    return elapsed, int(done.get("count") or 0), done["stats"]


def _median(fn: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    fn()  # warm-up: page cache, the collector's lazily opened segments and filters
    times = [fn() for _ in range(runs)]
    return statistics.median(times), times


def _timed_count(url: str, topic: str, literal: str, runs: int) -> dict[str, Any]:
    counts: list[int] = []
    server_ms: list[float] = []
    last: dict[str, Any] = {}

    def one() -> float:
        nonlocal last
        s, n, stats = _count(url, topic, literal)
        counts.append(n)
        server_ms.append(stats["elapsed_ms"])
        last = stats
        return s

    med, times = _median(one, runs)
    if len(set(counts)) != 1:
        raise SystemExit(f"-F {literal!r}: the count changed between runs: {counts}")
    return {
        "literal": literal,
        "count": counts[0],
        "seconds": round(med, 4),
        "runs_s": [round(x, 4) for x in times],
        "server_ms": round(statistics.median(server_ms[1:]), 1),
        "batches_total": last["batches_total"],
        "batches_read": last["batches_read"],
        "bytes_read": last["bytes_read"],
        "bytes_decompressed": last["bytes_decompressed"],
    }


# -- ingest ----------------------------------------------------------------------------------


async def _send_all(port: int, topic: str, batches: list[bytes], producer_id: bytes) -> float:
    p = Producer([f"127.0.0.1:{port}"], producer_id=producer_id, window=WINDOW)
    try:
        await p.start()
        await asyncio.wait_for(p.connected.wait(), 30)
        t = time.perf_counter()
        acks = await asyncio.gather(*(p.send(topic, b) for b in batches))
        elapsed = time.perf_counter() - t
    finally:
        await p.close()
    dup = sum(a.duplicate for a in acks)
    if dup:
        raise SystemExit(f"{topic}: {dup} batches were taken as duplicates")
    return elapsed


def ingest_rounds(
    c: CollectorProcess,
    warmup: str,
    topics: list[str],
    batches: list[bytes],
    producer_id: bytes,
    lines: int,
    raw_bytes: int,
) -> dict[str, Any]:
    """Send ``batches`` into each of ``topics`` in turn, after a few into ``warmup`` (the new
    process's first appends, connections and files out of the numbers): lines/s from the first
    send to the last ACK over all rounds, the collector's CPU time and the compactor
    thread's over them."""
    pid = _pid(c)
    asyncio.run(_send_all(c.port, warmup, batches[:WINDOW], producer_id))
    seconds: list[float] = []
    cpu0, comp0, wall0 = _cpu_s(pid), _compactor_cpu_s(pid) or 0.0, time.monotonic()
    shares = []
    for topic in topics:
        comp_r, wall_r = _compactor_cpu_s(pid) or 0.0, time.monotonic()
        seconds.append(asyncio.run(_send_all(c.port, topic, batches, producer_id)))
        comp = (_compactor_cpu_s(pid) or 0.0) - comp_r
        shares.append(round(comp / (time.monotonic() - wall_r), 3))
        stored = _describe(c, topic)["records"]
        if stored != lines:
            raise SystemExit(f"{topic}: {stored} records stored, {lines} sent")
    wall = time.monotonic() - wall0
    cpu = _cpu_s(pid) - cpu0
    comp = (_compactor_cpu_s(pid) or 0.0) - comp0
    total = lines * len(topics)
    return {
        "topics": topics,
        "lines": total,
        "batches": len(batches) * len(topics),
        "seconds": round(sum(seconds), 3),
        "lines_per_s": round(total / sum(seconds)),
        "rounds_lines_per_s": [round(lines / s) for s in seconds],
        "raw_mb_per_s": round(raw_bytes * len(topics) / sum(seconds) / 1e6, 1),
        "collector_cpu_s": round(cpu, 2),
        "collector_cpu_us_per_line": round(cpu / total * 1e6, 2),
        "compactor_cpu_s": round(comp, 2),
        "compactor_share_of_a_core": round(comp / wall, 3),
        "rounds_compactor_share_of_a_core": shares,
    }


# -- zstd ------------------------------------------------------------------------------------


def _zstd(raw: Path, level: int, out: Path) -> dict[str, Any]:
    cpu0, t = _children_cpu_s(), time.perf_counter()
    subprocess.run(
        ["zstd", "-q", f"-{level}", "-T1", "-f", str(raw), "-o", str(out)], check=True
    )  # fmt: skip
    wall = time.perf_counter() - t
    cpu = _children_cpu_s() - cpu0
    return {
        "bytes": out.stat().st_size,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "raw_mb_per_s_per_core": round(raw.stat().st_size / cpu / 1e6, 2) if cpu else None,
    }


def _grep_pipeline(zst: Path, literal: str) -> tuple[float, int]:
    cmd = f"zstd -dc {shlex.quote(str(zst))} | grep -F -c -- {shlex.quote(literal)}"
    t = time.perf_counter()
    done = subprocess.run(
        cmd, shell=True, capture_output=True, text=True, check=False, env={**os.environ,
        "LC_ALL": "C"},
    )  # fmt: skip
    elapsed = time.perf_counter() - t
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd}: exit {done.returncode}: {done.stderr.strip()}")
    return elapsed, int(done.stdout.strip() or 0)


def _files(topic_dir: Path) -> dict[str, int]:
    """Bytes of the topic's files by suffix (``.seg``, ``.idx``, ``.tok``, ...)."""
    sizes: dict[str, int] = {}
    for p in topic_dir.rglob("*"):
        if p.is_file():
            sizes[p.suffix or p.name] = sizes.get(p.suffix or p.name, 0) + p.stat().st_size
    return dict(sorted(sizes.items()))


# -- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    lines, runs = args.lines, args.runs
    segment_bytes = int(args.segment_mib * (1 << 20))
    raw = work / "lines.log"
    _log(f"generating {lines:,} lines")
    t = time.perf_counter()
    data = generate(raw, lines, args.seed)
    raw_bytes = data["bytes"]
    rid = data["needle_id"]
    # The id must lie strictly inside the literal (a separator on both sides) to be looked up
    # in the filters: '=' before it, ' ' after it.
    needle = f"rid={rid} "
    _log(f"  {raw_bytes / 1e6:.0f} MB in {time.perf_counter() - t:.1f}s; needle {needle!r}")

    _log("zstd -3 -T1 and zstd -19 -T1 of the raw file")
    zst3 = work / "lines.log.zst"
    z3 = _zstd(raw, 3, zst3)
    z19_path = work / "lines.log.19.zst"
    z19 = _zstd(raw, 19, z19_path)
    z19_path.unlink()
    _log(f"  zstd -3 {z3['bytes']:,} B, zstd -19 {z19['bytes']:,} B in {z19['wall_s']}s")

    topic_cfg = {"partitions": 1, "retention_ms": -1, "segment_bytes": segment_bytes}
    producer_id = uuid.uuid4().bytes  # dedupe is per partition: one id serves every topic

    # 1. idle ingest: compaction off
    batches = build_batches(raw, data, producer_id)
    _log(f"zstd 19 of the first {SAMPLE_BATCHES} batches in blocks and at once")
    costs = batch_costs(batches)
    idle_topics = ["a", *(f"idle-{k}" for k in range(2, args.ingest_rounds + 1))]
    busy_topics = [f"b-{k}" for k in range(1, args.ingest_rounds + 1)]
    c = _start(work, "1-idle", enabled=False)
    try:
        for topic in ("warmup-1", "warmup-2", *idle_topics, *busy_topics):
            _http(f"{c.url}/v1/topics", "POST", {"name": topic, **topic_cfg})
        _log(f"ingest {len(batches)} batches x {len(idle_topics)}, compaction off")
        idle = ingest_rounds(c, "warmup-1", idle_topics, batches, producer_id, lines, raw_bytes)
        _log(f"  {idle['lines_per_s']:,} lines/s")
        before = _describe(c, "a")
    finally:
        c.stop()

    # 2. the same ingest while the background thread compacts a
    c = _start(work, "2-background", enabled=True)
    try:
        t0 = time.monotonic()
        while (_compactor_cpu_s(_pid(c)) or 0.0) < 0.3:
            if time.monotonic() - t0 > WAIT_COMPACTOR_S:
                raise SystemExit(f"no compactor thread at nice {COMPACTOR_NICE} using CPU")
            time.sleep(0.1)
        _log(f"compactor running ({time.monotonic() - t0:.1f}s after start); ingest b-*")
        seg0 = _compaction(c, "a")["segments"]
        busy = ingest_rounds(c, "warmup-2", busy_topics, batches, producer_id, lines, raw_bytes)
        wall1 = time.monotonic()
        seg1 = _compaction(c, "a")["segments"]
        _log(
            f"  {busy['lines_per_s']:,} lines/s; compactor at "
            f"{busy['compactor_share_of_a_core']} of a core"
        )
        # Show that the background thread finishes segments, not only burns CPU (bounded).
        seg2 = seg1
        while seg2 <= seg0 and time.monotonic() - wall1 < WAIT_SEGMENT_S:
            time.sleep(1.0)
            seg2 = _compaction(c, "a")["segments"]
        total = _compactor_cpu_s(_pid(c)) or 0.0
        background = {
            "segments_of_a_compacted_before_ingest": seg0,
            "after_ingest": seg1,
            "after_waiting": seg2,
            "waited_after_ingest_s": round(time.monotonic() - wall1, 1),
            "compactor_cpu_s_since_start": round(total, 2),
            "compactor_share_of_a_core_since_start": round(total / (time.monotonic() - t0), 3),
        }
    finally:
        c.stop()
    del batches

    # 3. the rest of a compacted now (unpaced), then the counts
    c = _start(work, "3-query", enabled=False)
    try:
        _log("wharf topics compact a")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
        env["WHARF_HTTP"] = c.url
        cpu0 = _cpu_s(_pid(c))
        t = time.perf_counter()
        done = subprocess.run(
            [WHARF, "topics", "compact", "a", "-o", "json"], capture_output=True, text=True,
            env=env, check=False, timeout=HTTP_TIMEOUT_S,
        )  # fmt: skip
        wall = time.perf_counter() - t
        cpu = _cpu_s(_pid(c)) - cpu0
        if done.returncode != 0:
            raise SystemExit(f"wharf topics compact: exit {done.returncode}: {done.stderr}")
        result = json.loads(done.stdout)
        compact = {
            "command": "wharf topics compact a -o json",
            "result": result,
            "wall_s": round(wall, 2),
            "collector_cpu_s": round(cpu, 2),
            "raw_mb_per_s_per_core": round(result["line_bytes"] / cpu / 1e6, 2) if cpu else None,
            "raw_mb_per_s_wall": round(result["line_bytes"] / wall / 1e6, 2),
        }
        _log(f"  {result['segments']} segments in {wall:.1f}s, {cpu:.1f}s CPU")
        after = _describe(c, "a")
        totals = _compaction(c, "a")
        files = _files(work / "data" / "topics" / "a")

        _log("counts through the HTTP API, filters on")
        needle_on = _timed_count(c.url, "a", needle, runs)
        full = _timed_count(c.url, "a", FULL_SCAN, runs)
        frequent = _timed_count(c.url, "a", FREQUENT_TOKEN, runs)
        # For scale: the id alone has no separator around it, so no token to look up.
        bare_s, bare_n, bare_stats = _count(c.url, "a", rid)
    finally:
        c.stop()

    # 4. filters off
    c = _start(work, "4-nofilters", enabled=False, filters=False)
    try:
        _log("needle count, filters off")
        needle_off = _timed_count(c.url, "a", needle, runs)
    finally:
        c.stop()

    _log("zstd -dc | grep -F -c")
    grep_counts: list[int] = []

    def grep_once() -> float:
        s, n = _grep_pipeline(zst3, needle)
        grep_counts.append(n)
        return s

    grep_s, grep_all = _median(grep_once, runs)

    if needle_on["count"] != 1 or needle_off["count"] != 1 or set(grep_counts) != {1}:
        raise SystemExit(
            f"needle counts: filters on {needle_on['count']}, off {needle_off['count']}, "
            f"zstd|grep {grep_counts} (each must be 1)"
        )

    stored_before = before["bytes"]
    stored_after = after["bytes"]
    filter_bytes = totals["filter_bytes"]
    with_filters = stored_after + filter_bytes
    speedup = full["seconds"] / needle_on["seconds"]
    ratio19 = with_filters / z19["bytes"]
    share = filter_bytes / with_filters
    ingest_ratio = busy["lines_per_s"] / idle["lines_per_s"]
    return {
        "input": {
            "lines": lines,
            "raw_bytes": raw_bytes,
            "avg_line_bytes": round(raw_bytes / lines, 1),
            "example_line": data["first_line"],
            "batch_text_bytes": BATCH_BYTES,
            "batches": len(data["cuts"]) - 1,
            "segment_bytes": segment_bytes,
        },
        "needle": {
            "literal": needle,
            "line_index": data["middle"],
            "why": "-F 'rid=<id> ': the id lies strictly inside the literal ('=' before it, "
            "' ' after it), so it is a whole token of any line that matches and the token "
            "filters can rule batches out; 'rid' touches the literal's start and is not used",
        },
        "count_http_api": {
            "needle_filters_on": needle_on,
            "needle_filters_off": needle_off,
            "full_scan": full,
            "full_scan_over_needle": round(speedup, 1),
            "filters_off_over_on": round(needle_off["seconds"] / needle_on["seconds"], 1),
            "frequent_token": frequent,
            "bare_id_no_separators": {
                "literal": rid,
                "count": bare_n,
                "seconds": round(bare_s, 4),
                "batches_read": bare_stats["batches_read"],
                "note": "one run; no token strictly inside, so no filter applies: a full scan",
            },
        },
        "zstd_grep": {
            "command": f"zstd -dc lines.log.zst | grep -F -c '{needle}'  (zstd -3 -T1)",
            "count": grep_counts[0],
            "seconds": round(grep_s, 4),
            "runs_s": [round(x, 4) for x in grep_all],
            "over_wharf_needle": round(grep_s / needle_on["seconds"], 1),
        },
        "bytes": {
            "raw": raw_bytes,
            "zstd_3": z3["bytes"],
            "zstd_19": z19["bytes"],
            "zstd_19_T1": z19,
            "stored_at_ingest_level_3": stored_before,
            "stored_after_compaction_segments": stored_after,
            "filter_bytes": filter_bytes,
            "stored_after_compaction_with_filters": with_filters,
            "files_on_disk_by_suffix": files,
            "before_over_zstd_3": round(stored_before / z3["bytes"], 3),
            "after_over_zstd_3": round(with_filters / z3["bytes"], 3),
            "after_over_zstd_19": round(ratio19, 3),
            "segments_only_over_zstd_19": round(stored_after / z19["bytes"], 3),
            "filter_share_of_stored": round(share, 4),
            "compaction_totals": totals,
            "batches_stored_after_compaction": needle_on["batches_total"],
            "sample": costs,
        },
        "compaction_now": compact,
        "ingest": {
            "idle_compaction_off": idle,
            "while_compacting": busy,
            "ratio": round(ingest_ratio, 3),
            "background": background,
        },
        "targets": {
            "needle_vs_full_scan": {
                "target": f">= {TARGET_NEEDLE_SPEEDUP}x",
                "measured": round(speedup, 1),
                "met": speedup >= TARGET_NEEDLE_SPEEDUP,
            },
            "stored_over_zstd19": {
                "target": f"<= {TARGET_STORED_OVER_ZSTD19} (segments + filters)",
                "measured": round(ratio19, 3),
                "met": ratio19 <= TARGET_STORED_OVER_ZSTD19,
            },
            "filter_share_of_stored": {
                "target": f"<= {TARGET_FILTER_SHARE}",
                "measured": round(share, 4),
                "met": share <= TARGET_FILTER_SHARE,
            },
            "ingest_while_compacting_over_idle": {
                "target": f">= {TARGET_INGEST_RATIO}",
                "measured": round(ingest_ratio, 3),
                "met": ingest_ratio >= TARGET_INGEST_RATIO,
            },
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lines", type=int, default=2_000_000, help="generated lines (~260 B each)")
    ap.add_argument(
        "--segment-mib",
        type=float,
        default=None,
        help="segment_bytes of the topics in MiB (default: 8 per 2M lines, at least 1)",
    )
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement")
    ap.add_argument(
        "--ingest-rounds",
        type=int,
        default=3,
        help="topics of --lines each ingested idle, and again while compacting",
    )
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--keep", action="store_true", help="keep the work directory under bench/out")
    args = ap.parse_args()
    if args.segment_mib is None:
        args.segment_mib = max(1.0, 8.0 * args.lines / 2_000_000)
    for tool in ("zstd", "grep"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-cold-", dir=out_dir))
    load_start = os.getloadavg()
    t = time.perf_counter()
    try:
        body = run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "bench": "cold",
        "load_avg": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "zstd": subprocess.run(
                ["zstd", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
        },
        "seconds": round(time.perf_counter() - t, 1),
        **({"work": str(work)} if args.keep else {}),
        **body,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
