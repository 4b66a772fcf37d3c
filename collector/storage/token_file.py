"""A compacted segment's token filters: ``<base>.tok``, one filter per batch of the segment.

Written by compaction (``collector.storage.compaction``) before the compacted segment takes
the old one's place, and its presence is what marks a segment as compacted. It describes one
exact segment file (``covered`` must equal the segment's size, as an index file's does): a
``.tok`` left beside another version of the segment is ignored and removed.

A filter can only let a scan skip a batch, so every doubt reads the batch: a filter whose
checksum fails, a file that cannot be read, an entry past the end. A damaged filter costs
speed, never a record.

File layout, big-endian::

    magic   4s   b"WHTK"
    version B    1
    pad     3x
    count   I    filters (= batches of the segment)
    covered Q    bytes of the segment they describe
    before  Q    bytes of the segment before compaction (for ``wharf topics describe``)
    crc     I    CRC-32 of the directory
    directory  count x (position Q, size I, crc I): where each filter is in this file
    filters    back to back
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from collector.filters import tokens

log = logging.getLogger(__name__)

_MAGIC: Final = b"WHTK"
_HEAD: Final = struct.Struct(">4sB3xIQQI")
_ENTRY: Final = struct.Struct(">QII")


def encode(filters: Sequence[bytes], covered: int, before: int) -> list[bytes]:
    """The file's bytes, in pieces (for ``write_atomically``)."""
    pos = _HEAD.size + _ENTRY.size * len(filters)
    directory = bytearray()
    for f in filters:
        directory += _ENTRY.pack(pos, len(f), zlib.crc32(f))
        pos += len(f)
    head = _HEAD.pack(_MAGIC, 1, len(filters), covered, before, zlib.crc32(directory))
    return [head, bytes(directory), *filters]


class TokenFilters:
    """The directory of a ``.tok`` file (in memory: 16 bytes per batch); the filters stay on
    disk and are read one at a time (the page cache keeps the ones in use)."""

    __slots__ = ("_crc", "_pos", "_size", "_warned", "before", "bytes", "covered", "path")

    def __init__(
        self,
        path: Path,
        covered: int,
        before: int,
        pos: array[int],
        size: array[int],
        crc: array[int],
    ) -> None:
        self.path = path
        self.covered = covered
        self.before = before
        self._pos = pos
        self._size = size
        self._crc = crc
        self.bytes = _HEAD.size + _ENTRY.size * len(pos) + sum(size)
        self._warned = False

    def __len__(self) -> int:
        return len(self._pos)

    @classmethod
    def load(cls, path: Path, covered: int, batches: int) -> TokenFilters | None:
        """The filters of a segment of ``covered`` bytes and ``batches`` batches; ``None`` when
        there is no such file, or it is damaged or describes other bytes (then it is removed:
        the segment counts as not compacted, and compaction writes it again)."""
        try:
            with path.open("rb") as f:
                head = f.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    raise ValueError("short header")
                magic, version, count, file_covered, before, crc = _HEAD.unpack(head)
                if magic != _MAGIC or version != 1:
                    raise ValueError(f"bad magic or version {magic!r} {version}")
                if file_covered != covered or count != batches:
                    raise ValueError(
                        f"describes {count} batches in {file_covered} bytes, the segment holds "
                        f"{batches} in {covered}"
                    )
                directory = f.read(count * _ENTRY.size)
                if len(directory) != count * _ENTRY.size or zlib.crc32(directory) != crc:
                    raise ValueError("directory checksum mismatch")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s ignored and removed (%s): the segment is compacted again", path, exc)
            path.unlink(missing_ok=True)
            return None
        pos, size, crcs = array("Q"), array("I"), array("I")
        for p, s, c in _ENTRY.iter_unpack(directory):
            pos.append(p)
            size.append(s)
            crcs.append(c)
        return cls(path, covered, before, pos, size, crcs)

    def may_contain(self, entry: int, needed: Sequence[bytes]) -> bool:
        """Whether batch ``entry`` may hold every token of ``needed`` (``True`` whenever the
        filter cannot be read or checked)."""
        if not needed or entry >= len(self._pos):
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.pread(fd, self._size[entry], self._pos[entry])
            finally:
                os.close(fd)
        except OSError as exc:
            return self._doubt(f"cannot read it: {exc.strerror or exc}")
        if len(data) != self._size[entry] or zlib.crc32(data) != self._crc[entry]:
            return self._doubt(f"filter of batch {entry} is damaged")
        return tokens.may_contain(data, needed)

    def _doubt(self, why: str) -> bool:
        if not self._warned:
            self._warned = True
            log.warning("%s: %s; its batches are read instead", self.path, why)
        return True
