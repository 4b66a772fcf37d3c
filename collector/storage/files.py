"""The open segment files of a store: an LRU of file descriptors shared by every partition.

A segment does not hold a descriptor of its own: it borrows one from here for each read (and
the committer borrows one for a turn's writes). So a topic costs no descriptor while nobody
reads or writes it, and the store needs at most ``capacity`` whatever the number of topics,
partitions and segments. Without this every topic held two for good, and a few hundred topics
ran the collector out of them (it then could not even reopen its own data).

A borrowed descriptor is never closed under its borrower: when one is evicted while in use, it
leaves the pool at once and is closed when the last borrower gives it back. So the number open
is at most ``capacity`` plus those in use past it (reads in progress, one committer turn).

When the process is out of descriptors anyway (EMFILE, ENFILE: sockets took them), opening
closes every idle descriptor of the pool and tries once more before giving up.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

# What ``Store`` uses unless told (``[limits] max_open_segment_files`` in collector.toml).
DEFAULT_CAPACITY: Final = 256

_READ: Final = os.O_RDONLY | os.O_CLOEXEC
_WRITE: Final = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
_OUT_OF_FDS: Final = frozenset({errno.EMFILE, errno.ENFILE})


class Handle:
    """One open descriptor of one file, lent to whoever uses the file at the moment."""

    __slots__ = ("fd", "key", "users")

    def __init__(self, key: tuple[str, bool], fd: int) -> None:
        self.key = key
        self.fd = fd
        self.users = 0

    def __repr__(self) -> str:
        path, write = self.key
        return f"<Handle {path} {'write' if write else 'read'} fd={self.fd} users={self.users}>"


class OpenFiles:
    """An LRU of open segment files (thread-safe)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._pooled: OrderedDict[tuple[str, bool], Handle] = OrderedDict()
        self._evicted_in_use: set[Handle] = set()

    def __repr__(self) -> str:
        return f"<OpenFiles {self.open_count()}/{self.capacity}>"

    def open_count(self) -> int:
        """Descriptors open now (in the pool, and evicted but still in use)."""
        with self._lock:
            return len(self._pooled) + len(self._evicted_in_use)

    def borrow(self, path: Path, *, write: bool = False) -> Handle:
        """A descriptor of ``path`` (read-only, or append-only with ``write``), kept open until
        ``give_back``. Raises ``OSError`` as ``os.open`` does."""
        key = (str(path), write)
        with self._lock:
            handle = self._pooled.get(key)
            if handle is not None:
                self._pooled.move_to_end(key)
                handle.users += 1
                return handle
        # Open outside the lock: a slow open (a cold dentry cache) holds up no other reader.
        fd = self._open(key)
        with self._lock:
            handle = self._pooled.get(key)
            if handle is not None:  # another thread opened it meanwhile: use theirs
                os.close(fd)
                self._pooled.move_to_end(key)
            else:
                handle = self._pooled[key] = Handle(key, fd)
            handle.users += 1
            self._trim(self.capacity)
        return handle

    def give_back(self, handle: Handle) -> None:
        """End one ``borrow`` of ``handle``."""
        with self._lock:
            handle.users -= 1
            if handle.users == 0 and handle in self._evicted_in_use:
                self._evicted_in_use.discard(handle)
                os.close(handle.fd)

    @contextmanager
    def reading(self, path: Path) -> Iterator[int]:
        """``with files.reading(path) as fd:`` a read-only descriptor for the block."""
        handle = self.borrow(path)
        try:
            yield handle.fd
        finally:
            self.give_back(handle)

    def forget(self, path: Path) -> None:
        """``path`` is gone (deleted, or cut by recovery): close its descriptors (those in use
        once their borrowers give them back)."""
        with self._lock:
            for write in (False, True):
                handle = self._pooled.pop((str(path), write), None)
                if handle is not None:
                    self._retire(handle)

    def close(self) -> None:
        """Close every idle descriptor (those in use close when given back)."""
        with self._lock:
            self._trim(0)

    def _open(self, key: tuple[str, bool]) -> int:
        path, write = key
        flags = _WRITE if write else _READ
        try:
            return os.open(path, flags)
        except OSError as exc:
            if exc.errno not in _OUT_OF_FDS:
                raise
        with self._lock:  # out of descriptors: give back every idle one, then try once more
            self._trim(0)
        return os.open(path, flags)

    def _trim(self, keep: int) -> None:
        """Evict least recently used handles until at most ``keep`` are pooled (lock held)."""
        while len(self._pooled) > keep:
            _, handle = self._pooled.popitem(last=False)
            self._retire(handle)

    def _retire(self, handle: Handle) -> None:
        if handle.users:
            self._evicted_in_use.add(handle)
        else:
            os.close(handle.fd)
