"""A partition: an ordered log of batches split into segments.

Offsets start at 0, are contiguous and never reused. Writes come from one thread (the store's
committer); reads may come from any thread and only ever see batches up to ``durable_offset``,
the end of what has been acknowledged.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from collector.filters.query import Predicate, Query
from collector.storage import scan as scanning
from collector.storage.dedupe import HighWaterMarks, Verdict, trim
from collector.storage.files import OpenFiles
from collector.storage.line_bytes import LineBytes
from collector.storage.scan import ScanHit, ScanStats, Watch
from collector.storage.segment import Segment
from collector.storage.topic_config import TopicConfig
from wharf import batch as wb
from wharf.api import Compaction, PartitionInfo
from wharf.errors import InvalidArgument, OffsetOutOfRange
from wharf.fsutil import fsync_dir

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    """Milliseconds since the epoch: the append time stamped on stored batches."""
    return time.time_ns() // 1_000_000


class AppendResult(msgspec.Struct, frozen=True):
    """Outcome of one append. ``duplicate`` batches were stored before and are not stored again
    (``base_offset`` is then -1); a partly duplicate batch is trimmed and ``record_count`` says
    how many of its records were stored."""

    partition: int
    base_offset: int
    record_count: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class BatchRef:
    """Where one batch lives, from the index alone (no I/O)."""

    segment: Segment
    entry: int
    base_offset: int
    count: int
    min_ts: int
    max_ts: int
    use_filters: bool = True

    @property
    def stored_bytes(self) -> int:
        """The batch's size on disk."""
        return self.segment.entry_bytes(self.entry)[1]

    def load(self) -> wb.Batch:
        """Read and check the batch (``CorruptBatch`` when damaged)."""
        return self.segment.batch_at(self.entry)

    def may_contain(self, tokens: Sequence[bytes]) -> bool:
        """Whether the batch may hold every one of ``tokens`` (``collector.filters.tokens``):
        ``False`` only when its segment's token filter rules one out."""
        filters = self.segment.filters
        return not self.use_filters or filters is None or filters.may_contain(self.entry, tokens)

    def __repr__(self) -> str:
        return f"{self.segment.path}@{self.base_offset}"


