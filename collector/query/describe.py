"""What ``wharf status`` and ``wharf topics`` show beyond offsets: topics with their sizes and
compression ratio, the ingest rate over the last minute, the status answer. Over the storage
interface; reads batch headers the first time, so call it off the event loop.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from collector.storage.interface import Storage
from wharf.api import PartitionSizes, TopicSizes
from wharf.errors import WharfError

# The ingest rate is records made durable over this many seconds, divided by them.
RATE_WINDOW_S: Final = 60


def _fields(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__struct_fields__}


def topic_sizes(store: Storage, name: str) -> TopicSizes:
    """A topic with its sizes: records, stored and raw bytes, the ratio, the time range."""
    info = store.describe(name)
    parts = [
        PartitionSizes(**_fields(p), line_bytes=store.partition(name, p.partition).line_bytes())
        for p in info.partitions
    ]
    lows = [p.min_ts for p in parts if p.min_ts is not None]
    highs = [p.max_ts for p in parts if p.max_ts is not None]
    stored = sum(p.bytes for p in parts)
    raw = sum(p.line_bytes for p in parts)
    return TopicSizes(
        name=name,
        config=info.config,
        partitions=parts,
        records=sum(p.end_offset - p.start_offset for p in parts),
        bytes=stored,
        line_bytes=raw,
        compression_ratio=round(raw / stored, 3) if stored else None,
        min_ts=min(lows) if lows else None,
        max_ts=max(highs) if highs else None,
    )


def all_topics(store: Storage) -> list[TopicSizes]:
    """Every topic with its sizes (those deleted while listed are left out)."""
    topics = []
    for name in store.topics():
        try:
            topics.append(topic_sizes(store, name))
        except WharfError:  # deleted between the listing and its describe
            continue
    return topics


class IngestRate:
    """Records made durable per second over the last ``RATE_WINDOW_S``, from the store's commit
    listener (so every write path counts: native ingest and direct appends alike)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ends: dict[tuple[str, int], int] = {}
        self._seconds: deque[list[Any]] = deque()  # [second, {topic: records}]
        self._started = clock()

    def attach(self, store: Storage) -> None:
        """Start counting ``store``'s commits (what exists now is not counted as new)."""
        with self._lock:
            for topic in store.topics():
                for part in store.partitions(topic):
                    self._ends[(topic, part.number)] = part.durable_offset
        store.add_listener(self._on_commit)

    def detach(self, store: Storage) -> None:
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


def _version() -> str:
    try:
        return importlib.metadata.version("wharf")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


VERSION: Final = _version()


def status_json(
    store: Storage,
    data_dir: Path,
    rate: IngestRate,
    started_ns: int,
    healthy: tuple[bool, str | None],
) -> dict[str, Any]:
    """The ``GET /v1/status`` answer but its ``shippers`` (worker thread)."""
    topics = []
    for t in all_topics(store):
        topics.append(
            {
                "name": t.name,
                "records": t.records,
                "bytes": t.bytes,
                "line_bytes": t.line_bytes,
                "compression_ratio": t.compression_ratio,
                "min_ts": t.min_ts,
                "max_ts": t.max_ts,
                "partitions": len(t.partitions),
            }
        )
    ok, error = healthy
    return {
        "status": "ok" if ok else "unavailable",
        "error": error,
        "version": VERSION,
        "pid": os.getpid(),
        "started_ns": started_ns,
        "uptime_s": round((time.time_ns() - started_ns) / 1e9, 3),
        "data_dir": str(data_dir),
        "topics": topics,
        "ingest": rate.snapshot(),
        "storage": _backend_status(store),
    }


def _backend_status(store: Storage) -> dict[str, object]:
    try:
        return store.backend_status()
    except WharfError as exc:  # the status page renders even when the cluster is away
        return {"error": str(exc)}
