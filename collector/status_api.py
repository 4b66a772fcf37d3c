"""What ``wharf status`` and ``wharf topics`` show beyond offsets: raw line bytes per partition
(for the compression ratio), the ingest rate over the last minute, connected shippers, and the
``GET /v1/status`` handler.

Line bytes are exact: every batch header carries ``lines_ulen`` (the lines joined by newlines),
so a partition's raw size is the sum over its batches of ``lines_ulen + 1``, the bytes the lines
took in their files, newline included. Headers are read once per batch (102 bytes each) and the
sums cached per segment: sealed segments never change, the active one only grows.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from aiohttp import web

from collector.ingest import IngestServer
from collector.storage import Partition, Store
from collector.storage.segment import Segment
from wharf import batch as wb
from wharf.errors import CorruptBatch, WharfError

# The ingest rate is records made durable over this many seconds, divided by them.
RATE_WINDOW_S: Final = 60

SessionsProvider = Callable[[], Sequence[dict[str, Any]]]


class LineBytes:
    """Exact raw line bytes per partition, from batch headers, cached per segment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # segment -> (index entries summed, their line bytes)
        self._sums: weakref.WeakKeyDictionary[Segment, tuple[int, int]] = (
            weakref.WeakKeyDictionary()
        )

    def of_segment(self, seg: Segment) -> int:
        """Line bytes of the batches the segment's index lists now."""
        with self._lock:
            done, total = self._sums.get(seg, (0, 0))
        idx = seg.index
        n = len(idx)
        for e in range(done, n):
            try:
                header = wb.read_header(seg.pread(idx.position[e], wb.HEADER_SIZE))
            except (CorruptBatch, OSError):  # counted as empty: search reports damage itself
                continue
            total += header.lines_ulen + 1
        with self._lock:
            if self._sums.get(seg, (0, 0))[0] < n:
                self._sums[seg] = (n, total)
        return total

    def of_partition(self, part: Partition) -> int:
        """Line bytes of every batch the partition holds."""
        return sum(self.of_segment(seg) for seg in list(part.segments))


class IngestRate:
    """Records made durable per second over the last ``RATE_WINDOW_S``, from the store's commit
    listener (so every write path counts: native ingest and direct appends alike)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ends: dict[tuple[str, int], int] = {}
        self._seconds: deque[list[Any]] = deque()  # [second, {topic: records}]
        self._started = clock()

    def attach(self, store: Store) -> None:
        """Start counting ``store``'s commits (what exists now is not counted as new)."""
        with self._lock:
            for topic in store.topics():
                for part in store.partitions(topic):
                    self._ends[(topic, part.number)] = part.durable_offset
        store.add_listener(self._on_commit)

    def detach(self, store: Store) -> None:
        """Stop counting ``store``'s commits."""
        store.remove_listener(self._on_commit)

    def _on_commit(self, topic: str, partition: int, end: int) -> None:
        # On the store's committer thread: a dict update and a deque append, nothing more.
        with self._lock:
            prev = self._ends.get((topic, partition), 0)
            if end < prev:  # the topic was deleted and made again
                prev = 0
            self._ends[(topic, partition)] = end
            if end == prev:
                return
            now = int(self._clock())
            if not self._seconds or self._seconds[-1][0] != now:
                self._seconds.append([now, {}])
            per_topic = self._seconds[-1][1]
            per_topic[topic] = per_topic.get(topic, 0) + end - prev
            self._trim(now)

    def _trim(self, now: int) -> None:
        while self._seconds and self._seconds[0][0] <= now - RATE_WINDOW_S:
            self._seconds.popleft()

    def snapshot(self) -> dict[str, Any]:
        """``{"window_s", "records", "records_per_s", "topics": {topic: records_per_s}}``."""
        now = self._clock()
        with self._lock:
            self._trim(int(now))
            per_topic: dict[str, int] = {}
            for _, counts in self._seconds:
                for topic, n in counts.items():
                    per_topic[topic] = per_topic.get(topic, 0) + n
        # A collector up for 10 s has a 10 s window, not a mostly empty minute.
        window = max(1.0, min(float(RATE_WINDOW_S), now - self._started))
        total = sum(per_topic.values())
        return {
            "window_s": round(window, 3),
            "records": total,
            "records_per_s": round(total / window, 3),
            "topics": {t: round(n / window, 3) for t, n in sorted(per_topic.items())},
        }


def ingest_sessions(ingest: IngestServer) -> SessionsProvider:
    """The sessions provider for ``make_app(..., sessions=...)``: the ingest server's open
    connections (``IngestServer.sessions``, read on the event loop like the server itself)."""
    return ingest.sessions


def _version() -> str:
    try:
        return importlib.metadata.version("wharf")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


VERSION: Final = _version()
LINE_BYTES: Final = web.AppKey("line_bytes", LineBytes)
INGEST_RATE: Final = web.AppKey("ingest_rate", IngestRate)
SESSIONS: Final = web.AppKey("sessions", object)  # SessionsProvider, or None when not wired
STARTED_NS: Final = web.AppKey("started_ns", int)


def topic_sizes(store: Store, lines: LineBytes, name: str) -> dict[str, Any]:
    """``{"records", "bytes", "line_bytes", "min_ts", "max_ts", "partitions": [...]}`` of a
    topic (worker thread: reads batch headers the first time)."""
    parts: list[dict[str, Any]] = []
    for part in store.partitions(name):
        info = part.info()
        parts.append(
            {
                "partition": info.partition,
                "records": info.end_offset - info.start_offset,
                "bytes": info.bytes,
                "line_bytes": lines.of_partition(part),
                "min_ts": info.min_ts,
                "max_ts": info.max_ts,
            }
        )
    lows = [p["min_ts"] for p in parts if p["min_ts"] is not None]
    highs = [p["max_ts"] for p in parts if p["max_ts"] is not None]
    stored = sum(p["bytes"] for p in parts)
    raw = sum(p["line_bytes"] for p in parts)
    return {
        "name": name,
        "records": sum(p["records"] for p in parts),
        "bytes": stored,
        "line_bytes": raw,
        "compression_ratio": round(raw / stored, 3) if stored else None,
        "min_ts": min(lows) if lows else None,
        "max_ts": max(highs) if highs else None,
        "partitions": parts,
    }


def status_json(
    store: Store,
    lines: LineBytes,
    rate: IngestRate,
    started_ns: int,
    healthy: tuple[bool, str | None],
) -> dict[str, Any]:
    """The ``GET /v1/status`` answer but its ``shippers`` (worker thread)."""
    topics = []
    for name in store.topics():
        try:
            t = topic_sizes(store, lines, name)
        except WharfError:  # deleted between the listing and now
            continue
        del t["partitions"]
        t["partitions"] = len(store.partitions(name))
        topics.append(t)
    ok, error = healthy
    return {
        "status": "ok" if ok else "unavailable",
        "error": error,
        "version": VERSION,
        "pid": os.getpid(),
        "started_ns": started_ns,
        "uptime_s": round((time.time_ns() - started_ns) / 1e9, 3),
        "data_dir": str(store.data_dir),
        "topics": topics,
        "ingest": rate.snapshot(),
    }
