"""Which files to follow, and which have changed: inotify path events (``Watcher``), the
periodic rescan that finds whatever the events missed, and, without inotify, polling the open
files for growth. What it finds it adopts into the ``FileTable`` and hands to the ``Reader``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from shipper.checkpointing import Checkpointer
from shipper.config import ShipperConfig
from shipper.discovery import Watcher
from shipper.files import FileTable
from shipper.lifecycle import FileState
from shipper.problems import Problems
from shipper.reader import Reader
from shipper.status_report import StatusFile

log = logging.getLogger(__name__)

# Without inotify: open files are polled for growth this often, backing off when idle.
_FALLBACK_POLL_S: Final = (0.25, 5.0)
# A new directory on the way to the globs is scanned this soon (its files may match).
_NEW_DIRECTORY_S: Final = 0.1


class Scanner:
    """Finds files and changes (see the module docstring)."""

    def __init__(
        self,
        cfg: ShipperConfig,
        files: FileTable,
        reader: Reader,
        problems: Problems,
        checkpointer: Checkpointer,
        status: StatusFile,
        *,
        kick: Callable[[], None],
    ) -> None:
        self.cfg = cfg
        self.files = files
        self.reader = reader
        self.problems = problems
        self.checkpointer = checkpointer
        self.status = status
        self.kick = kick  # wake the timers: the rescan moved earlier
        self.watcher: Watcher | None = None
        self.events: dict[str, bool] = {}  # path -> structural (created, renamed, deleted)
        self.next_rescan = 0.0
        self.next_poll = 0.0
        self.poll_s = _FALLBACK_POLL_S[0]

    def __repr__(self) -> str:
        how = "inotify" if self.inotify else "polling"
        return f"<Scanner {how}, {len(self.events)} path events waiting>"

    @property
    def inotify(self) -> bool:
        """Whether inotify events arrive."""
        return self.watcher is not None and self.watcher.active

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching (a warning when inotify is missing: then polling)."""
        self.watcher = Watcher(loop, self.on_paths)
        self.watcher.start()
        if self.watcher.failed:
            self.problems.warn(self.watcher.failed)
        self.watcher.watch(self._roots())
        self.next_rescan = time.monotonic() + self.cfg.rescan_interval_s

    def stop(self) -> None:
        """Stop watching."""
        if self.watcher is not None:
            self.watcher.stop()

    def _roots(self) -> list[tuple[Path, bool]]:
        return [root for inp in self.files.inputs for root in inp.matcher.roots]

    # -- path events ----------------------------------------------------------------------

    def on_paths(self, paths: dict[str, bool]) -> None:
        """The watcher's events (on the loop): a write to a followed file makes it dirty;
        anything else waits for ``handle_events`` (the reader calls it before each pass)."""
        for p, structural in paths.items():
            f = self.files.by_path.get(p)
            if f is not None and not structural:
                self.reader.mark(f)
            else:
                self.events[p] = self.events.get(p, False) or structural
        self.reader.wake.set()

    def handle_events(self) -> None:
        """Creations, renames and deletions since the last call."""
        if not self.events:
            return
        before = dict(self.files.unreadable)
        events, self.events = self.events, {}
        for p in events:
            f = self.files.by_path.get(p)
            if f is not None:
                self.reader.mark(f)
                if self.files.check_path(f) is not None:
                    self.adopt(p)
            elif os.path.isdir(p):
                self.next_rescan = min(self.next_rescan, time.monotonic() + _NEW_DIRECTORY_S)
                self.kick()
            else:
                self.adopt(p)
        self._note_unreadable(before)

    def adopt(self, path: str) -> None:
        """Follow ``path`` if an input takes it and it is not followed yet."""
        if path in self.files.by_path:
            return
        inp = self.files.input_for(path)
        if inp is None:
            return
        f = self.files.adopt(path, inp)
        if f is not None:
            log.debug("following %s (file id %s)", path, f.file_id)
            self.reader.mark(f)
            self.checkpointer.mark()
            self.status.mark()

    def _note_unreadable(self, before: dict[str, str]) -> None:
        """Report paths that cannot be read (status and a rate-limited log line)."""
        if self.files.unreadable != before:
            self.status.mark()
        self.problems.unreadable(self.files.unreadable)

    # -- the rescan -----------------------------------------------------------------------

    def rescan(self) -> None:
        """The slow, complete pass: new files, renames, deletions, growth inotify missed."""
        files = self.files
        before = dict(files.unreadable)
        files.unreadable.clear()  # this pass finds again whatever still cannot be read
        for inp in files.inputs:
            for path in inp.matcher.scan(files.unreadable):
                if path not in files.by_path:
                    self.adopt(path)
        self._note_unreadable(before)
        for f in list(files.followers.values()):
            if f.state not in (FileState.FOLLOWING, FileState.WAITING):
                continue
            try:
                st = os.stat(f.path)
            except OSError:
                st = None
            if st is None or (st.st_dev, st.st_ino) != f.key:
                self.reader.mark(f)
                replaced = files.check_path(f)
                if replaced is not None:
                    self.adopt(replaced)
            elif st.st_size != f.pos:
                self.reader.mark(f)
        if files.close_idle(self.cfg.close_inactive_s):
            self.status.mark()
        files.prune_dormant()
        if self.watcher is not None:
            self.watcher.watch(self._roots())
        self.reader.wake.set()

    def rescan_due(self) -> float:
        """When the next rescan is due (the timer table's row)."""
        return self.next_rescan

    def rescan_now(self, now: float) -> None:
        """The rescan timer's action."""
        self.next_rescan = now + self.cfg.rescan_interval_s
        self.rescan()

    # -- polling without inotify ----------------------------------------------------------

    def poll_due(self) -> float | None:
        """When open files are polled for growth (``None``: inotify works)."""
        if self.watcher is None or self.watcher.active:
            return None
        return self.next_poll

    def poll(self, now: float) -> None:
        """Mark the open files whose size is not their read position, and back off while
        none is."""
        found = False
        for f in self.files.followers.values():
            if f.fd is not None and f.state is not FileState.PAUSED:
                try:
                    if os.fstat(f.fd).st_size != f.pos:
                        self.reader.mark(f)
                        found = True
                except OSError:
                    continue
        lo, hi = _FALLBACK_POLL_S
        self.poll_s = lo if found else min(hi, self.poll_s * 2)
        self.next_poll = now + self.poll_s
        if found:
            self.reader.wake.set()
