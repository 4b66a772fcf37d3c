"""Compaction: each sealed segment rewritten once, compressed harder, with token filters.

Batches arrive compressed at zstd level 3, which keeps ingest fast. A sealed segment is never
appended to again, so it can be rewritten once, in the background, as well as we know how:
every batch's frames recompressed at ``level`` (``wharf.batch.recompress``: same header, meta
and decompressed sections, so the same offsets, timestamps, hosts, sources, fields and spans
for every reader; the dedupe marks, the time index and retention see no difference) and a
token filter per batch (``collector.filters.tokens``) in a ``.tok`` file beside it.

What was measured before choosing (a generated access log, 2 MiB batches, one unique request
id per line; bench/cold.py): recompressing each batch at 19 gives the bytes of ``zstd -19`` of
the whole file within a few percent, since a batch of 2-4 MiB is already past the window where
a bigger block helps (the issue measured 4 MiB blocks at -19 equal to the whole file at -19).
Merging batches into bigger blocks would change what a consumer reading by offset receives (a
batch is the unit of the wire and the consumer API) for little gain; a trained dictionary would
make batches unreadable without it. Neither is done. Small batches (syslog or OTLP at a trickle)
would gain from merging: the next step if their share grows.

Crash safety. The new files are written beside the old as ``<base>.seg.compacting``,
``<base>.idx.compacting`` and ``<base>.tok.compacting``, each fsynced; the swap (on the store's
committer thread, so no append, roll, retention or reopen runs during it) renames the ``.tok``,
then the ``.idx``, then the ``.seg`` over the old names and fsyncs the directory. The new
segment is strictly smaller than the old one (else the old bytes stay and only a ``.tok`` is
added), and both the index and the filters name the segment size they describe, so after a
SIGKILL at any point the files read as the old segment (a stray new ``.idx`` is rebuilt, a
stray ``.tok`` removed) or as the new one, and ``*.compacting`` leftovers are deleted when the
partition opens. Readers holding the old segment finish on its bytes (``Segment.retire``);
scan worker processes, which open segment files by path, are held off by ``ScanWorkers.gate``
while the swap runs.

Yielding to ingest: the background thread runs at nice 10 and paces itself to ``cpu_share`` of
one core (its own CPU time against the wall clock, checked after every batch). ``wharf topics
compact`` runs unpaced and returns when done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from collector.filters import tokens
from collector.storage import token_file
from collector.storage.index import SegmentIndex
from collector.storage.partition import Partition
from collector.storage.segment import Segment
from wharf import batch as wb
from wharf.errors import CorruptBatch
from wharf.fsutil import write_atomically

log = logging.getLogger(__name__)

SUFFIX: Final = ".compacting"
# The background thread's niceness: below ingest and searches whenever the CPU is contended.
_NICE: Final = 10


class CompactionSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[compaction]`` in collector.toml."""

    enabled: bool = True  # compact sealed segments in the background
    level: int = 19  # zstd level of compacted batches (1..22)
    cpu_share: float = 0.5  # of one core, at most, for the background thread (0 < x <= 1)
    check_s: float = 30.0  # how often the background thread looks for sealed segments
    filters: bool = True  # scans skip batches that token filters rule out


@dataclass
class Report:
    """What one compaction run did."""

    segments: int = 0
    batches: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    filter_bytes: int = 0
    line_bytes: int = 0  # raw text of the compacted batches
    cpu_s: float = 0.0
    replaced: bool = False  # the segment's bytes were rewritten (else only filters added)
    errors: list[str] = field(default_factory=list)

    def add(self, other: Report) -> None:
        """Sum ``other`` into this report."""
        self.segments += other.segments
        self.batches += other.batches
        self.bytes_before += other.bytes_before
        self.bytes_after += other.bytes_after
        self.filter_bytes += other.filter_bytes
        self.line_bytes += other.line_bytes
        self.cpu_s += other.cpu_s
        self.errors += other.errors


class Pacer:
    """Sleeps between units of work so that this thread uses at most ``share`` of one core
    (``None``: no pacing) and stops waiting the moment ``stop`` is set."""

    def __init__(self, share: float | None, stop: threading.Event) -> None:
        self.share = share
        self.stop = stop
        self._cpu = time.thread_time()
        self._wall = time.monotonic()

    def pace(self) -> None:
        """Wait out the CPU used since the start beyond ``share`` of the time passed."""
        if self.share is None:
            return
        used = time.thread_time() - self._cpu
        ahead = used / self.share - (time.monotonic() - self._wall)
        if ahead > 0:
            self.stop.wait(ahead)


def _paths(seg: Segment) -> tuple[Path, Path, Path]:
    return (
        seg.path.with_name(seg.path.name + SUFFIX),
        seg.index_path.with_name(seg.index_path.name + SUFFIX),
        seg.filters_path.with_name(seg.filters_path.name + SUFFIX),
    )


