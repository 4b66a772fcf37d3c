"""A partition's index cache: one entry per stream message (pure, no I/O).

Columns per batch: stream sequence, base offset, count, time range, stored size, append time,
raw line bytes, hosts. Fed in sequence order from message headers (``meta``), it plans scans by
time and host, maps offsets to sequences for consume-by-offset, and describes the partition,
all without fetching a payload. It is derived state: dropped and rebuilt from the stream at
will (a collector rebuilds it when it opens a partition).

Threads: one writer (the backend's event loop) appends and drops; readers in any thread take a
``view()``, a consistent snapshot of the first n entries. Appending never moves what a view
sees (arrays only grow, and an index into them stays valid); dropping entries (retention)
builds new columns, so a view taken before keeps the old ones.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from collector.storage.jetstream.meta import BatchMeta

_NO_HOSTS: Final[tuple[str, ...] | None] = None


class _Columns:
    __slots__ = (
        "append_ms",
        "base",
        "count",
        "hosts",
        "line_bytes",
        "max_ts",
        "min_ts",
        "seq",
        "stored",
    )

    def __init__(self) -> None:
        self.seq: array[int] = array("Q")
        self.base: array[int] = array("q")
        self.count: array[int] = array("I")
        self.min_ts: array[int] = array("q")
        self.max_ts: array[int] = array("q")
        self.stored: array[int] = array("I")
        self.append_ms: array[int] = array("q")
        self.line_bytes: array[int] = array("Q")
        self.hosts: list[tuple[str, ...] | None] = []

    def tail(self, start: int) -> _Columns:
        """A copy of entries ``start:``."""
        out = _Columns()
        for name in self.__slots__:
            setattr(out, name, getattr(self, name)[start:])
        return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One batch, as the index knows it."""

    seq: int
    base_offset: int
    count: int
    min_ts: int
    max_ts: int
    stored_bytes: int
    hosts: tuple[str, ...] | None


class View:
    """The first ``n`` entries of an index at one moment."""

    __slots__ = ("_c", "n")

    def __init__(self, columns: _Columns, n: int) -> None:
        self._c = columns
        self.n = n

    def entry(self, i: int) -> Entry:
        c = self._c
        return Entry(
            c.seq[i], c.base[i], c.count[i], c.min_ts[i], c.max_ts[i], c.stored[i], c.hosts[i]
        )

    def find(self, offset: int) -> int:
        """The entry holding ``offset`` (the last whose base is <= it), or -1."""
        return bisect_right(self._c.base, offset, 0, self.n) - 1

    def select(
        self, from_offset: int | None, min_ts: int | None, max_ts: int | None
    ) -> Iterator[Entry]:
        """Entries from the one holding ``from_offset`` overlapping ``[min_ts, max_ts]``."""
        c = self._c
        first = 0 if from_offset is None else max(0, self.find(from_offset))
        for i in range(first, self.n):
            if (min_ts is not None and c.max_ts[i] < min_ts) or (
                max_ts is not None and c.min_ts[i] > max_ts
            ):
                continue
            yield self.entry(i)

    def stored_bytes(self) -> int:
        return sum(self._c.stored[: self.n])

    def line_bytes(self) -> int:
        return sum(self._c.line_bytes[: self.n])

    def time_range(self) -> tuple[int | None, int | None]:
        if not self.n:
            return None, None
        return min(self._c.min_ts[: self.n]), max(self._c.max_ts[: self.n])


class PartitionIndex:
    """Entries in sequence order, and the offsets they imply."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c = _Columns()
        self._hosts: dict[tuple[str, ...], tuple[str, ...]] = {}  # interned host lists
        self.last_seq = 0  # the last stream sequence indexed (or known gone)
        self.next_offset = 0  # the offset after the last batch: what the next append gets

    def __len__(self) -> int:
        return len(self._c.seq)

    def view(self) -> View:
        with self._lock:
            return View(self._c, len(self._c.seq))

    @property
    def start_offset(self) -> int:
        """The first offset still stored (the end when nothing is)."""
        with self._lock:
            return self._c.base[0] if self._c.seq else self.next_offset

    def first_seq(self) -> int:
        """The first sequence indexed, or 0 when empty."""
        with self._lock:
            return self._c.seq[0] if self._c.seq else 0

    def add(self, seq: int, meta: BatchMeta) -> None:
        """Index the message at ``seq`` (the next one: sequences only grow)."""
        if seq <= self.last_seq:
            raise ValueError(f"sequence {seq} is not after {self.last_seq}")
        hosts = None if meta.hosts is None else tuple(meta.hosts)
        if hosts is not None:
            hosts = self._hosts.setdefault(hosts, hosts)
        with self._lock:
            c = self._c
            c.seq.append(seq)
            c.base.append(meta.base_offset)
            c.count.append(meta.count)
            c.min_ts.append(meta.min_ts)
            c.max_ts.append(meta.max_ts)
            c.stored.append(meta.stored_bytes)
            c.append_ms.append(meta.append_ms)
            c.line_bytes.append(meta.line_bytes)
            c.hosts.append(hosts)
            self.last_seq = seq
            self.next_offset = max(self.next_offset, meta.next_offset)

    def skip_to(self, seq: int, next_offset: int | None = None) -> None:
        """Messages up to ``seq`` are gone (retention) or known from a snapshot: start after it."""
        with self._lock:
            self.last_seq = max(self.last_seq, seq)
            if next_offset is not None:
                self.next_offset = max(self.next_offset, next_offset)

    def drop_below(self, seq: int) -> int:
        """Forget entries before sequence ``seq`` (deleted by retention); how many."""
        with self._lock:
            c = self._c
            keep = bisect_right(c.seq, seq - 1)
            if keep:
                self._c = c.tail(keep)
            return keep
