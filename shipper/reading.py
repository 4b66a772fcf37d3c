"""Reading one file: a chunk at a time, through its ``Tail`` into records and batches, with
truncation (copytruncate) and rotated copies handled on the way. A mixin of ``Daemon``: it
shares the daemon's state and keeps the daemon module about scheduling only."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from itertools import accumulate
from typing import Any

from parsers import Record
from parsers.lines import LineRun
from parsers.raw import RawParser
from shipper import identity
from shipper.batcher import Batcher
from shipper.config import ShipperConfig
from shipper.delivery import Delivery
from shipper.files import FileTable
from shipper.follower import Follower, find_copy
from shipper.status import Stats
from shipper.tail import Event

log = logging.getLogger(__name__)

_PLUS_ONE = (1).__add__  # a line's bytes plus its newline


class ReadingMixin:
    """``Daemon``'s reading half (see the module docstring)."""

    cfg: ShipperConfig
    host: str
    files: FileTable
    stats: Stats
    batcher: Batcher
    delivery: Delivery
    dirty: dict[Follower, None]
    pending_tails: set[Follower]
    waiting_fd: set[Follower]
    kick: asyncio.Event
    ckpt_dirty: bool
    ckpt_urgent: bool
    status_dirty: bool

    def _note_detached(self, f: Follower) -> None:
        if f.detached:
            self.files.detached.add(f)
            self.kick.set()

    def _read_one(self, f: Follower) -> bool:
        """Read one chunk of ``f``; return whether more is waiting."""
        if f.finished:
            return False
        before = f.size  # the last size seen through the old descriptor (open() resets it)
        if not self.files.ensure_open(f):
            if self.files.followers.get(f.key) is f:
                self.waiting_fd.add(f)  # no descriptor free: retried by the ticker
            return False
        size = f.stat_size()
        self._note_detached(f)
        pos = f.pos
        if size < pos:
            self._truncated(f, before, replaced=False)
            return True
        if size == pos:
            if f.at_eof_since is None:
                f.at_eof_since = time.monotonic()
            f.verify_tail = True
            return False
        # Truncated and rewritten past our position (copytruncate while we lag, or a rewrite):
        # the bytes before the position changed. One pread of at most 1 KiB per chunk.
        if not f.tail_intact():
            self._truncated(f, before, replaced=True)
            return True
        f.verify_tail = False
        f.at_eof_since = None
        n = min(self.cfg.read_buffer_bytes, size - pos)
        room = f.tail.room()
        if room is not None:
            n = min(n, room)
        data = f.read(n)
        if not data:
            return False
        self.stats.bytes_read += len(data)
        for part in f.tail.feed_parts(data, time.monotonic_ns()):
            if isinstance(part, LineRun):
                self._emit_run(f, part)
            else:
                self._emit_columns(f, *part)
        self._count_lines(f)
        if f.tail.pending:
            if f not in self.pending_tails:
                self.pending_tails.add(f)
                self.kick.set()
        else:
            self.pending_tails.discard(f)
        self.status_dirty = True
        return f.pos < size

    def _count_lines(self, f: Follower) -> None:
        lines, truncated, invalid = f.tail.take_counts()
        self.stats.lines_read += lines
        self.stats.truncated_lines += truncated
        self.stats.invalid_utf8_lines += invalid

    def _flush_tail(self, f: Follower, events: list[Event]) -> None:
        """Emit events cut by a timer and remember the cut (see ``shipper.tail``)."""
        self._count_lines(f)  # a line cut by the timer is a line, maybe a truncated one
        if events:
            self._emit(f, events)
            f.forced.append(f.tail.emitted_end)
            self.stats.forced_cuts += 1
            self.ckpt_urgent = True
        if not f.tail.pending:
            self.pending_tails.discard(f)

    def _emit(self, f: Follower, events: list[Event]) -> None:
        if events:
            self._emit_columns(
                f, [e.offset for e in events], [e.end for e in events], [e.text for e in events]
            )

    def _emit_columns(
        self, f: Follower, offsets: list[int], ends: list[int], texts: list[str]
    ) -> None:
        """Records for events ``[offsets[i], ends[i])`` with ``texts[i]``, into the batcher:
        one clock read per chunk, no parser call for ``raw``."""
        if not texts:
            return
        inp = f.input
        parser = inp.parser
        extra = inp.fields
        now_ns = time.time_ns()
        topic = inp.topic
        fresh = topic not in self.batcher.pending
        host, source, file_id = self.host, f.source, f.file_id
        if isinstance(parser, RawParser):
            # Records only go to ``wharf.batch.build``, which never changes them: one shared
            # fields dict (empty, or the input's extra fields) serves them all.
            fields: dict[str, Any] = dict(extra) if extra else {}
            records = [
                Record(
                    ts=now_ns,
                    line=text,
                    host=host,
                    source=source,
                    fields=fields,
                    file_id=file_id,
                    offset=off,
                )
                for text, off in zip(texts, offsets, strict=True)
            ]
        else:
            records = []
            errors = 0
            for text, off in zip(texts, offsets, strict=True):
                parsed = parser.parse(text)
                if parsed.error is not None:
                    errors += 1
                records.append(
                    Record(
                        ts=parsed.ts if parsed.ts is not None else now_ns,
                        line=text,
                        host=host,
                        source=source,
                        fields={**parsed.fields, **extra} if extra else parsed.fields,
                        level=parsed.level,
                        file_id=file_id,
                        offset=off,
                    )
                )
            self.stats.parse_errors += errors
        sizes = [e - o for o, e in zip(offsets, ends, strict=True)]
        for cut in self.batcher.add_many(topic, f.track, records, ends, sizes, time.monotonic()):
            self.delivery.dispatch(cut)
        self.stats.events += len(records)
        if fresh:
            self.kick.set()

    def _emit_run(self, f: Follower, lines: LineRun) -> None:
        """A run of whole lines (``shipper.tail``) into the batcher as one part, the zero-copy
        path (``shipper.runs``); line by line for a parser without a block form."""
        inp = f.input
        if not inp.runs.takes_runs:
            texts = lines.blob.decode("utf-8").split("\n")
            ends = list(
                accumulate(map(_PLUS_ONE, map(len, lines.blob.split(b"\n"))), initial=lines.offset)
            )
            self._emit_columns(f, ends[:-1], ends[1:], texts)
            return
        topic = inp.topic
        fresh = topic not in self.batcher.pending
        run, errors = inp.runs.part(
            lines, now_ns=time.time_ns(), host=self.host, source=f.source, file_id=f.file_id
        )
        self.stats.parse_errors += errors
        for cut in self.batcher.add_run(topic, f.track, run, time.monotonic()):
            self.delivery.dispatch(cut)
        self.stats.events += lines.lines
        if fresh:
            self.kick.set()

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
            self._flush_tail(f, f.tail.flush(time.monotonic_ns()))
            if not replaced and size_before > old_pos:
                self.stats.dropped_bytes_truncated += size_before - old_pos
                log.warning(
                    "%s was truncated with %d bytes unread and no rotated copy holds them",
                    f.path,
                    size_before - old_pos,
                )
        if self.files.by_id.get(f.file_id) is f:
            del self.files.by_id[f.file_id]
        self.pending_tails.discard(f)
        f.reset(identity.new_file_id(*f.key), 0, self.cfg.max_line_bytes)
        self.files.register_id(f)
        if copier is not None:
            self.files.register_id(copier)
            if copier.tail.pending:
                self.pending_tails.add(copier)
        self.files.forget_track(old_track)
        self.ckpt_dirty = True
        self.status_dirty = True
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
        self.files.followers[key] = copier
        self.files.detach(copier)
        self.dirty[copier] = None
        self.stats.copies_followed += 1
        log.info(
            "%s: reading %d unread bytes from the rotated copy %s",
            f.path,
            st.st_size - f.pos,
            path,
        )
        return copier
