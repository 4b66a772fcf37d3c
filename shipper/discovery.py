"""Which files to follow: globs with ``**``, excludes, inotify events and a slow rescan.

The matching is pure (``Matcher``); ``Watcher`` is a thin shell around watchdog's inotify
observer that hands changed paths to the asyncio loop, coalesced (a burst of writes to one file
costs one wake-up, not one per write). inotify misses things (a full event queue, network
filesystems, directories that appear later), so the daemon also rescans every
``rescan_interval_s``; without inotify at all the rescan and per-file polling carry everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from shipper.config import COMPRESSED_SUFFIXES, InputConfig

log = logging.getLogger(__name__)

_GLOB_CHARS = re.compile(r"[*?\[]")


def _component(part: str) -> str:
    """One path component of a glob as a regex: ``*`` and ``?`` never cross a ``/``."""
    out: list[str] = []
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = part[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex equivalent to ``pattern`` (``**`` spans any number of directories)."""
    parts = pattern.split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_component(part) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z")


def base_dir(pattern: str) -> tuple[Path, bool]:
    """The deepest directory without glob characters, and whether matches may lie below its
    immediate children (so the watch and the scan must be recursive)."""
    parts = pattern.split("/")
    fixed: list[str] = []
    for part in parts[:-1]:
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    rest = parts[len(fixed) :]
    return Path("/".join(fixed) or "/"), len(rest) > 1


class Matcher:
    """Does a path belong to an input? (globs, excludes, compressed rotations)"""

    def __init__(self, inp: InputConfig) -> None:
        self.input = inp
        self.patterns = [glob_regex(p) for p in inp.paths]
        self.full_excludes = [glob_regex(e) for e in inp.exclude if "/" in e]
        self.name_excludes = [glob_regex(e) for e in inp.exclude if "/" not in e]
        self.roots = [base_dir(p) for p in inp.paths]

    def matches(self, path: str) -> bool:
        """Whether ``path`` (absolute) is one of this input's files."""
        if not any(p.match(path) for p in self.patterns):
            return False
        name = path.rsplit("/", 1)[-1]
        if self.input.exclude_compressed and name.endswith(COMPRESSED_SUFFIXES):
            return False
        if any(e.match(path) for e in self.full_excludes):
            return False
        return not any(e.match(name) for e in self.name_excludes)

    def scan(self, unreadable: dict[str, str] | None = None) -> Iterator[str]:
        """Every existing regular file that matches (symlinks to files included). Directories
        on the way that exist but cannot be listed go into ``unreadable`` (path → why): the
        files in them are not found, and someone should know."""
        seen: set[str] = set()
        for root, recursive in self.roots:
            for path in _walk(root, recursive, unreadable):
                if path not in seen and self.matches(path):
                    seen.add(path)
                    yield path


def _walk(root: Path, recursive: bool, unreadable: dict[str, str] | None) -> Iterator[str]:
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except FileNotFoundError:
            continue  # not there (yet): a glob may name a directory created later
        except OSError as exc:
            if unreadable is not None:
                unreadable[d] = exc.strerror or str(exc)
            continue
        for e in entries:
            try:
                if e.is_file():
                    yield e.path
                elif recursive and e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
            except OSError:
                continue


class Watcher:
    """inotify via watchdog: calls ``on_paths({path: structural})`` on the loop, coalesced.
    ``structural`` is true for creations, renames and deletions (false: only written to)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_paths: Callable[[dict[str, bool]], None]
    ) -> None:
        self.loop = loop
        self.on_paths = on_paths
        self._lock = threading.Lock()
        self._pending: dict[str, bool] = {}
        self._scheduled = False
        self._observer: object | None = None
        self._watched: dict[str, object] = {}
        self.failed = ""

    def start(self) -> None:
        """Start the observer thread; on failure (no inotify) ``failed`` says why."""
        try:
            from watchdog.observers.inotify import InotifyObserver  # noqa: PLC0415 (watchdog imports inotify only when the observer starts, and may fail)

            observer = InotifyObserver()
            observer.daemon = True
            observer.start()
        except Exception as exc:
            self.failed = f"inotify unavailable ({exc}); polling instead"
            log.warning("%s", self.failed)
            return
        self._observer = observer

    def watch(self, roots: list[tuple[Path, bool]]) -> None:
        """Make sure every existing root is watched (idempotent; call after rescans)."""
        if self._observer is None:
            return
        from watchdog.events import (  # noqa: PLC0415 (watchdog imports inotify only when the observer starts, and may fail)
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEventHandler,
        )

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: object) -> None:
                src = getattr(event, "src_path", "")
                dest = getattr(event, "dest_path", "")
                structural = getattr(event, "event_type", "") != "modified" or bool(
                    getattr(event, "is_directory", False)
                )
                watcher._add(os.fsdecode(src), os.fsdecode(dest) if dest else "", structural)

        wanted: dict[str, bool] = {}
        for root, recursive in roots:
            key = str(root)
            wanted[key] = wanted.get(key, False) or recursive
        for key, recursive in wanted.items():
            tag = f"{key}|{int(recursive)}"
            if tag in self._watched or not os.path.isdir(key):
                continue
            try:
                w = self._observer.schedule(  # type: ignore[attr-defined]
                    Handler(),
                    key,
                    recursive=recursive,
                    event_filter=[
                        FileCreatedEvent,
                        FileModifiedEvent,
                        FileMovedEvent,
                        FileDeletedEvent,
                        DirCreatedEvent,
                        DirMovedEvent,
                        DirDeletedEvent,
                    ],
                )
            except OSError as exc:
                log.warning("cannot watch %s (%s): the rescan covers it", key, exc)
                continue
            self._watched[tag] = w

    def _add(self, src: str, dest: str, structural: bool) -> None:
        with self._lock:
            self._pending[src] = self._pending.get(src, False) or structural
            if dest:
                self._pending[dest] = True
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # loop closed: shutting down
            self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            paths, self._pending = self._pending, {}
            self._scheduled = False
        self.on_paths(paths)

    def stop(self) -> None:
        """Stop the observer thread."""
        if self._observer is not None:
            self._observer.stop()  # type: ignore[attr-defined]
            self._observer.join(5)  # type: ignore[attr-defined]
            self._observer = None

    @property
    def active(self) -> bool:
        """Whether inotify events arrive."""
        return self._observer is not None
