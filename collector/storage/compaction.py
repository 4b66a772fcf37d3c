"""Compaction: each sealed segment rewritten once, compressed harder, with token filters.

Batches arrive compressed at zstd level 3, which keeps ingest fast. A sealed segment is never
appended to again, so it can be rewritten once, in the background, as well as we know how:
consecutive batches of one producer merged into one of up to ``block_bytes`` of text
(``wharf.batch.merge``: the same records at the same offsets, their spans joined, so the dedupe
marks replay the same; a batch from another producer starts a new block) and compressed at
``level``, and a token filter per block (``collector.filters.tokens``) in a ``.tok`` file beside
the segment. Offsets, timestamps, hosts, sources, fields, exactly-once marks, retention (whole
segments) and every reader's records are unchanged; a consumer reading by offset may receive
fewer, larger batches.

What was measured before choosing (/tmp scripts on 200k access lines from the shared log with a
unique 32-hex request id each, 55 MB; bench/cold.py has the numbers on generated data): whole
file at -19 4.33 MB; blocks of 2 MiB at -19 1.42x that, 4 MiB 1.27x, 8 MiB 1.14x (2.5 to
1.9 MB/s per core); 64 KiB blocks 2.60x, and 1.67x with a trained dictionary. So the level
and the block size are what count: batches are merged (a shipper's are 2 MiB by default, the
inputs' often far smaller), and no dictionary is used (batches would no longer be readable
alone, by consumers or old collectors, for less than merging gives). Bigger blocks make a
needle read more text per hit; 4 MiB keeps the filters' granularity fine.

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
from collections.abc import Callable, Iterator
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
from wharf.errors import CorruptBatch, StoreClosed
from wharf.fsutil import write_atomically

log = logging.getLogger(__name__)

SUFFIX: Final = ".compacting"
# The background thread's niceness: below ingest and searches whenever the CPU is contended.
_NICE: Final = 10


class CompactionSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[compaction]`` in collector.toml."""

    enabled: bool = True  # compact sealed segments in the background
    level: int = 19  # zstd level of compacted batches (1..22)
    block_bytes: int = 4 << 20  # consecutive batches of one producer merged up to this much text
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


def _groups(seg: Segment, block_bytes: int) -> Iterator[list[wb.Batch]]:
    """The segment's batches in runs to merge: consecutive, of one producer (a batch's spans
    are its producer's), together at most ``block_bytes`` of text and ``MAX_RECORDS``."""
    run: list[wb.Batch] = []
    text = records = 0
    for e in range(len(seg.index)):
        b = seg.batch_at(e)
        h = b.header
        if run and (
            h.producer_id != run[0].header.producer_id
            or text + h.lines_ulen > block_bytes
            or records + h.record_count > wb.MAX_RECORDS
        ):
            yield run
            run, text, records = [], 0, 0
        run.append(b)
        text += h.lines_ulen
        records += h.record_count
    if run:
        yield run


def _filter(run: list[wb.Batch]) -> bytes:
    found: set[bytes] = set()
    for b in run:
        found |= tokens.line_tokens(b.lines_blob())
    return tokens.build(found, len(found))


def rewrite(seg: Segment, settings: CompactionSettings, pacer: Pacer) -> Report | None:
    """Write the compacted files of sealed ``seg`` beside it (``*.compacting``, fsynced; the
    ``.seg`` and ``.idx`` only when the new segment is smaller). ``None`` when cut short by
    ``pacer.stop``; a report with ``errors`` when the segment could not be read or written
    (its own files are left as they are)."""
    cpu0 = time.thread_time()
    new_seg, new_idx, new_tok = _paths(seg)
    index = SegmentIndex(seg.base)
    filters: list[bytes] = []
    report = Report(segments=1, batches=len(seg.index), bytes_before=seg.size)
    try:
        with new_seg.open("wb") as out:
            pos = 0
            for run in _groups(seg, settings.block_bytes):
                if pacer.stop.is_set():
                    out.close()
                    _unlink((new_seg,))
                    return None
                first = run[0].header
                data = (
                    wb.recompress(run[0], settings.level)
                    if len(run) == 1
                    else wb.with_offset(
                        wb.merge(run, settings.level),
                        first.base_offset,
                        max(b.header.append_ms for b in run),
                    )
                )
                h = wb.read_header(data)
                index.add(h.base_offset, pos, h.record_count, h.min_ts, h.max_ts, h.append_ms)
                out.write(data)
                pos += len(data)
                filters.append(_filter(run))
                report.line_bytes += sum(b.header.lines_ulen + 1 for b in run)
                pacer.pace()
            out.flush()
            os.fsync(out.fileno())
        report.replaced = pos < seg.size
        if report.replaced:
            write_atomically(new_idx, index.encode(pos))
        else:  # the old bytes stay: filters for its own batches
            _unlink((new_seg,))
            filters = [_filter([seg.batch_at(e)]) for e in range(len(seg.index))]
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


def compact_partition(
    part: Partition,
    settings: CompactionSettings,
    pacer: Pacer,
    swap: Swap,
    failed: set[Path] | None = None,
) -> Report:
    """Compact every sealed segment of ``part`` not compacted yet, oldest first; those in
    ``failed`` are skipped, and those that fail now are added to it."""
    total = Report()
    for seg in part.to_compact():
        if failed is not None and seg.path in failed:
            continue
        report = rewrite(seg, settings, pacer)
        if report is None:  # stopping
            break
        if not report.errors:
            try:
                if not swap(part, seg, report.replaced):
                    continue  # gone meanwhile (retention): nothing to count
            except OSError as exc:
                _unlink(_paths(seg))
                report = Report(errors=[f"{seg.path}: not compacted: {exc.strerror or exc}"])
                log.error("%s", report.errors[0])
        if report.errors and failed is not None:
            failed.add(seg.path)
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
        # Segments the background thread could not compact (a damaged batch, a full disk):
        # not tried again until a restart or ``compact_now``, so the log says it once.
        self._failed: set[Path] = set()
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
        """Compact every sealed segment of ``parts`` now, unpaced (``wharf topics compact``),
        those the background thread gave up on included."""
        total = Report()
        with self._busy:
            for part in parts:
                pacer = Pacer(None, self._stop)
                total.add(compact_partition(part, self.settings, pacer, self._swap))
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
                        compact_partition(part, self.settings, pacer, self._swap, self._failed)
                    except StoreClosed:
                        return
                    except Exception:  # a bug must not end compaction for good: log, go on
                        log.exception("compaction of %s failed", part.dir)
            self._stop.wait(self.settings.check_s)
