"""Reading followed files: a chunk at a time, through each file's ``Tail`` into the ``Intake``,
with truncation (copytruncate) and rotated copies handled on the way, and the timers that
belong to reading: partial lines held too long, detached files to finish, files waiting for a
descriptor slot.

The ``Reader`` owns its work: the followers that may have bytes to read (``dirty``, filled by
``mark`` from path events, rescans, polls and timers), the tails holding bytes not yet in an
event (``pending``: the partial-line timer's index), and the task that reads while there is
room downstream. A file's life-cycle moves go through ``FileTable`` (``shipper.lifecycle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Final

from shipper import identity
from shipper.checkpointing import Checkpointer
from shipper.config import ShipperConfig
from shipper.files import FileTable
from shipper.follower import Follower, find_copy
from shipper.intake import Intake
from shipper.lifecycle import READABLE, FileState
from shipper.status import Stats
from shipper.status_report import StatusFile
from shipper.tail import Event
from shipper.timers import AT_ONCE

log = logging.getLogger(__name__)

# While reading is paused for room, path events are still handled this often.
_PAUSED_EVENTS_S: Final = 0.25
# Detached files get no inotify events (renamed or deleted): they are read again this often
# until finished, and finished ones released once acknowledged.
_DETACHED_POLL_S: Final = 0.5
# A file that found no descriptor slot tries again this much later.
_WAITING_RETRY_S: Final = 0.2


class Reader:
    """Reads followed files into the intake (see the module docstring)."""

    def __init__(
        self,
        cfg: ShipperConfig,
        files: FileTable,
        intake: Intake,
        stats: Stats,
        checkpointer: Checkpointer,
        status: StatusFile,
        *,
        kick: Callable[[], None],
        housekeeping: Callable[[], None],
    ) -> None:
        self.cfg = cfg
        self.files = files
        self.intake = intake
        self.stats = stats
        self.checkpointer = checkpointer
        self.status = status
        self.kick = kick  # wake the timers: a partial line's clock started
        self.housekeeping = housekeeping  # before each pass: path events (``shipper.scanner``)
        self.dirty: dict[Follower, None] = {}  # followers that may have bytes to read
        self.pending: dict[Follower, None] = {}  # tails holding bytes not yet in an event
        self.wake = asyncio.Event()
        self._finish_at = AT_ONCE  # the detached files' timer
        self._retry_at: float | None = None  # the waiting files' timer

    def __repr__(self) -> str:
        return f"<Reader {len(self.dirty)} to read, {len(self.pending)} holding partial lines>"

    def mark(self, f: Follower) -> None:
        """``f`` may have bytes to read (the task reads it at its next pass: ``wake`` it)."""
        self.dirty[f] = None

    def forget(self, f: Follower) -> None:
        """``f`` is no longer followed."""
        self.dirty.pop(f, None)
        self.pending.pop(f, None)

    # -- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Read dirty files while there is room downstream; sleep when there is nothing to
        read."""
        intake = self.intake
        while True:
            self.housekeeping()
            if not self.dirty:
                if intake.batcher.pending:
                    self.kick()  # caught up: the ticker may cut early (``Intake.linger``)
                self.wake.clear()
                await self.wake.wait()
                continue
            if not intake.room():
                # Paused for room; renames and deletions are still handled while it lasts.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_PAUSED_EVENTS_S):
                        await intake.wait_room()
                continue
            todo = list(self.dirty)
            self.dirty.clear()
            for i, f in enumerate(todo):
                if not intake.room():
                    for g in todo[i:]:
                        self.dirty[g] = None
                    break
                if f.state not in READABLE:
                    continue  # finished, paused for a reload, or released
                try:
                    more = self.read_one(f)
                except OSError as exc:
                    log.warning("reading %s: %s", f.path, exc)
                    more = False
                if more:
                    self.dirty[f] = None
            await asyncio.sleep(0)

    # -- one file ---------------------------------------------------------------------------

    def read_one(self, f: Follower) -> bool:
        """Read one chunk of ``f``; return whether more is waiting."""
        before = f.size  # the last size seen through the old descriptor (open() resets it)
        if not self.files.ensure_open(f):
            if f.state is FileState.WAITING and self._retry_at is None:
                self._retry_at = time.monotonic() + _WAITING_RETRY_S
                self.kick()
            return False
        size, deleted = f.stat_size()
        if deleted and f.state is FileState.FOLLOWING:
            self.files.detach(f)
            log.info("%s was deleted: reading it to its end", f.path)
        pos = f.pos
        if size < pos:
            self._truncated(f, before, replaced=False)
            return True
        if size == pos:
            if f.at_eof_since is None:
                f.at_eof_since = time.monotonic()
            return False
        # Truncated and rewritten past our position (copytruncate while we lag, or a rewrite):
        # the bytes before the position changed. One pread of at most 1 KiB per chunk.
        if not f.tail_intact():
            self._truncated(f, before, replaced=True)
            return True
        f.at_eof_since = None
        n = min(self.cfg.read_buffer_bytes, size - pos)
        room = f.tail.room()
        if room is not None:
            n = min(n, room)
        data = f.read(n)
        if not data:
            return False
        self.stats.bytes_read += len(data)
        self.intake.parts(f.input, f.track, f.source, f.tail.feed_parts(data, time.monotonic_ns()))
        self._count_lines(f)
        if f.tail.pending:
            if f not in self.pending:
                self.pending[f] = None
                self.kick()
        else:
            self.pending.pop(f, None)
        self.status.mark()
        return f.pos < size

    def _count_lines(self, f: Follower) -> None:
        lines, truncated, invalid = f.tail.take_counts()
        self.stats.lines_read += lines
        self.stats.truncated_lines += truncated
        self.stats.invalid_utf8_lines += invalid

    def flush_tail(self, f: Follower, events: list[Event]) -> None:
        """Emit events cut by a timer and remember the cut (see ``shipper.tail``)."""
        self._count_lines(f)  # a line cut by the timer is a line, maybe a truncated one
        if events:
            self.intake.events(f.input, f.track, f.source, events)
            f.forced.append(f.tail.emitted_end)
            self.stats.forced_cuts += 1
            self.checkpointer.mark_urgent()
        if not f.tail.pending:
            self.pending.pop(f, None)

    def flush_at_shutdown(self) -> None:
        """Ship the partial last lines of files read to their end. A file we are behind on,
        or a multiline event still open (a trace being written), or a container line still
        missing fragments, lies past the checkpoint and is re-read whole at the next start
        instead of being cut in two here."""
        now_ns = time.monotonic_ns()
        for f in list(self.pending):
            if f.fd is not None and f.pos >= f.size and not f.tail.grouping:
                self.flush_tail(f, f.tail.flush(now_ns))

    def _truncated(self, f: Follower, size_before: int, replaced: bool) -> None:
        """The file shrank (copytruncate) or its bytes changed under us: recover the unread
        bytes from the rotated copy if there is one (else ship what was read and count the
        rest as dropped), then restart at 0 as a new file."""
        self.stats.truncations += 1
        f.rotations += 1
        old_pos = f.pos
        old_track = f.track
        copy = find_copy(f.path, f.head_len, f.head, old_pos, f.last_bytes) if f.head_len else None
        copier = self._follow_copy(copy, f) if copy is not None else None
        if copier is None:
            self.flush_tail(f, f.tail.flush(time.monotonic_ns()))
            if not replaced and size_before > old_pos:
                self.stats.dropped_bytes_truncated += size_before - old_pos
                log.warning(
                    "%s was truncated with %d bytes unread and no rotated copy holds them",
                    f.path,
                    size_before - old_pos,
                )
        self.files.unregister_id(f)
        self.pending.pop(f, None)
        f.reset(identity.new_file_id(*f.key), 0, self.cfg.max_line_bytes)
        self.files.register_id(f)
        if copier is not None:
            self.files.register_id(copier)
            if copier.tail.pending:
                self.pending[copier] = None
        self.files.forget_track(old_track)
        self.checkpointer.mark()
        self.status.mark()
        log.info(
            "%s was %s: reading it from the start as file id %s",
            f.path,
            "rewritten" if replaced else "truncated",
            f.file_id,
        )

    def _follow_copy(self, path: str, f: Follower) -> Follower | None:
        """Continue ``f`` (same file id, same position, same partial line) in its rotated copy."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino)
        if key in self.files.followers:
            return None  # the copy is followed on its own (its glob matches)
        copier = Follower(
            key,
            path,
            f.source,
            f.input,
            f.track,
            f.tail,
            head_len=f.head_len,
            head=f.head,
            forced=f.forced,
            size=st.st_size,
            last_bytes=f.last_bytes,
        )
        self.files.add_copy(copier)
        self.dirty[copier] = None
        self.stats.copies_followed += 1
        log.info(
            "%s: reading %d unread bytes from the rotated copy %s",
            f.path,
            st.st_size - f.pos,
            path,
        )
        return copier

    # -- timers (rows of the daemon's table) --------------------------------------------------

    def partial_due(self) -> float | None:
        """When a held partial line (or multiline event, or container line) is due."""
        partial_ns = int(self.cfg.partial_line_timeout_s * 1e9)
        due = [t for t in (f.tail.next_due_ns(partial_ns) for f in self.pending) if t is not None]
        return min(due) / 1e9 if due else None

    def flush_partial(self, now: float) -> None:
        """Emit what was held too long."""
        now_ns = time.monotonic_ns()
        partial_ns = int(self.cfg.partial_line_timeout_s * 1e9)
        for f in list(self.pending):
            due = f.tail.next_due_ns(partial_ns)
            if due is not None and due <= now_ns:
                self.flush_tail(f, f.tail.flush_due(now_ns, partial_ns))

    def finish_due(self) -> float | None:
        """When detached files are looked at again (``None``: there are none)."""
        if not self.files.in_state(FileState.DETACHED, FileState.FINISHED):
            return None
        return self._finish_at

    def finish_detached(self, now: float) -> None:
        """Release finished files whose spans are all acknowledged; finish detached files
        read to their end once the grace period is over; read the others again."""
        self._finish_at = now + _DETACHED_POLL_S
        now_ns = time.monotonic_ns()
        grace = self.cfg.rotated_grace_s
        files = self.files
        for f in files.in_state(FileState.DETACHED, FileState.FINISHED):
            if f.state is FileState.FINISHED:
                if not f.track.busy and not self.intake.holds(f.file_id):
                    files.release(f)
                    files.forget_track(f.track)
                    self.checkpointer.mark()
                    self.status.mark()
                continue
            if f.at_eof_since is not None and now - f.at_eof_since >= grace and f.pos >= f.size:
                self.flush_tail(f, f.tail.flush(now_ns))
                files.finish(f)
                self.status.mark()
                log.info("finished %s (%d bytes)", f.path, f.pos)
            else:
                self.dirty[f] = None
                self.wake.set()

    def waiting_due(self) -> float | None:
        """When files that found no descriptor slot try again."""
        return self._retry_at

    def retry_waiting(self, now: float) -> None:
        """Read the waiting files again (each waits again if there is still no slot)."""
        self._retry_at = None
        waiting = self.files.in_state(FileState.WAITING)
        for f in waiting:
            self.dirty[f] = None
        if waiting:
            self.wake.set()
