"""One followed file: its descriptor, position, identity, and the ``Tail`` that cuts its bytes
into events. Thin I/O (``pread``/``fstat``) around the pure ``Tail``; no asyncio.

The descriptor is what keeps a file readable after it was renamed or deleted: a follower whose
path no longer leads to it is *detached*, read to its end (plus a grace period for writers that
have not reopened yet), flushed, and released once everything it sent is acknowledged. Where a
follower is in that life cycle is its ``state`` (``shipper.lifecycle``), shown in its ``repr``.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from parsers import Parser, get_parser
from parsers.lines import sniff_encoding
from parsers.multiline import MultilineConfig
from shipper import identity
from shipper.batcher import FileTrack
from shipper.config import InputConfig
from shipper.discovery import Matcher
from shipper.lifecycle import GONE_FROM_PATH, FileState, check
from shipper.runs import ParseSpec, RunParts
from shipper.tail import Tail

Key = tuple[int, int]  # (st_dev, st_ino)


@dataclass(eq=False)
class InputRuntime:
    """An input's config with what it needs at run time."""

    config: InputConfig
    matcher: Matcher
    parser: Parser
    multiline: MultilineConfig | None
    fields: dict[str, Any]
    runs: RunParts  # runs of whole lines into batch parts (the zero-copy path)

    @classmethod
    def build(cls, config: InputConfig) -> InputRuntime:
        """Compile globs, parser and multiline settings."""
        parser = get_parser(config.parser, **config.parser_options)
        runs = RunParts(parser, dict(config.fields))
        if runs.takes_runs:
            # Parsed where batches are built, off the reading path (``shipper.building``).
            runs.deferred = ParseSpec(
                config.parser, dict(config.parser_options), dict(config.fields)
            )
        return cls(
            config, Matcher(config), parser, config.multiline_config(), dict(config.fields), runs
        )

    @property
    def label(self) -> str:
        """Name for logs and status."""
        return self.config.label

    def new_tail(
        self,
        offset: int,
        max_line_bytes: int,
        forced: Iterable[int] = (),
        head: bytes = b"",
        skips: Iterable[int] = (),
    ) -> Tail:
        """A ``Tail`` for this input's files from ``offset`` on; ``head``: the file's first
        bytes, which say its encoding when it is "auto" and reading resumes past them;
        ``skips``: the saved skip points (see ``shipper.tail``)."""
        encoding: str = self.config.encoding
        if encoding == "auto" and offset > 0:
            encoding = sniff_encoding(head)
        return Tail(
            offset,
            max_line_bytes=max_line_bytes,
            multiline=self.multiline,
            container=self.config.container,
            encoding=encoding,
            forced=forced,
            skip=offset in skips,
        )

    @property
    def topic(self) -> str:
        """Where its records go."""
        return self.config.topic


