"""One segment: a file of batches back to back, its index, and its dedupe snapshot.

``<base:020d>.seg`` holds the batches, ``.idx`` their index (see ``index``), ``.hwm`` the
high-water marks as of the end of the segment (written when it rolls), ``.tok`` the token
filters of a compacted segment (``token_file``). Only the newest segment of a partition is
written to; the others are sealed and never appended to: compaction may replace one once by a
file of the same batches compressed harder (``compaction``), and retention deletes them.

A segment holds no file descriptor of its own: it borrows one from the store's ``OpenFiles``
for each read, and one for writing from its first append of a committer turn until that turn's
sync (``files``). Only a segment that retention deleted keeps one, so that whoever still reads
it can finish: the file is gone from the directory, its descriptor is its only way in.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from collector.storage.dedupe import HighWaterMarks
from collector.storage.files import Handle, OpenFiles
from collector.storage.index import SegmentIndex
from collector.storage.token_file import TokenFilters
from wharf import batch as wb
from wharf.errors import CorruptBatch
from wharf.fsutil import write_atomically

log = logging.getLogger(__name__)

# Recovery and rebuilds read a segment in chunks of this size (a few batches at a time).
_READ_CHUNK = 8 << 20
# Recovery keeps a copy of a torn tail only if this much room is left beside it afterwards: the
# copy is forensics, and must not be what fills the disk up.
_TORN_COPY_HEADROOM = 64 << 20


def segment_name(base: int) -> str:
    """File stem of the segment whose first offset is ``base``."""
    return f"{base:020d}"


def _write_cache(path: Path, data: bytes) -> None:
    """Write an index or snapshot file, a cache that can be rebuilt: when the disk is full it is
    skipped (with a warning) rather than failing what needed it, and no partial file is left."""
    try:
        write_atomically(path, data)
    except OSError as exc:
        path.with_name(path.name + ".tmp").unlink(missing_ok=True)
        log.warning("%s not written (%s): it is rebuilt when needed", path, exc.strerror or exc)


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class Segment:
    """A segment file with its in-memory index. Not thread-safe for writes (one writer)."""

    __slots__ = (
        "__weakref__",
        "_files",
        "_pinned",
        "_synced",
        "_writer",
        "base",
        "dir",
        "durable_size",
        "filters",
        "index",
        "sealed",
        "size",
    )

    def __init__(
        self, directory: Path, base: int, index: SegmentIndex, size: int, files: OpenFiles
    ) -> None:
        self.dir = directory
        self.base = base
        self.index = index
        self.size = size
        # The end of what was acknowledged (synced, or written under fsync "never"): recovery
        # after a failed write cuts the file back to it.
        self.durable_size = size
        self._synced = size  # the end of what was fdatasynced
        self.sealed = False
        self._files = files
        self._writer: Handle | None = None  # borrowed from the first append to the sync
        self._pinned = -1  # a descriptor of our own, once the file was deleted or replaced
        self.filters: TokenFilters | None = None  # a compacted segment's token filters

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
    def filters_path(self) -> Path:
        """The ``.tok`` file (compacted segments only)."""
        return self.dir / f"{segment_name(self.base)}.tok"

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
    def create(cls, directory: Path, base: int, files: OpenFiles) -> Segment:
        """A new, empty active segment."""
        path = directory / f"{segment_name(base)}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        os.close(fd)
        return cls(directory, base, SegmentIndex(base), 0, files)

    @classmethod
    def open_sealed(cls, directory: Path, base: int, files: OpenFiles) -> Segment:
        """Open a sealed segment, rebuilding its index if the file is missing or wrong."""
        path = directory / f"{segment_name(base)}.seg"
        size = path.stat().st_size
        index = None
        idx_path = path.with_suffix(".idx")
        with contextlib.suppress(FileNotFoundError):
            index = SegmentIndex.decode(base, idx_path.read_bytes(), size)
        seg = cls(directory, base, index or SegmentIndex(base), size, files)
        seg.sealed = True
        if index is None:
            log.warning("rebuilding index of %s", path)
            seg._rebuild_index(verify=False)
            _write_cache(idx_path, seg.index.encode(seg.size))
        seg.filters = TokenFilters.load(seg.filters_path, size, len(seg.index))
        return seg

    @classmethod
    def recover_active(cls, directory: Path, base: int, files: OpenFiles) -> Segment:
        """Open the newest segment after a restart: verify every batch, cut a torn tail."""
        seg = cls(
            directory,
            base,
            SegmentIndex(base),
            directory.joinpath(f"{segment_name(base)}.seg").stat().st_size,
            files,
        )
        good = seg._rebuild_index(verify=True)
        if good < seg.size:
            seg._cut_tail(good)
        seg.index_path.unlink(missing_ok=True)  # the active index lives in memory
        return seg

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
            with self._reading() as fd:
                head = os.pread(fd, wb.HEADER_SIZE, pos)
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
        """Truncate at ``good``; keep the cut bytes beside the segment for forensics when the
        disk has room for them.

        The cut bytes were never acknowledged (an acknowledged batch is whole and checks), so
        the copy is a courtesy: on a disk short of space it is not made, and a copy that fails
        half-way is removed. Otherwise a full disk would stop the collector from starting, and
        every attempt would leave one more partial copy eating the space freed since.
        """
        lost = self.size - good
        keep = self.path.with_name(f"{self.path.name}.torn-{time.time_ns()}")
        saved = f"saved to {keep}"
        try:
            disk = os.statvfs(self.dir)
            if disk.f_bavail * disk.f_frsize < lost + _TORN_COPY_HEADROOM:
                raise OSError(errno.ENOSPC, "not enough free space to keep a copy")
            keep.write_bytes(self.pread(good, lost))
        except OSError as exc:
            keep.unlink(missing_ok=True)
            saved = f"not saved: {exc.strerror or exc}"
        log.warning("%s: truncating %d bytes after position %d (%s)", self.path, lost, good, saved)
        os.truncate(self.path, good)
        self._files.forget(self.path)
        self.size = self.durable_size = self._synced = good

    # -- writing --------------------------------------------------------------------------

    def append(self, data: bytes, header: wb.Header) -> int:
        """Write one batch (offset already filled in); return its position."""
        pos = self.size
        if self._writer is None:
            self._writer = self._files.borrow(self.path, write=True)
        view = memoryview(data)
        while view:
            view = view[os.write(self._writer.fd, view) :]
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
        """fdatasync what was appended since the last sync, and give back the descriptor."""
        writer, self._writer = self._writer, None
        if writer is None:
            if self._synced == self.size:
                return
            writer = self._files.borrow(self.path, write=True)  # published, not synced yet
        try:
            os.fdatasync(writer.fd)
        finally:
            self._files.give_back(writer)
        self.durable_size = self._synced = self.size

    def publish(self) -> None:
        """What was appended counts as acknowledged without a sync (fsync "never")."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._files.give_back(writer)
        self.durable_size = self.size

    def seal(self, marks: HighWaterMarks) -> None:
        """Make the segment read-only: sync, write its index and dedupe snapshot (both caches:
        rebuilt on open when they could not be written)."""
        self.sync()
        _write_cache(self.index_path, self.index.encode(self.size))
        _write_cache(self.snapshot_path, marks.encode())
        self.sealed = True

    # -- reading --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[int]:
        """A descriptor to read the segment with, for the block."""
        if self._pinned >= 0:
            yield self._pinned
            return
        try:
            handle = self._files.borrow(self.path)
        except FileNotFoundError:
            if self._pinned < 0:  # not deleted while we looked: really gone
                raise
            yield self._pinned
            return
        try:
            # Retired while we borrowed: the path may name the compacted file by now, which
            # this segment's index does not describe (``retire`` runs before the rename).
            yield self._pinned if self._pinned >= 0 else handle.fd
        finally:
            self._files.give_back(handle)

    def pread(self, pos: int, size: int) -> bytes:
        """Read exactly ``size`` bytes at ``pos`` (short reads retried)."""
        with self._reading() as fd:
            data = os.pread(fd, size, pos)
            if len(data) == size:
                return data
            parts = [data]
            got = len(data)
            while got < size:
                more = os.pread(fd, size - got, pos + got)
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
        """Give back the write descriptor (unsynced appends stay unsynced: ``sync`` first)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._files.give_back(writer)

    def retire(self) -> None:
        """Keep reading this file through a descriptor of its own, whatever later becomes of
        its path (deleted, or replaced by a compacted segment): readers that still hold this
        segment, with its index, finish their reads on the bytes that index describes. The
        descriptor is closed when the last of them lets the segment go."""
        self.close()
        if self._pinned >= 0:
            return
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            self._pinned = fd
            weakref.finalize(self, _close_fd, fd)

    def delete(self) -> None:
        """Remove the segment's files (readers that still hold it finish: ``retire``)."""
        self.retire()
        for path in (self.path, self.index_path, self.snapshot_path, self.filters_path):
            path.unlink(missing_ok=True)
        self._files.forget(self.path)
