"""Collector benchmark: ingest throughput with 1 and 4 producers, and ack → tail latency.

Run: ``.venv/bin/python bench/collector.py [--seconds 10] [--json]``. Prints one JSON object.

The collector runs as its own process (``wharf collector run``), on loopback, fsync "always"
with group commit, as in production. Producers send already-built batches of real lines
(``../shared/data/logs/apache_combined.log``, ~235 bytes each) through the native protocol with
a window of 8 in flight, as shippers do; each producer is its own host, so with a 4-partition
topic the producers land on different partitions.

Tail latency: a producer sends 10,000 records/s (100-record batches every 10 ms) while a client
follows ``/v1/tail``; latency is the time from the producer receiving a batch's ACK to the tail
client receiving that batch's first record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from _collector import CollectorProcess  # noqa: E402  (bench/ is the script's dir)

from shipper.transport import Producer  # noqa: E402
from wharf import batch as wb  # noqa: E402
from wharf.record import Record  # noqa: E402

LOG = ROOT.parent / "shared" / "data" / "logs" / "apache_combined.log"


def _build_batches(
    producer_id: bytes, host: str, batch_bytes: int, total_bytes: int
) -> list[bytes]:
    lines = LOG.read_text().splitlines()
    out, chunk, size, offset, n = [], [], 0, 0, 0
    produced = 0
    start_offset = 0
    while produced < total_bytes:
        line = lines[n % len(lines)]
        chunk.append(
            Record(
                ts=time.time_ns(),
                line=line,
                host=host,
                source="access.log",
                file_id="access.log",
                offset=offset,
            )
        )
        offset += len(line) + 1
        size += len(line) + 1
        n += 1
        if size >= batch_bytes:
            out.append(
                wb.build(
                    chunk,
                    producer_id=producer_id,
                    spans=[wb.Span("access.log", start_offset, offset)],
                )
            )
            produced += size
            chunk, size, start_offset = [], 0, offset
    return out


def _as_file(batch: bytes, file_id: str) -> bytes:
    """The batch with its spans renamed to another file, so the collector stores it again
    rather than dropping it as a resend. Only the uncompressed meta section and the checksum
    change (cheap enough not to slow the producers down); the payload is untouched."""

    h = wb.read_header(batch)
    meta = wb._meta_dec.decode(batch[wb.HEADER_SIZE : wb.HEADER_SIZE + h.meta_len])
    meta.spans = [wb.Span(file_id, s.start, s.end) for s in meta.spans]
    new_meta = wb._meta_enc.encode(meta)
    out = bytearray(batch[: wb.HEADER_SIZE]) + new_meta + batch[wb.HEADER_SIZE + h.meta_len :]
    struct.pack_into(">I", out, 74, len(new_meta))
    struct.pack_into(">I", out, 16, len(out) - wb.PREFIX_SIZE)
    struct.pack_into(">I", out, 20, zlib.crc32(memoryview(out)[24:]))
    return bytes(out)


async def _ingest(
    port: int, http: int, producers: int, batch_bytes: int, seconds: float
) -> dict[str, object]:
    topic = f"ingest-{producers}-{batch_bytes}"
    async with aiohttp.ClientSession() as s:
        await s.post(f"http://127.0.0.1:{http}/v1/topics", json={"name": topic, "partitions": 4})
    # Enough pre-built data for the run at ~1 GB/s of text per producer would be too much
    # memory; build ~60 MB per producer and cycle through it with fresh span offsets is not
    # possible (spans dedupe), so each producer uses its own id per cycle.
    per = 60_000_000 // producers
    prepared = []
    for i in range(producers):
        pid = uuid.uuid4().bytes
        prepared.append(
            (pid, await asyncio.to_thread(_build_batches, pid, f"web-{i}", batch_bytes, per))
        )
    records_per_batch = [wb.read_header(b[0]).record_count for _, b in prepared]
    sent_records = 0
    sent_bytes = 0

    async def run(i: int, deadline: float) -> None:
        nonlocal sent_records, sent_bytes
        pid, batches = prepared[i]
        p = Producer([f"127.0.0.1:{port}"], producer_id=pid, window=8)
        cycle = 0

        async def one(batch: bytes) -> None:
            nonlocal sent_records, sent_bytes
            ack = await p.send(topic, batch)
            sent_records += ack.record_count
            sent_bytes += len(batch)

        inflight: set[asyncio.Task[None]] = set()
        k = 0
        while time.perf_counter() < deadline:
            if k == len(batches):
                # Same text again as another file of the same producer: fresh spans, so the
                # collector stores it rather than dropping it as a resend.
                cycle += 1
                batches = [_as_file(b, f"access.log.{cycle}") for b in prepared[i][1]]
                k = 0
            inflight.add(asyncio.create_task(one(batches[k])))
            k += 1
            if len(inflight) >= 8:
                done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
        await asyncio.gather(*inflight)
        await p.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(run(i, t0 + seconds) for i in range(producers)))
    elapsed = time.perf_counter() - t0
    return {
        "producers": producers,
        "batch_text_bytes": batch_bytes,
        "records_per_batch": records_per_batch[0],
        "records_per_s": round(sent_records / elapsed),
        "stored_mb_per_s": round(sent_bytes / elapsed / 1e6, 1),
        "seconds": round(elapsed, 2),
    }


async def _tail_latency(port: int, http: int, seconds: float) -> dict[str, object]:
    topic = "latency"
    pid = uuid.uuid4().bytes
    acked: dict[int, float] = {}
    seen: dict[int, float] = {}
    ready = asyncio.Event()

    async def follow() -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"http://127.0.0.1:{http}/v1/tail",
                params={"topic": topic},
                timeout=aiohttp.ClientTimeout(total=None),
            ) as resp,
        ):
            ready.set()
            async for raw in resp.content:
                obj = json.loads(raw)
                line = obj.get("line")
                if line and line.startswith("seq="):
                    seq = int(line[4:].split(" ", 1)[0])
                    seen.setdefault(seq, time.perf_counter())

    async with aiohttp.ClientSession() as s:
        await s.post(f"http://127.0.0.1:{http}/v1/topics", json={"name": topic, "partitions": 1})
    tail = asyncio.create_task(follow())
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.3)
    p = Producer([f"127.0.0.1:{port}"], producer_id=pid, window=8)
    offset = 0
    seq = 0
    t0 = time.perf_counter()
    tasks = []
    while time.perf_counter() - t0 < seconds:
        records = []
        for j in range(100):
            line = f"seq={seq} j={j} " + "x" * 180
            records.append(
                Record(ts=time.time_ns(), line=line, host="lat", file_id="f", offset=offset)
            )
            offset += len(line) + 1
        batch = wb.build(
            records,
            producer_id=pid,
            spans=[wb.Span("f", offset - sum(len(r.line) + 1 for r in records), offset)],
        )

        async def send(b: bytes, s: int) -> None:
            await p.send(topic, b)
            acked[s] = time.perf_counter()

        tasks.append(asyncio.create_task(send(batch, seq)))
        seq += 1
        await asyncio.sleep(max(0.0, t0 + seq * 0.01 - time.perf_counter()))
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)
    tail.cancel()
    await p.close()
    lat = sorted((seen[s] - acked[s]) * 1000 for s in acked if s in seen)
    return {
        "records_per_s_offered": 10_000,
        "batches": len(acked),
        "batches_seen_by_tail": len(lat),
        "p50_ms": round(statistics.median(lat), 2) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2) if lat else None,
        "max_ms": round(lat[-1], 2) if lat else None,
        "note": "negative values mean the tail saw the record before the producer saw the ACK",
    }


async def _main(seconds: float) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-collector-", dir=ROOT / "bench" / "out"))
    server = CollectorProcess(work)
    port, http = server.port, server.http
    try:
        ingest = []
        for producers in (1, 4):
            for batch_bytes in (1 << 20, 4 << 20):
                ingest.append(await _ingest(port, http, producers, batch_bytes, seconds))
        latency = await _tail_latency(port, http, seconds)
    finally:
        server.stop(60)
        shutil.rmtree(work, ignore_errors=True)
    return {"bench": "collector", "cpus": os.cpu_count(), "ingest": ingest, "tail_latency": latency}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    args = ap.parse_args()
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    print(json.dumps(asyncio.run(_main(args.seconds)), indent=2))


if __name__ == "__main__":
    main()
