"""Cluster benchmark: ingest through collectors on NATS JetStream (R1, R3; 1 and 2 collectors)
against one collector on the embedded store, grep over the stored topic, time pruning.

Run: ``.venv/bin/python bench/cluster.py [--mb 64] [--rounds 4] [--repeats 3] [--producers 2]
[--json]``. Prints one JSON object; takes a minute or two with the defaults on 2 cores.

The real log ``../shared/data/logs/apache_combined.log`` is repeated to at least ``--mb``
megabytes and split between ``--producers`` producers, each its own host (landing on its own
partition of a topic with as many partitions) and its own file; each producer's lines are spread
evenly over the same 24 hours and cut into batches of ``--batch-kb`` of text with the spans and
sequence numbers a shipper sends; ``--rounds`` times, each round as the next rotated file (so
the collector stores it again rather than dropping it as a resend), for a timing long enough to
mean something. Everything is built before the clock starts. Then, in one run:

- ingest: the batches go through the native protocol (``shipper.transport.Producer``, a window
  of 8 in flight) to real ``wharf collector run`` processes: one on the embedded store (fsync
  "always", group commit: the anchor), then in cluster mode on a 1-node NATS (R1) and a 3-node
  NATS cluster (R3, ``sync_interval: always``: every node fsyncs), with 1 collector and with 2
  (the producers split between them). Records/s and MB/s of raw text from the first send to the
  last ACK, the fastest of ``--repeats`` ingests (each into a fresh topic); the stored records
  and line bytes are checked through each collector's HTTP API; the CPU seconds each process
  group used during the ingest are printed next to the rates;
- grep: ``grep -F -c`` equivalent (``Storage.count``) over the stored topic, in this process,
  on the ``JetStreamStore`` of the R3 data and on the embedded ``Store`` the anchor collector
  wrote; same answer checked against GNU ``grep -F -c`` of the raw text; best of 3;
- time pruning: a 1-hour range out of the 24 hours against the full scan on the JetStream store:
  bytes read and time, the count checked against the embedded store's and the one computed here.

Every process runs on this machine, so the NATS servers, the collectors and the producers share
its cores: the figures are the cost of the whole system on one box, not a network's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.filters.query import Query  # noqa: E402
from collector.storage import Store  # noqa: E402
from collector.storage.jetstream import JetStreamStore  # noqa: E402
from collector.storage.scan import ScanStats  # noqa: E402
from shipper.transport import Producer  # noqa: E402
from tests.harness import CollectorProcess  # noqa: E402
from tests.harness.nats import NatsCluster, nats_server_binary  # noqa: E402
from tests.harness.wait import wait_for  # noqa: E402
from wharf import batch as wb  # noqa: E402
from wharf.record import Record  # noqa: E402
from wharf.topics import partition_for  # noqa: E402

T = TypeVar("T")

LOG = ROOT.parent / "shared" / "data" / "logs" / "apache_combined.log"
PATTERN = "Googlebot"  # as bench/storage.py's fixed-string case for this log
DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
WINDOW = 8  # batches in flight per producer, the shipper's default
CLUSTER_NAME = "bench"  # prefix of the streams and buckets
STOP_TIMEOUT_S = 60.0  # a collector drains and snapshots its marks at SIGTERM
VISIBLE_TIMEOUT_S = 60.0  # every collector's index catching up with the other's appends
# A producer gives up when no batch was acknowledged for this long (a stuck cluster fails the
# run instead of hanging it; an election takes seconds, not minutes).
DELIVERY_DEADLINE_S = 120.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Share:
    """One producer's part of the data: its identity, its batches and what they hold."""

    producer_id: bytes
    host: str
    batches: list[bytes]
    records: int
    raw_bytes: int
    matches: int  # lines containing PATTERN
    hour_matches: int  # of those, the ones in the pruning hour
    rounds: int  # times the lines are sent, each time as another file


# -- the data ----------------------------------------------------------------------------------


