"""One segment: a file of batches back to back, its index, and its dedupe snapshot.

``<base:020d>.seg`` holds the batches, ``.idx`` their index (see ``index``), ``.hwm`` the
high-water marks as of the end of the segment (written when it rolls). Only the newest segment
of a partition is written to; the others are sealed and never change until retention deletes
them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from collector.storage.dedupe import HighWaterMarks
from collector.storage.index import SegmentIndex
from wharf import batch as wb
from wharf.errors import CorruptBatch
from wharf.fsutil import write_atomically

log = logging.getLogger(__name__)

# Recovery and rebuilds read a segment in chunks of this size (a few batches at a time).
_READ_CHUNK = 8 << 20


def segment_name(base: int) -> str:
    """File stem of the segment whose first offset is ``base``."""
    return f"{base:020d}"


class Segment:
    """A segment file with its in-memory index. Not thread-safe for writes (one writer)."""

    __slots__ = (
        "__weakref__",
        "_close_reader",
        "_rfile",
        "_wfd",
        "base",
        "dir",
        "index",
        "sealed",
        "size",
    )

    def __init__(self, directory: Path, base: int, index: SegmentIndex, size: int) -> None:
        self.dir = directory
        self.base = base
        self.index = index
        self.size = size
        self.sealed = False
        self._wfd = -1
        # A file object, not a bare fd: a reader still holding this segment after retention
        # unlinked it keeps a valid descriptor until the last reference goes.
        self._rfile = open(self.path, "rb", buffering=0)  # noqa: SIM115
        self._close_reader = weakref.finalize(self, self._rfile.close)

    def __repr__(self) -> str:
        state = "sealed" if self.sealed else "active"
        return f"<Segment {self.path} {state} size={self.size} batches={len(self.index)}>"

    @property
    def path(self) -> Path:
        """The ``.seg`` file."""
        return self.dir / f"{segment_name(self.base)}.seg"

    @property
    def index_path(self) -> Path:
        """The ``.idx`` file."""
        return self.dir / f"{segment_name(self.base)}.idx"

    @property
    def snapshot_path(self) -> Path:
        """The ``.hwm`` file."""
        return self.dir / f"{segment_name(self.base)}.hwm"

    @property
    def next_offset(self) -> int:
        """Offset after the last batch in this segment."""
        return self.index.next_offset()

    @property
    def first_append_ms(self) -> int:
        """Append time of the first batch (0 when empty)."""
        return self.index.append_ms[0] if len(self.index) else 0

    @property
    def last_append_ms(self) -> int:
        """Append time of the last batch (0 when empty)."""
        return self.index.append_ms[-1] if len(self.index) else 0

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base: int) -> Segment:
        """A new, empty active segment."""
        path = directory / f"{segment_name(base)}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        os.close(fd)
        seg = cls(directory, base, SegmentIndex(base), 0)
        seg._open_for_write()
        return seg

    @classmethod
    def open_sealed(cls, directory: Path, base: int) -> Segment:
        """Open a sealed segment, rebuilding its index if the file is missing or wrong."""
        path = directory / f"{segment_name(base)}.seg"
        size = path.stat().st_size
        index = None
        idx_path = path.with_suffix(".idx")
        with contextlib.suppress(FileNotFoundError):
            index = SegmentIndex.decode(base, idx_path.read_bytes(), size)
        seg = cls(directory, base, index or SegmentIndex(base), size)
        seg.sealed = True
        if index is None:
            log.warning("rebuilding index of %s", path)
            seg._rebuild_index(verify=False)
            write_atomically(idx_path, seg.index.encode(seg.size))
        return seg

    @classmethod
    def recover_active(cls, directory: Path, base: int) -> Segment:
        """Open the newest segment after a restart: verify every batch, cut a torn tail."""
        seg = cls(
            directory,
            base,
            SegmentIndex(base),
            directory.joinpath(f"{segment_name(base)}.seg").stat().st_size,
        )
        good = seg._rebuild_index(verify=True)
        if good < seg.size:
            seg._cut_tail(good)
        seg.index_path.unlink(missing_ok=True)  # the active index lives in memory
        seg._open_for_write()
        return seg

    def _open_for_write(self) -> None:
        self._wfd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def _rebuild_index(self, *, verify: bool) -> int:
        """Index every readable batch from the start; return the end of the last good one."""
        self.index.truncate(0)
        expected = self.base
        pos = 0
        for pos_, header in self._scan_headers(verify=verify):
            if header.base_offset != expected:
                log.error(
                    "%s@%d: batch base offset %d, expected %d: stopping there",
                    self.path,
                    pos_,
                    header.base_offset,
                    expected,
                )
                return pos_
            self.index.add(
                header.base_offset,
                pos_,
                header.record_count,
                header.min_ts,
                header.max_ts,
                header.append_ms,
            )
            expected = header.next_offset
            pos = pos_ + header.size
        return pos

    def _scan_headers(self, *, verify: bool) -> Iterator[tuple[int, wb.Header]]:
        """(position, header) of each batch until the first unreadable one."""
        pos = 0
        while pos < self.size:
            head = os.pread(self._rfile.fileno(), wb.HEADER_SIZE, pos)
            try:
                header = wb.read_header(head)
                if pos + header.size > self.size:
                    raise CorruptBatch(f"batch of {header.size} bytes runs past end of file")
                if verify:
                    wb.Batch(self.pread(pos, header.size), where=f"{self.path}@{pos}")
            except CorruptBatch as exc:
                log.warning("%s@%d: %s", self.path, pos, exc.reason)
                return
            yield pos, header
            pos += header.size

    def _cut_tail(self, good: int) -> None:
        """Truncate at ``good``; keep the cut bytes beside the segment for forensics."""
        lost = self.size - good
        keep = self.path.with_name(f"{self.path.name}.torn-{time.time_ns()}")
        keep.write_bytes(self.pread(good, lost))
        log.warning(
            "%s: truncating %d bytes after position %d (saved to %s)", self.path, lost, good, keep
        )
        os.truncate(self.path, good)
        self.size = good

    # -- writing --------------------------------------------------------------------------

    def append(self, data: bytes, header: wb.Header) -> int:
        """Write one batch (offset already filled in); return its position."""
        pos = self.size
        view = memoryview(data)
        while view:
            view = view[os.write(self._wfd, view) :]
        self.size += len(data)
        self.index.add(
            header.base_offset,
            pos,
            header.record_count,
            header.min_ts,
            header.max_ts,
            header.append_ms,
        )
        return pos

    def sync(self) -> None:
        """fdatasync the segment file."""
        if self._wfd >= 0:
            os.fdatasync(self._wfd)

    def seal(self, marks: HighWaterMarks) -> None:
        """Make the segment read-only: sync, write its index and dedupe snapshot."""
        self.sync()
        write_atomically(self.index_path, self.index.encode(self.size))
        write_atomically(self.snapshot_path, marks.encode())
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
        self.sealed = True

    # -- reading --------------------------------------------------------------------------

    def pread(self, pos: int, size: int) -> bytes:
        """Read exactly ``size`` bytes at ``pos`` (short reads retried)."""
        data = os.pread(self._rfile.fileno(), size, pos)
        if len(data) == size:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(self._rfile.fileno(), size - got, pos + got)
            if not more:
                raise CorruptBatch(f"short read: {got} of {size} bytes", f"{self.path}@{pos}")
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def batch_at(self, entry: int) -> wb.Batch:
        """The batch of index entry ``entry``, checksum verified."""
        pos = self.index.position[entry]
        end = self.index.position[entry + 1] if entry + 1 < len(self.index) else self.size
        return wb.Batch(self.pread(pos, end - pos), where=f"{self.path}@{pos}")

    def entry_bytes(self, entry: int) -> tuple[int, int]:
        """(position, size) of index entry ``entry``."""
        pos = self.index.position[entry]
        end = self.index.position[entry + 1] if entry + 1 < len(self.index) else self.size
        return pos, end - pos

    def iter_spans(self) -> Iterator[wb.Batch]:
        """Every batch's header and meta, for replaying dedupe marks (payload not touched)."""
        for entry in range(len(self.index)):
            try:
                yield self.batch_at(entry)
            except CorruptBatch as exc:
                log.error("skipping unreadable batch while replaying marks: %s", exc)

    def load_snapshot(self) -> HighWaterMarks | None:
        """The dedupe snapshot written at seal time, if present and intact."""
        try:
            return HighWaterMarks.decode(self.snapshot_path.read_bytes())
        except FileNotFoundError:
            return None

    def close(self) -> None:
        """Close file descriptors."""
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
        self._close_reader()

    def delete(self) -> None:
        """Remove the segment's files. Readers that still hold it finish their reads."""
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
        for path in (self.path, self.index_path, self.snapshot_path):
            path.unlink(missing_ok=True)