@dataclass(eq=False, repr=False)
class Follower:
    """A file being followed (see the module docstring)."""

    key: Key
    path: str
    source: str
    input: InputRuntime
    track: FileTrack
    tail: Tail
    head_len: int = 0
    head: str = ""
    forced: list[int] = field(default_factory=list)
    fd: int | None = None
    size: int = 0
    # Only ``to`` changes it (``FileTable`` calls it and keeps its index of states).
    state: FileState = FileState.FOLLOWING
    at_eof_since: float | None = None  # monotonic time the last read found nothing new
    last_read: float = 0.0  # wall clock of the last read that returned bytes
    last_used: float = 0.0  # monotonic, for closing the least recently used descriptor
    rotations: int = 0
    bytes_read: int = 0
    last_bytes: bytes = b""  # up to CHECK_BYTES before the read position

    def __repr__(self) -> str:
        fd = "closed" if self.fd is None else f"fd {self.fd}"
        return (
            f"<Follower {self.path} {self.state.value} {fd} at {self.pos} of {self.size} "
            f"id {self.file_id}>"
        )

    def to(self, state: FileState) -> None:
        """Move to ``state`` (``IllegalTransition`` unless ``shipper.lifecycle`` allows it)."""
        self.state = check(self.state, state, self.path)

    @property
    def detached(self) -> bool:
        """Whether the path no longer leads here (detached, or finished)."""
        return self.state in GONE_FROM_PATH

    @property
    def file_id(self) -> str:
        """The id spans carry."""
        return self.track.file_id

    @property
    def pos(self) -> int:
        """Next byte to read."""
        return self.tail.next_offset

    @property
    def closable(self) -> bool:
        """Whether the descriptor may be closed and the file reopened by path later (a
        renamed or deleted file could not be; a held partial line must stay checkable)."""
        return (
            self.fd is not None
            and self.state in (FileState.FOLLOWING, FileState.PAUSED)
            and not self.tail.pending
        )

    def open(self) -> bool:
        """Open by path; ``False`` if the path now holds another file (or nothing)."""
        if self.fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return False
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self.key:
            os.close(fd)
            return False
        self.fd = fd
        self.size = st.st_size
        self.last_used = time.monotonic()
        return True

    def close(self) -> None:
        """Release the descriptor."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def stat_size(self) -> tuple[int, bool]:
        """Current size through the descriptor, and whether the file has no name left (it was
        deleted: the caller detaches it)."""
        assert self.fd is not None
        st = os.fstat(self.fd)
        self.size = st.st_size
        return self.size, st.st_nlink == 0

    def tail_intact(self) -> bool:
        """Whether the bytes before the position are still the ones read (catches a file
        truncated and rewritten past the old position between two reads)."""
        assert self.fd is not None
        n = len(self.last_bytes)
        if not n:
            return True
        return os.pread(self.fd, n, self.pos - n) == self.last_bytes

    def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes at the position (the caller feeds them to ``tail``)."""
        assert self.fd is not None
        data = os.pread(self.fd, limit, self.pos)
        if data:
            self.bytes_read += len(data)
            if len(data) >= identity.CHECK_BYTES:
                self.last_bytes = data[-identity.CHECK_BYTES :]
            else:
                self.last_bytes = (self.last_bytes + data)[-identity.CHECK_BYTES :]
            self.last_read = time.time()
            self.last_used = time.monotonic()
            if self.head_len < identity.HEAD_BYTES and self.pos + len(data) > self.head_len:
                self.head_len, self.head = identity.head_of(
                    self.fd, min(self.pos + len(data), identity.HEAD_BYTES)
                )
        return data

    def check_at(self, end: int) -> int:
        """CRC of the bytes before ``end`` (which was read already)."""
        if end == self.pos and self.last_bytes:
            start = max(0, end - identity.CHECK_BYTES)
            if len(self.last_bytes) >= end - start:
                return zlib.crc32(self.last_bytes[len(self.last_bytes) - (end - start) :])
        if self.fd is not None:
            return identity.check_before(self.fd, end)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return -1
        try:
            st = os.fstat(fd)
            return identity.check_before(fd, end) if (st.st_dev, st.st_ino) == self.key else -1
        finally:
            os.close(fd)

    def load_last_bytes(self) -> None:
        """Fill ``last_bytes`` from the file (after resuming at an offset)."""
        assert self.fd is not None
        start = max(0, self.pos - identity.CHECK_BYTES)
        self.last_bytes = os.pread(self.fd, self.pos - start, start)

    def reset(self, file_id: str, offset: int, max_line_bytes: int) -> None:
        """Start over at ``offset`` as a new file (truncation, replacement)."""
        self.track = FileTrack(file_id, offset)
        self.tail = self.input.new_tail(offset, max_line_bytes)
        self.forced = []
        self.last_bytes = b""
        self.head_len, self.head = 0, ""
        self.at_eof_since = None


def same_file(path: str, key: Key, pos: int, last_bytes: bytes) -> bool:
    """Whether ``path`` is the file we read: same inode and the same bytes before ``pos`` (an
    inode freed by a deletion can carry a new file a moment later)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key or st.st_size < pos:
            return False
        n = len(last_bytes)
        return not n or os.pread(fd, n, pos - n) == last_bytes
    finally:
        os.close(fd)


def find_by_inode(directory: str, key: Key) -> str | None:
    """The path of ``key`` in ``directory`` (a file renamed by rotation stays in its directory)."""
    try:
        with os.scandir(directory) as it:
            for e in it:
                try:
                    if e.inode() == key[1] and e.stat(follow_symlinks=False).st_dev == key[0]:
                        return e.path
                except OSError:
                    continue
    except OSError:
        return None
    return None


def find_copy(path: str, head_len: int, head: str, pos: int, tail: bytes) -> str | None:
    """After a copytruncate: a sibling of ``path`` (``app.log.1``, ``app.log-2024...``) that
    holds the same first bytes and the same bytes before ``pos``, and more. Its bytes past
    ``pos`` were written before the truncation and never read from ``path``."""
    directory, name = os.path.split(path)
    stem = name.split(".", 1)[0]
    try:
        with os.scandir(directory) as it:
            entries = [e for e in it if e.name != name and e.name.startswith(stem)]
    except OSError:
        return None
    for e in entries:
        if e.name.endswith((".gz", ".zst", ".xz", ".bz2")):
            continue
        try:
            st = e.stat()
            if st.st_size <= pos:
                continue
            fd = os.open(e.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not identity.head_matches(fd, head_len, head):
                continue
            if tail and os.pread(fd, len(tail), pos - len(tail)) != tail:
                continue
            return e.path
        finally:
            os.close(fd)
    return None
