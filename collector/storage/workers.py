"""Counting scans on worker processes, one per core: a big ``grep -c`` uses every core.

In one process the matcher holds the GIL: threads overlap decompression (zstd releases it)
with one matcher, so a scan tops out near twice the matcher's speed whatever the machine has.
Workers are processes (started by a forkserver: never a fork of the collector's threads) that
read batches straight from the segment files (the page cache serves them), verify, prune,
decompress and count them, and send back numbers only. The collector plans the batches from
its in-memory index and hands out runs of them.

Only counts go to the workers: hits are records, and moving them between processes would cost
more than finding them. A scan smaller than ``min_bytes`` stays in the collector (handing out
work costs milliseconds it would not win back); ``count_partitions`` then returns ``None``.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Final, NamedTuple

from collector.filters.query import Query
from collector.filters.tokens import required_tokens
from collector.storage.partition import Partition
from collector.storage.scan import ScanStats, Watch, allowed, count_batch
from wharf import batch as wb
from wharf.errors import CorruptBatch

log = logging.getLogger(__name__)

# Stored (compressed) bytes below which a count stays in the collector's process: about three
# batches of 4 MiB of text, ~15 ms of work on one core, against ~1 ms to hand work out.
DEFAULT_MIN_BYTES: Final = 1 << 20
# Stored bytes per task at most: a task's overhead is noise next to it, and cancellation,
# progress and the cores' finishing together come at this grain. Smaller scans are cut into
# two tasks per worker, so every core gets some.
_TASK_BYTES: Final = 4 << 20

Item = tuple[int, str, int, int]  # (partition tag, segment path, position, size)


class _Result(NamedTuple):
    counts: dict[int, int]
    batches: int
    bytes_read: int
    bytes_decompressed: int
    errors: list[tuple[str, str]]  # (reason, where) of the batches that could not be read


def _count_task(query: Query, items: list[Item]) -> _Result:
    """Worker side: count the matching records of each batch in ``items``."""
    matcher = query.matcher()
    counts: dict[int, int] = {}
    errors: list[tuple[str, str]] = []
    batches = read = decompressed = 0
    fds: dict[str, int] = {}
    try:
        for tag, path, pos, size in items:
            where = f"{path}@{pos}"
            try:
                fd = fds.get(path)
                if fd is None:
                    fd = fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                b = wb.Batch(os.pread(fd, size, pos), where=where)
                batches += 1
                read += size
                hosts, sources = allowed(b, query)
                if hosts == set() or sources == set():
                    continue
                decompressed += b.header.lines_ulen
                counts[tag] = counts.get(tag, 0) + count_batch(b, hosts, sources, query, matcher)
            except CorruptBatch as exc:
                errors.append((exc.reason, exc.where))
            except FileNotFoundError:
                errors.append(("segment deleted by retention during the scan", path))
            except OSError as exc:
                errors.append((exc.strerror or str(exc), where))
    finally:
        for fd in fds.values():
            os.close(fd)
    return _Result(counts, batches, read, decompressed, errors)


def _ready() -> None:
    """A task that only makes a worker start (and import what counting needs)."""


def _init_worker() -> None:
    """Exit with the collector, even when it is SIGKILLed: a pool's workers otherwise wait on
    their task queue forever (they hold its write end themselves, so no EOF ever comes)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Gate:
    """Counts share it, a compaction's swap takes it alone: workers open segment files by path,
    and the swap renames a compacted file over one (``collector.storage.compaction``). A
    waiting swap lets no new count in, so counts cannot starve it; it lasts milliseconds."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sharing = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the gate with other counts."""
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._sharing += 1
        try:
            yield
        finally:
            with self._cond:
                self._sharing -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the gate alone (once the counts holding it are done)."""
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._sharing)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class ScanWorkers:
    """A pool of counting processes (see the module docstring)."""

    def __init__(self, processes: int, *, min_bytes: int = DEFAULT_MIN_BYTES) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.processes = processes
        self.min_bytes = min_bytes
        self.gate = Gate()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
        )

    def warm(self) -> None:
        """Start the workers now rather than on the first big count (without waiting)."""
        for _ in range(self.processes):
            self._pool.submit(_ready)

    def close(self) -> None:
        """Stop the workers (counts in progress are abandoned)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def count_partitions(
        self,
        parts: Sequence[Partition],
        query: Query,
        *,
        stats: ScanStats,
        watch: Watch | None = None,
    ) -> list[int] | None:
        """Matching records per partition of ``parts``, counted by the workers; ``None`` when
        the scan is below ``min_bytes`` or the pool broke (count in this process instead)."""
        with self.gate.shared():
            return self._count_partitions(parts, query, stats=stats, watch=watch)

    def _count_partitions(
        self,
        parts: Sequence[Partition],
        query: Query,
        *,
        stats: ScanStats,
        watch: Watch | None = None,
    ) -> list[int] | None:
        lo, hi = query.ts_bounds()
        needed = required_tokens(
            query.pattern, fixed=query.fixed, ignore_case=query.ignore_case, invert=query.invert
        )
        items: list[Item] = []
        planned = 0
        skipped = 0
        for tag, part in enumerate(parts):
            for ref in part.refs(min_ts=lo, max_ts=hi):
                if needed and not ref.may_contain(needed):
                    skipped += 1
                    continue
                pos, size = ref.segment.entry_bytes(ref.entry)
                items.append((tag, str(ref.segment.path), pos, size))
                planned += size
        if planned < self.min_bytes:
            return None
        query.matcher()  # a bad pattern fails here, once, with its clear error
        results: list[_Result] = []
        try:
            per_task = min(_TASK_BYTES, planned // (2 * self.processes) + 1)
            tasks = _tasks(items, per_task)
            pending = {self._pool.submit(_count_task, query, task) for task in tasks}
            while pending:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                if watch is not None and watch.cancel.is_set():
                    for f in pending:
                        f.cancel()
                    break
                for f in done:
                    results.append(f.result())
                    if watch is not None and watch.tick is not None:
                        watch.tick()
        except BrokenProcessPool:
            log.error("a scan worker process died: counting in the collector instead")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return None
        stats.batches_total += len(items) + skipped
        stats.batches_filtered += skipped
        totals = [0] * len(parts)
        for r in results:
            self._merge(r, totals, stats)
        return totals

    @staticmethod
    def _merge(r: _Result, totals: list[int], stats: ScanStats) -> None:
        for tag, n in r.counts.items():
            totals[tag] += n
            stats.records_matched += n
        stats.batches_read += r.batches
        stats.bytes_read += r.bytes_read
        stats.bytes_decompressed += r.bytes_decompressed
        for reason, where in r.errors:
            exc = CorruptBatch(reason, where)
            log.error("count: %s", exc)
            stats.errors.append(exc)


def _tasks(items: list[Item], per_task: int) -> list[list[Item]]:
    """Runs of consecutive batches of about ``per_task`` stored bytes each."""
    tasks: list[list[Item]] = []
    run: list[Item] = []
    size = 0
    for item in items:
        run.append(item)
        size += item[3]
        if size >= per_task:
            tasks.append(run)
            run, size = [], 0
    if run:
        tasks.append(run)
    return tasks