def _unlink(paths: tuple[Path, ...]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def rewrite(seg: Segment, level: int, pacer: Pacer) -> Report | None:
    """Write the compacted files of sealed ``seg`` beside it (``*.compacting``, fsynced; the
    ``.seg`` and ``.idx`` only when the new segment is smaller). ``None`` when cut short by
    ``pacer.stop``; a report with ``errors`` when the segment could not be read or written
    (its own files are left as they are)."""
    cpu0 = time.thread_time()
    new_seg, new_idx, new_tok = _paths(seg)
    idx = seg.index
    index = SegmentIndex(seg.base)
    filters: list[bytes] = []
    report = Report(segments=1, batches=len(idx), bytes_before=seg.size)
    try:
        with new_seg.open("wb") as out:
            pos = 0
            for e in range(len(idx)):
                if pacer.stop.is_set():
                    out.close()
                    _unlink((new_seg,))
                    return None
                b = seg.batch_at(e)
                data = wb.recompress(b, level)
                out.write(data)
                index.add(
                    idx.base + idx.rel_offset[e],
                    pos,
                    idx.count[e],
                    idx.min_ts[e],
                    idx.max_ts[e],
                    idx.append_ms[e],
                )
                pos += len(data)
                found = tokens.line_tokens(b.lines_blob())
                filters.append(tokens.build(found, len(found)))
                report.line_bytes += b.header.lines_ulen + 1
                pacer.pace()
            out.flush()
            os.fsync(out.fileno())
        report.replaced = pos < seg.size
        if report.replaced:
            write_atomically(new_idx, index.encode(pos))
        else:
            _unlink((new_seg,))
        report.bytes_after = pos if report.replaced else seg.size
        write_atomically(new_tok, token_file.encode(filters, report.bytes_after, seg.size))
    except (CorruptBatch, OSError) as exc:
        _unlink((new_seg, new_idx, new_tok))
        log.error("%s: not compacted: %s", seg.path, exc)
        return Report(errors=[f"{seg.path}: not compacted: {exc}"])
    report.filter_bytes = sum(map(len, filters))
    report.cpu_s = time.thread_time() - cpu0
    return report


def install(part: Partition, seg: Segment, replaced: bool) -> bool:
    """Rename the compacted files of ``seg`` into place (committer thread); ``False`` when
    the segment is gone by now (retention, a reopen): its compacted files are removed."""
    new_seg, new_idx, new_tok = _paths(seg)
    if part.swap(seg, new_tok, (new_idx, new_seg) if replaced else None):
        return True
    _unlink((new_seg, new_idx, new_tok))
    return False


# How a compaction installs a rewritten segment: ``install`` run on the committer thread, with
# scan workers held off.
Swap = Callable[[Partition, Segment, bool], bool]


def compact_partition(part: Partition, level: int, pacer: Pacer, swap: Swap) -> Report:
    """Compact every sealed segment of ``part`` not compacted yet, oldest first."""
    total = Report()
    for seg in part.to_compact():
        report = rewrite(seg, level, pacer)
        if report is None:  # stopping
            break
        if report.errors or swap(part, seg, report.replaced):
            total.add(report)
    return total


class Compactor:
    """The background thread: every ``check_s``, compacts what was sealed since, paced."""

    def __init__(
        self,
        settings: CompactionSettings,
        partitions: Callable[[], list[Partition]],
        swap: Swap,
    ) -> None:
        self.settings = settings
        self._partitions = partitions
        self._swap = swap
        self._stop = threading.Event()
        # One compaction at a time: the background thread's or ``compact_now``'s.
        self._busy = threading.Lock()
        self.totals = Report()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (when enabled)."""
        if self.settings.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wharf-compactor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background thread; a segment half rewritten is abandoned (its files go)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def compact_now(self, parts: list[Partition]) -> Report:
        """Compact every sealed segment of ``parts`` now, unpaced (``wharf topics compact``)."""
        total = Report()
        with self._busy:
            for part in parts:
                total.add(
                    compact_partition(
                        part, self.settings.level, Pacer(None, self._stop), self._swap
                    )
                )
        self.totals.add(total)
        return total

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: niceness is per thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        while not self._stop.is_set():
            for part in self._partitions():
                if self._stop.is_set():
                    return
                pacer = Pacer(self.settings.cpu_share, self._stop)  # no credit from idle time
                with self._busy:
                    try:
                        report = compact_partition(part, self.settings.level, pacer, self._swap)
                    except Exception:  # a bug must not end compaction for good: log, go on
                        log.exception("compaction of %s failed", part.dir)
                        continue
                self.totals.add(report)
            self._stop.wait(self.settings.check_s)