def _lines(min_bytes: int) -> list[str]:
    """The log's lines, repeated to at least ``min_bytes`` of text."""
    data = LOG.read_bytes()
    if not data.endswith(b"\n"):
        data += b"\n"
    return data.decode().splitlines() * -(-min_bytes // len(data))


def _hosts(partitions: int) -> list[str]:
    """Host names that land on partitions 0, 1, ... (the collector partitions by host)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        host = f"web-{i}"
        found.setdefault(partition_for(host, partitions), host)
        i += 1
    return [found[p] for p in range(partitions)]


def _share(
    lines: list[str], host: str, batch_bytes: int, rounds: int, hour: tuple[int, int]
) -> Share:
    """Batches of ``lines`` as a shipper builds them: spans of one file, sequence numbers, the
    lines' timestamps spread evenly over 24 hours. Each round sends the lines again as the next
    rotated file (``access.log.1``...), so the collector stores them again."""
    pid = uuid.uuid4().bytes
    step = DAY_NS // len(lines)
    batches: list[bytes] = []
    raw = matches = hour_matches = 0
    for r in range(rounds):
        file_id = f"{host}:/var/log/apache2/access.log" + (f".{r}" if r else "")
        chunk: list[Record] = []
        size = offset = start = 0
        for i, line in enumerate(lines):
            ts = T0 + i * step
            chunk.append(
                Record(
                    ts=ts, line=line, host=host, source="access.log", file_id=file_id, offset=offset
                )
            )
            n = len(line.encode()) + 1
            offset += n
            size += n
            if PATTERN in line:
                matches += 1
                hour_matches += hour[0] <= ts < hour[1]
            if size >= batch_bytes or i == len(lines) - 1:
                batches.append(
                    wb.build(
                        chunk,
                        producer_id=pid,
                        producer_seq=len(batches),
                        spans=[wb.Span(file_id, start, offset)],
                    )
                )
                chunk, size, start = [], 0, offset
        raw += offset
    return Share(pid, host, batches, len(lines) * rounds, raw, matches, hour_matches, rounds)


def _prepare(
    min_bytes: int, producers: int, batch_bytes: int, rounds: int, hour: tuple[int, int]
) -> list[Share]:
    lines = _lines(min_bytes)
    n = len(lines)
    return [
        _share(
            lines[k * n // producers : (k + 1) * n // producers], host, batch_bytes, rounds, hour
        )
        for k, host in enumerate(_hosts(producers))
    ]


# -- processes ---------------------------------------------------------------------------------


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far (``/proc/PID/stat``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def _self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


@contextlib.contextmanager
def _collectors(
    work: Path, label: str, n: int, cluster: NatsCluster | None, replicas: int
) -> Iterator[list[CollectorProcess]]:
    """``n`` collector processes (on the embedded store without ``cluster``); stopped with
    SIGTERM at the end of the block (killed if that fails), a non-zero exit status raised."""
    args: list[str] = []
    if cluster is not None:
        config = work / f"{label}.toml"
        config.write_text(
            "[cluster]\n"
            f"nats = {json.dumps(cluster.urls)}\n"
            f"replicas = {replicas}\n"
            f'name = "{CLUSTER_NAME}"\n'
        )
        args = ["--config", str(config)]
    procs: list[CollectorProcess] = []
    try:
        for i in range(n):
            c = CollectorProcess(work / f"{label}-c{i}", args=args, log=work / f"{label}-c{i}.log")
            procs.append(c)
            c.start()
        yield procs
        failed = []
        for c in procs:
            code = c.stop(timeout=STOP_TIMEOUT_S)
            if code != 0:
                failed.append(f"{c.log.name} exited with {code}{c.tail(1500)}")
        if failed:
            raise RuntimeError("a collector did not stop cleanly: " + "\n".join(failed))
    finally:
        for c in procs:
            c.close()


# -- ingest ------------------------------------------------------------------------------------


async def _send_all(addresses: list[str], topic: str, shares: list[Share]) -> tuple[int, float]:
    """Every share's batches through its own producer connection, producer ``k`` to
    ``addresses[k % len(addresses)]``: records acknowledged and the seconds it took."""
    producers = [
        Producer(
            [addresses[k % len(addresses)]],
            producer_id=s.producer_id,
            window=WINDOW,
            deadline_s=DELIVERY_DEADLINE_S,
        )
        for k, s in enumerate(shares)
    ]
    acked = 0
    try:
        for p in producers:
            await p.start()
        await asyncio.wait_for(asyncio.gather(*(p.connected.wait() for p in producers)), 30)

        async def run(p: Producer, s: Share) -> None:
            nonlocal acked
            inflight: set[asyncio.Task[None]] = set()

            async def one(batch: bytes) -> None:
                nonlocal acked
                ack = await p.send(topic, batch)
                if ack.duplicate:
                    raise RuntimeError(f"batch of {s.host} acknowledged as a duplicate: {ack}")
                acked += ack.record_count

            for batch in s.batches:
                inflight.add(asyncio.create_task(one(batch)))
                if len(inflight) >= WINDOW:
                    done, inflight = await asyncio.wait(
                        inflight, return_when=asyncio.FIRST_COMPLETED
                    )
                    for t in done:
                        t.result()
            await asyncio.gather(*inflight)

        t0 = time.perf_counter()
        await asyncio.gather(*(run(p, s) for p, s in zip(producers, shares, strict=True)))
        return acked, time.perf_counter() - t0
    finally:
        for p in producers:
            await p.close()


def _ingest_once(
    procs: list[CollectorProcess], nats_pids: list[int], topic: str, shares: list[Share]
) -> tuple[float, tuple[float, float, float]]:
    """Create ``topic`` through the first collector, send every share, check that every
    collector serves all of it: the seconds from the first send to the last ACK and the CPU
    seconds of the collectors, the NATS servers and this process meanwhile."""
    records = sum(s.records for s in shares)
    raw = sum(s.raw_bytes for s in shares)
    _http_json(f"{procs[0].url}/v1/topics", {"name": topic, "partitions": len(shares)})
    for c in procs[1:]:  # the others learn of it through the topics bucket

        def known(c: CollectorProcess = c) -> bool:
            listed = _http_json(f"{c.url}/v1/topics")["topics"]
            return any(t["name"] == topic for t in listed)

        wait_for(known, VISIBLE_TIMEOUT_S, f"{c.url} to know topic {topic!r}", step=0.05)
    coll_pids = [c.pid for c in procs]
    cpu0 = (_cpu_s(coll_pids), _cpu_s(nats_pids), _self_cpu_s())
    acked, seconds = asyncio.run(_send_all([c.address for c in procs], topic, shares))
    cpu1 = (_cpu_s(coll_pids), _cpu_s(nats_pids), _self_cpu_s())
    if acked != records:
        raise RuntimeError(f"{topic}: {acked} records acknowledged, {records} sent")
    for c in procs:  # every collector serves every record, its own appends and the others'

        def complete(c: CollectorProcess = c) -> dict[str, Any] | None:
            sizes: dict[str, Any] = _http_json(f"{c.url}/v1/topics/{topic}")
            return sizes if sizes["records"] == records else None

        sizes = wait_for(
            complete, VISIBLE_TIMEOUT_S, f"{c.url} to serve {records} records", step=0.1
        )
        if sizes["line_bytes"] != raw:
            raise RuntimeError(f"{topic} on {c.url}: {sizes['line_bytes']} line bytes, {raw} sent")
    cpu = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2])
    return seconds, cpu


def _ingest(
    procs: list[CollectorProcess],
    nats_pids: list[int],
    prefix: str,
    shares: list[Share],
    repeats: int,
) -> dict[str, Any]:
    """``repeats`` ingests into topics ``PREFIX-0``...; the rates of the fastest (the machine
    is shared with whatever else runs: the best run is the least disturbed one)."""
    runs = [_ingest_once(procs, nats_pids, f"{prefix}-{i}", shares) for i in range(repeats)]
    seconds, cpu = min(runs)
    records = sum(s.records for s in shares)
    raw = sum(s.raw_bytes for s in shares)
    stored = sum(len(b) for s in shares for b in s.batches)
    per_partition = sum(len(s.batches) for s in shares) / len(shares)
    return {
        "collectors": len(procs),
        "records_per_s": round(records / seconds),
        "raw_mb_per_s": round(raw / seconds / 1e6, 1),
        "stored_mb_per_s": round(stored / seconds / 1e6, 1),
        "seconds": round(seconds, 3),
        "seconds_of_each_run": [round(r[0], 3) for r in runs],
        # One producer per partition, its batches acknowledged in order: the time one took.
        "ms_per_batch_per_partition": round(seconds / per_partition * 1000, 2),
        "cpu_s": {
            "collectors": round(cpu[0], 2),
            "nats_servers": round(cpu[1], 2),
            "producers_this_process": round(cpu[2], 2),
        },
    }


def _with_ratio(result: dict[str, Any], anchor: dict[str, Any]) -> dict[str, Any]:
    # Same data in both runs: the ratio of records/s is the ratio of MB/s.
    result["ratio_vs_embedded"] = round(result["records_per_s"] / anchor["records_per_s"], 3)
    return result


# -- reading -----------------------------------------------------------------------------------


def _best_of(runs: int, fn: Callable[[], T]) -> tuple[T, float]:
    best = float("inf")
    result: T | None = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    assert result is not None
    return result, best


def _count(store: Store | JetStreamStore, topic: str, query: Query) -> tuple[int, ScanStats]:
    stats = ScanStats()
    parts = [(topic, p.number) for p in store.partitions(topic)]
    n = sum(store.count(parts, query, stats=stats))
    if stats.errors:
        raise RuntimeError(f"{topic}: the scan met damaged batches: {stats.errors[:3]}")
    return n, stats


def _gnu_grep_count(shares_raw: Path) -> int:
    out = subprocess.run(
        ["grep", "-F", "-c", "--", PATTERN, str(shares_raw)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    if out.returncode not in (0, 1):
        raise RuntimeError(f"grep failed: {out.stderr}")
    return int(out.stdout.strip())


def _scan_figures(n: int, stats: ScanStats, seconds: float, raw: int) -> dict[str, Any]:
    return {
        "matches": n,
        "raw_mb_per_s": round(raw / seconds / 1e6, 1),
        "seconds": round(seconds, 3),
        "batches_read": stats.batches_read,
        "bytes_read": stats.bytes_read,
    }


def _reading(
    work: Path,
    embedded_dir: Path,
    cluster: NatsCluster,
    topics: tuple[str, str],
    shares: list[Share],
    hour: tuple[int, int],
) -> tuple[dict[str, Any], dict[str, Any]]:
    embedded_topic, topic = topics
    raw = sum(s.raw_bytes for s in shares)
    expected = sum(s.matches for s in shares)
    expected_hour = sum(s.hour_matches for s in shares)
    text = work / "raw.log"  # the same lines, for GNU grep's answer
    with text.open("wb") as f:
        for s in shares:
            for b in s.batches:
                f.write(wb.Batch(b).lines_blob())
                f.write(b"\n")
    grep_n = _gnu_grep_count(text)
    text.unlink()
    full = Query(pattern=PATTERN, fixed=True)
    one_hour = Query(pattern=PATTERN, fixed=True, since_ns=hour[0], until_ns=hour[1])
    with Store(embedded_dir) as store:
        (e_n, e_stats), e_s = _best_of(3, lambda: _count(store, embedded_topic, full))
        (e_hour_n, _), _ = _best_of(1, lambda: _count(store, embedded_topic, one_hour))
    with JetStreamStore(cluster.urls, name=CLUSTER_NAME, replicas=3) as js:
        # Opening a partition reads every message's headers into the index (what a collector
        # does for each partition it first touches): timed apart from the scans.
        _, open_s = _best_of(1, lambda: js.partitions(topic))
        (j_n, j_stats), j_s = _best_of(3, lambda: _count(js, topic, full))
        (h_n, h_stats), h_s = _best_of(3, lambda: _count(js, topic, one_hour))
    answers = {"expected": expected, "gnu_grep": grep_n, "embedded": e_n, "jetstream": j_n}
    if len(set(answers.values())) != 1:
        raise RuntimeError(f"grep answers differ: {answers}")
    hours = {"expected": expected_hour, "embedded": e_hour_n, "jetstream": h_n}
    if len(set(hours.values())) != 1:
        raise RuntimeError(f"one-hour answers differ: {hours}")
    grep = {
        "pattern": PATTERN,
        "same_answer": True,  # or the run fails above
        "answers": answers,
        "raw_bytes": raw,
        "jetstream_r3": {
            **_scan_figures(j_n, j_stats, j_s, raw),
            "open_partitions_s": round(open_s, 3),
        },
        "embedded": _scan_figures(e_n, e_stats, e_s, raw),
        "ratio_jetstream_vs_embedded": round(e_s / j_s, 3),
    }
    pruning = {
        "store": "jetstream_r3",
        "range": "1 hour of 24",
        "matches": h_n,
        "same_answer": True,  # or the run fails above
        "answers": hours,
        "bytes_read": h_stats.bytes_read,
        "batches_read": h_stats.batches_read,
        "seconds": round(h_s, 4),
        "full_scan_bytes_read": j_stats.bytes_read,
        "full_scan_batches_read": j_stats.batches_read,
        "full_scan_seconds": round(j_s, 3),
        "bytes_fraction": round(h_stats.bytes_read / j_stats.bytes_read, 4),
        # Pruning is by whole batch: a batch spans this much time, so an hour touches 2-3.
        "ideal_fraction": round(1 / 24, 4),
        "batch_span_min": round(
            24 * 60 / (j_stats.batches_read / len(shares) / shares[0].rounds), 1
        ),
        "time_fraction": round(h_s / j_s, 4),
    }
    return grep, pruning


# -- the whole run -----------------------------------------------------------------------------


def run(
    work: Path, min_bytes: int, producers: int, batch_bytes: int, rounds: int, repeats: int
) -> dict[str, Any]:
    hour = (T0 + 12 * HOUR_NS, T0 + 13 * HOUR_NS)
    t = time.perf_counter()
    shares = _prepare(min_bytes, producers, batch_bytes, rounds, hour)
    build_s = time.perf_counter() - t
    setup = {
        "log": LOG.name,
        "log_repeated_to_bytes": min_bytes,
        "rounds": rounds,
        "ingest_repeats": repeats,
        "raw_bytes": sum(s.raw_bytes for s in shares),
        "records": sum(s.records for s in shares),
        "producers": producers,
        "partitions": producers,
        "batch_text_bytes": batch_bytes,
        "batches": sum(len(s.batches) for s in shares),
        "stored_bytes": sum(len(b) for s in shares for b in s.batches),
        "window_per_producer": WINDOW,
        "build_s": round(build_s, 2),
        "durability": "embedded: fsync always (group commit); NATS: sync_interval always",
        "nats_server": subprocess.run(
            [str(nats_server_binary()), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip(),
    }
    ingest: dict[str, Any] = {}
    embedded_dir = work / "embedded-c0"
    with _collectors(work, "embedded", 1, None, 0) as procs:
        anchor = _ingest(procs, [], "ingest", shares, repeats)
    ingest["embedded_1_collector"] = anchor

    def cluster_ingest(cluster: NatsCluster, replicas: int) -> None:
        nats_pids = [node.pid for node in cluster.nodes]
        for n in (1, 2):
            label = f"r{replicas}-{n}c"
            with _collectors(work, label, n, cluster, replicas) as procs:
                result = _ingest(procs, nats_pids, f"ingest-{n}c", shares, repeats)
            name = f"r{replicas}_{n}_collector{'s' if n > 1 else ''}"
            ingest[name] = _with_ratio(result, anchor)

    with NatsCluster(work / "nats-r1", n=1) as r1:
        cluster_ingest(r1, 1)
    with NatsCluster(work / "nats-r3", n=3) as r3:
        cluster_ingest(r3, 3)
        grep, pruning = _reading(work, embedded_dir, r3, ("ingest-0", "ingest-1c-0"), shares, hour)
    return {
        "bench": "cluster",
        "cpus": os.cpu_count(),
        "setup": setup,
        "ingest": ingest,
        "grep": grep,
        "time_pruning": pruning,
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Unwind, so every child process (collectors, NATS servers) is stopped on the way out.
    print("bench/cluster.py: stopped by SIGTERM", file=sys.stderr)
    raise SystemExit(128 + signum)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mb", type=int, default=64, help="repeat the log to at least this many MB")
    ap.add_argument("--producers", type=int, default=2, help="producers = partitions (>= 2)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="send the data this many times per ingest (as rotated files), for a longer timing",
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="ingests per configuration; the fastest counts"
    )
    ap.add_argument("--batch-kb", type=int, default=1024, help="text per batch, KiB")
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    ap.add_argument(
        "--dir",
        type=Path,
        default=ROOT / "bench" / "out",
        help="scratch space on a real disk (not tmpfs: fsync must cost what it costs)",
    )
    args = ap.parse_args()
    if args.producers < 2:
        ap.error("--producers must be at least 2 (two collectors split them)")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-cluster-", dir=args.dir))
    try:
        result = run(
            work, args.mb * 10**6, args.producers, args.batch_kb << 10, args.rounds, args.repeats
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