class Partition:
    """One partition directory: ``<topic>/<n>/``."""

    def __init__(
        self,
        directory: Path,
        number: int,
        config: TopicConfig,
        clock_ms: Callable[[], int] = wall_clock_ms,
        *,
        topic: str = "",
        files: OpenFiles | None = None,
        use_filters: bool = True,
    ) -> None:
        self.dir = directory
        self.topic = topic
        self.clock_ms = clock_ms
        self.number = number
        self.config = config
        self.files = files if files is not None else OpenFiles()
        self._lock = threading.Lock()  # guards the segment list against retention and rolls
        self._line_bytes = LineBytes()
        self.failure: str | None = None  # set when a write failed: the partition is offline
        self.retry_at = 0.0  # monotonic time after which ``reopen`` may be tried again
        self.retries = 0  # failed reopen attempts since the failure (for the backoff)
        self.wants_space = False  # the failure was a full disk: retry once it has room
        self._dirty = False
        self.use_filters = use_filters  # scans skip batches by compacted segments' filters
        self.segments, self.marks = self._load()
        self.durable_offset = self.end_offset

    def __repr__(self) -> str:
        return f"<Partition {self.dir} [{self.start_offset}, {self.end_offset})>"

    # -- recovery -------------------------------------------------------------------------

    def _load(self) -> tuple[list[Segment], HighWaterMarks]:
        """The segments and dedupe marks from the files, as after a crash: the newest segment
        verified and cut after its last good batch."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for tmp in itertools.chain(self.dir.glob("*.tmp"), self.dir.glob("*.compacting")):
            tmp.unlink()  # a cache file or a compaction cut off by a crash
        bases = sorted(int(p.stem) for p in self.dir.glob("*.seg") if p.stem.isdigit())
        if not bases:
            return [Segment.create(self.dir, 0, self.files)], HighWaterMarks()
        segments = [Segment.open_sealed(self.dir, base, self.files) for base in bases[:-1]]
        segments.append(Segment.recover_active(self.dir, bases[-1], self.files))
        self._check_continuity(segments)
        return segments, self._replay_marks(segments)

    def _check_continuity(self, segments: list[Segment]) -> None:
        for prev, seg in itertools.pairwise(segments):
            if prev.next_offset != seg.base:
                log.error(
                    "%s: segment %s ends at offset %d but the next starts at %d",
                    self.dir,
                    prev.path.name,
                    prev.next_offset,
                    seg.base,
                )

    @staticmethod
    def _replay_marks(segments: list[Segment]) -> HighWaterMarks:
        """Rebuild dedupe marks: newest sealed snapshot, then the batches after it."""
        marks = HighWaterMarks()
        start = 0
        for i in range(len(segments) - 2, -1, -1):
            snap = segments[i].load_snapshot()
            if snap is not None:
                marks = snap
                start = i + 1
                break
        for seg in segments[start:]:
            for b in seg.iter_spans():
                marks.advance(b.header.producer_id, b.spans)
        return marks

    def reopen(self) -> None:
        """Bring the partition back after a failed write (committer thread): cut what was
        written but never acknowledged, then reload from the files as a restart would, and
        take writes again. Raises ``OSError`` when that fails too (it stays offline).

        A failed write leaves the in-memory state and the file apart (a batch written in part,
        a roll half done, pages lost by a failed fsync): the files, cut back to what was
        acknowledged, are the truth, as they are after a crash.
        """
        active = self.segments[-1]
        for seg in self.segments:
            seg.close()
        self.files.forget(active.path)
        if active.path.exists() and active.path.stat().st_size > active.durable_size:
            os.truncate(active.path, active.durable_size)
        segments, marks = self._load()
        with self._lock:
            self.segments, self.marks = segments, marks
        self._dirty = False
        if self.end_offset < self.durable_offset:  # never expected: say so, loudly
            log.error(
                "%s: reopened at offset %d, below the acknowledged end %d",
                self.dir,
                self.end_offset,
                self.durable_offset,
            )
        self.durable_offset = self.end_offset
        self.failure = None
        self.retries = 0

    # -- offsets --------------------------------------------------------------------------

    @property
    def start_offset(self) -> int:
        """First offset still stored."""
        return self.segments[0].base

    @property
    def end_offset(self) -> int:
        """Next offset to be written."""
        return self.segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        """Bytes of all segment files."""
        return sum(s.size for s in self.segments)

    # -- writing (committer thread only) ----------------------------------------------------

    def append(self, data: bytes) -> AppendResult:
        """Validate, dedupe, assign offsets and write one batch. Not yet durable: see ``sync``.

        Raises ``CorruptBatch`` for bytes that are not a valid batch.
        """
        batch = wb.Batch(data)
        producer = batch.header.producer_id
        verdict = self.marks.verdict(producer, batch.spans)
        if verdict is Verdict.DUPLICATE:
            return AppendResult(self.number, -1, 0, duplicate=True)
        if verdict is Verdict.PARTIAL:
            trimmed = trim(batch, self.marks)
            if trimmed is None:
                self.marks.advance(producer, batch.spans)
                return AppendResult(self.number, -1, 0, duplicate=True)
            data, batch = trimmed, wb.Batch(trimmed)
        now_ms = self.clock_ms()
        self._maybe_roll(len(data), now_ms)
        active = self.segments[-1]
        base = active.next_offset
        stored = wb.with_offset(data, base, now_ms)
        header = wb.read_header(stored)
        active.append(stored, header)
        self.marks.advance(producer, batch.spans)
        self._dirty = True
        return AppendResult(self.number, base, header.record_count)

    def _maybe_roll(self, incoming: int, now_ms: int) -> None:
        active = self.segments[-1]
        if not len(active.index):
            return
        too_big = active.size + incoming > self.config.segment_bytes
        too_old = now_ms - active.first_append_ms >= self.config.segment_ms
        if too_big or too_old:
            self.roll()

    def roll(self) -> None:
        """Seal the active segment and start a new one at the current end offset."""
        active = self.segments[-1]
        if not len(active.index):
            return
        active.seal(self.marks)
        fresh = Segment.create(self.dir, active.next_offset, self.files)
        with self._lock:
            self.segments.append(fresh)
        self.durable_offset = max(self.durable_offset, active.next_offset)

    def sync(self) -> None:
        """Make every append so far durable and visible to readers."""
        if self._dirty:
            self.segments[-1].sync()
            self._dirty = False
        self.durable_offset = self.end_offset

    def publish(self) -> None:
        """Make appends visible without fsync (fsync policy "never")."""
        self.segments[-1].publish()  # still dirty: ``close`` syncs it
        self.durable_offset = self.end_offset

    # -- retention ------------------------------------------------------------------------

    def enforce_retention(self, now_ms: int) -> int:
        """Delete whole oldest segments past retention time or size; return how many."""
        cfg = self.config
        active = self.segments[-1]
        if (
            cfg.retention_ms >= 0
            and len(active.index)
            and now_ms - active.last_append_ms > cfg.retention_ms
        ):
            self.roll()  # everything in the active segment expired: let it go too
        doomed: list[Segment] = []
        with self._lock:
            total = sum(s.size for s in self.segments)
            while len(self.segments) - len(doomed) > 1:
                seg = self.segments[len(doomed)]
                expired = cfg.retention_ms >= 0 and now_ms - seg.last_append_ms > cfg.retention_ms
                oversize = cfg.retention_bytes >= 0 and total - seg.size >= cfg.retention_bytes
                if not (expired or oversize):
                    break
                doomed.append(seg)
                total -= seg.size
            del self.segments[: len(doomed)]
        for seg in doomed:
            log.info("retention: deleting %s", seg.path)
            seg.delete()
        return len(doomed)

    # -- compaction ---------------------------------------------------------------------

    def to_compact(self) -> list[Segment]:
        """Sealed segments not compacted yet, oldest first."""
        with self._lock:
            return [s for s in self.segments[:-1] if s.filters is None and len(s.index)]

    def swap(self, old: Segment, filters: Path, rewritten: tuple[Path, Path] | None) -> bool:
        """Put the compacted version of sealed segment ``old`` in its place (committer thread):
        rename ``filters`` (its ``.tok``) and, when the segment was rewritten, ``rewritten``
        (its new ``.idx`` and ``.seg``, all fsynced) over the segment's own files, in that
        order (``collector.storage.compaction`` says why). ``False``, and nothing renamed, when
        ``old`` is no longer one of this partition's segments (retention, a reopen).

        Readers holding ``old`` keep reading the old file (``Segment.retire``); new readers
        get the new segment: a read sees one or the other, never a mix.
        """
        with self._lock:
            try:
                i = next(i for i, s in enumerate(self.segments) if s is old)
            except StopIteration:
                return False
            os.rename(filters, old.filters_path)
            if rewritten is not None:
                index, segment = rewritten
                old.retire()
                os.rename(index, old.index_path)
                os.rename(segment, old.path)
                self.files.forget(old.path)
            fsync_dir(self.dir)
            self.segments[i] = Segment.open_sealed(self.dir, old.base, self.files)
            return True

    # -- reading --------------------------------------------------------------------------

    def _check_offset(self, offset: int) -> None:
        if offset < 0:
            raise InvalidArgument(f"offset {offset} is negative")
        start, end = self.start_offset, self.durable_offset
        if offset < start:
            raise OffsetOutOfRange(
                f"offset {offset} of partition {self.number} was deleted by retention; "
                f"the earliest is {start}"
            )
        if offset > end:
            raise OffsetOutOfRange(
                f"offset {offset} is past the end of partition {self.number} (end is {end})"
            )

    def refs(
        self,
        from_offset: int | None = None,
        *,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> Iterator[BatchRef]:
        """Batches holding ``from_offset`` and later, skipping those outside ``[min_ts, max_ts]``
        by the index alone. Only durable batches are returned."""
        if from_offset is not None:
            self._check_offset(from_offset)
        end = self.durable_offset
        with self._lock:
            segments = list(self.segments)
        for seg in segments:
            idx = seg.index
            n = len(idx)
            if not n or seg.base >= end:
                continue
            if from_offset is not None and seg.next_offset <= from_offset:
                continue
            first = 0 if from_offset is None else max(0, idx.find(from_offset))
            for e in range(first, n):
                base = idx.base + idx.rel_offset[e]
                if base >= end:
                    return
                lo, hi = idx.min_ts[e], idx.max_ts[e]
                if (min_ts is not None and hi < min_ts) or (max_ts is not None and lo > max_ts):
                    continue
                yield BatchRef(seg, e, base, idx.count[e], lo, hi, self.use_filters)

    def read(self, offset: int, max_bytes: int = 1 << 20) -> list[wb.Batch]:
        """Durable batches from the one holding ``offset``, up to about ``max_bytes`` (at least
        one batch when any exists). The first batch may start before ``offset``."""
        out: list[wb.Batch] = []
        size = 0
        for ref in self.refs(offset):
            b = ref.load()
            out.append(b)
            size += b.header.size
            if size >= max_bytes:
                break
        return out

    def scan(
        self,
        query: Query,
        *,
        predicate: Predicate | None = None,
        from_offset: int | None = None,
        to_offset: int | None = None,
        stats: ScanStats | None = None,
        watch: Watch | None = None,
    ) -> Iterator[ScanHit]:
        """Records matching ``query`` and ``predicate`` within ``[from_offset, to_offset)``, in
        offset order (see ``collector.storage.scan``)."""
        return scanning.scan(
            self,
            query,
            predicate=predicate,
            from_offset=from_offset,
            to_offset=to_offset,
            stats=stats,
            watch=watch,
        )

    def offset_for_time(self, ts: int) -> int:
        """First offset whose record ts is >= ``ts``; the end offset if there is none."""
        return scanning.offset_for_time(self, ts, self.durable_offset)

    def line_bytes(self) -> int:
        """Raw bytes of the stored lines, newlines included, exact (reads each batch header
        once; call it off the event loop)."""
        with self._lock:
            segments = list(self.segments)
        return self._line_bytes.of_segments(segments)

    def info(self) -> PartitionInfo:
        """Offsets, size and time span."""
        with self._lock:
            segments = list(self.segments)
        lows = [min(s.index.min_ts) for s in segments if len(s.index)]
        highs = [max(s.index.max_ts) for s in segments if len(s.index)]
        compacted = [(s, s.filters) for s in segments if s.filters is not None]
        return PartitionInfo(
            partition=self.number,
            start_offset=segments[0].base,
            end_offset=self.durable_offset,
            bytes=sum(s.size for s in segments),
            segments=len(segments),
            min_ts=min(lows) if lows else None,
            max_ts=max(highs) if highs else None,
            compaction=Compaction(
                segments=len(compacted),
                bytes_before=sum(f.before for _, f in compacted),
                bytes_after=sum(s.size for s, _ in compacted),
                filter_bytes=sum(f.bytes for _, f in compacted),
            ),
        )

    def close(self) -> None:
        """Sync (unless offline: what follows its acknowledged end is cut when it is reopened)
        and close every segment, their descriptors included."""
        if self.failure is None:
            self.sync()
        for seg in self.segments:
            seg.close()
            self.files.forget(seg.path)
