"""File identity: which file is this, and is it still the file we were reading?

A file is known by its device and inode (two files with the same first bytes never collide),
plus two content checks that catch what an inode cannot:

- the *head*: a hash of the first ``HEAD_BYTES`` bytes (fewer while the file is shorter), and
- the *check*: a CRC of the ``CHECK_BYTES`` bytes just before a saved offset.

A truncated file (copytruncate), a file rewritten in place, or a new file that the filesystem
put on a recycled inode all fail one of them: such a file is new, read from 0 under a new
``file_id``. The ``file_id`` is random, so the collector's high-water mark of an old file can
never hide the lines of a new one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import zlib
from enum import Enum
from typing import Final

# 1 KiB: enough to tell log files apart by their first lines (timestamps differ), small enough
# to read for every new file; Filebeat's fingerprint uses the same size.
HEAD_BYTES: Final = 1024
# The bytes before an offset that must be unchanged for the offset to still mean something.
CHECK_BYTES: Final = 1024


def new_file_id(dev: int, ino: int) -> str:
    """A file id that is never reused: device and inode for humans, 48 random bits for safety."""
    return f"{dev:x}.{ino:x}.{secrets.token_hex(6)}"


def head_of(fd: int, size: int) -> tuple[int, str]:
    """``(length, hash)`` of the first ``min(size, HEAD_BYTES)`` bytes."""
    n = min(size, HEAD_BYTES)
    data = os.pread(fd, n, 0) if n else b""
    return len(data), _hash(data)


def head_matches(fd: int, length: int, digest: str) -> bool:
    """Whether the file's first ``length`` bytes hash to ``digest``."""
    if length == 0:
        return True
    data = os.pread(fd, length, 0)
    return len(data) == length and _hash(data) == digest


def check_before(fd: int, offset: int) -> int:
    """CRC-32 of the bytes ``[offset - CHECK_BYTES, offset)`` (fewer near the start)."""
    start = max(0, offset - CHECK_BYTES)
    if offset <= 0:
        return 0
    data = os.pread(fd, offset - start, start)
    if len(data) != offset - start:
        return -1  # shorter than the offset: cannot match any saved check
    return zlib.crc32(data)


def check_of(data: bytes) -> int:
    """CRC-32 of the last ``CHECK_BYTES`` of ``data`` (the bytes before its end offset)."""
    return zlib.crc32(data[-CHECK_BYTES:]) if data else 0


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class Verdict(Enum):
    """How a file on disk relates to a saved position."""

    SAME = "same"  # resume at the saved offset
    TRUNCATED = "truncated"  # shorter than the offset: copytruncate or a truncation
    REPLACED = "replaced"  # the bytes differ: rewritten, or a new file on a reused inode


def verify(fd: int, size: int, offset: int, check: int, head_len: int, head: str) -> Verdict:
    """Compare an open file with a saved ``(offset, check, head)``."""
    if size < offset:
        return Verdict.TRUNCATED
    if head_len > size or not head_matches(fd, head_len, head):
        return Verdict.REPLACED
    if offset and check_before(fd, offset) != check:
        return Verdict.REPLACED
    return Verdict.SAME
