"""Token filters in the cluster: built from the batches a collector reads, kept in its memory.

The embedded store writes a filter per block when it compacts a segment; JetStream keeps its
own files, so there is nothing to compact and nowhere to write one. Instead each collector
builds the filter of every batch one of its scans reads (on a thread of its own, off the
scan's path) and keeps it beside its index cache, so the next needle grep over the same range
skips the batches ruled out (``collector.filters.tokens``). Like the index cache it is derived
state: lost on restart, rebuilt by the next scans.

Memory is bounded: least recently used filters go past ``max_bytes`` (~1 byte per distinct
token of a batch: 64 MiB holds the filters of ~64M lines with a unique id each), and batches
offered while the builder is behind are dropped (a later scan offers them again).

A filter is keyed by the batch's stream, sequence and what the index knows of it (offsets,
count, size, time range): a topic deleted and created again, by this or another collector,
restarts its streams' sequences, and a stale filter must never answer for a new batch.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

from collector.filters import tokens
from collector.storage.jetstream.index import Entry
from wharf import batch as wb
from wharf.errors import CorruptBatch

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final = 64 << 20
_QUEUE: Final = 8  # batches waiting for the builder (each holds its decompressed lines)

Key = tuple[str, int, int, int, int, int, int]


def key_of(stream: str, entry: Entry) -> Key:
    """The cache key of one stored batch."""
    e = entry
    return (stream, e.seq, e.base_offset, e.count, e.stored_bytes, e.min_ts, e.max_ts)


class FilterCache:
    """Filters of batches read, least recently used first out (thread-safe)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._filters: OrderedDict[Key, bytes] = OrderedDict()
        self.bytes = 0
        self.dropped = 0  # batches offered while the builder was behind
        self._queue: queue.Queue[tuple[Key, wb.Batch] | None] = queue.Queue(_QUEUE)
        self._thread: threading.Thread | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._filters)

    def may_contain(self, key: Key, needed: Sequence[bytes]) -> bool:
        """``False`` only when the batch's filter is known and rules a token out."""
        with self._lock:
            found = self._filters.get(key)
            if found is not None:
                self._filters.move_to_end(key)
        return found is None or tokens.may_contain(found, needed)

    def offer(self, key: Key, batch: wb.Batch) -> None:
        """A batch a scan read: its filter is built in the background unless known."""
        if self._closed or key in self._filters:
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="wharf-filters", daemon=True
                    )
                    self._thread.start()
        try:
            self._queue.put_nowait((key, batch))
        except queue.Full:
            self.dropped += 1

    def forget(self, stream: str) -> None:
        """Drop the filters of ``stream`` (its topic was deleted)."""
        with self._lock:
            for key in [k for k in self._filters if k[0] == stream]:
                self.bytes -= len(self._filters.pop(key))

    def close(self) -> None:
        """Stop the builder."""
        self._closed = True
        if self._thread is not None:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            key, batch = item
            try:
                found = tokens.line_tokens(batch.lines_blob())
            except CorruptBatch as exc:  # the scan reports it; nothing to remember
                log.debug("no filter for %s: %s", key, exc)
                continue
            self._put(key, tokens.build(found, len(found)))

    def _put(self, key: Key, bloom: bytes) -> None:
        with self._lock:
            if key in self._filters:
                return
            self._filters[key] = bloom
            self.bytes += len(bloom)
            while self.bytes > self.max_bytes and self._filters:
                _, old = self._filters.popitem(last=False)
                self.bytes -= len(old)
