"""Bytes of one file in, events with their byte ranges out. Pure: no I/O, no clock of its own.

A ``Tail`` chains ``parsers.lines.LineSplitter`` (lines, CRLF, invalid UTF-8, over-long lines;
``Utf16LineSplitter`` for UTF-16 files, which ``encoding="auto"`` recognises by the byte order
mark at their start) and, when configured, ``parsers.multiline.Multiline`` (stack traces) or
``shipper.container.ContainerJoiner`` (CRI and docker lines cut into fragments), and keeps the
file range ``[offset, end)`` of every event it emits. ``emitted_end`` (the end of the last
event) is the only offset that may ever be checkpointed: a partial last line, a held multiline
event or a container line still missing fragments lies past it.

Timers (a partial line held too long, a multiline event with no new line, the end of a rotated
file) cut events where the text alone would not. Such a cut is reported as a *forced boundary*;
the caller persists it, and a ``Tail`` that re-reads the same bytes after a crash is given the
boundaries and cuts at exactly the same offsets, so the re-sent events match the ones the
collector may already hold, byte for byte.

A line still over ``max_line_bytes`` when a timer cuts it was truncated: its head is an event
(counted in ``truncated_lines``) and the rest of it, up to its end of line, is dropped as the
rest of any over-long line is, never an event of its own. The offset where such a rest begins
is a *skip point* (``skip_points``); a ``Tail`` started there is told so (``skip``) and drops
the same bytes, as a re-read from before it does by cutting at the forced boundary.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from typing import Literal, NamedTuple

from parsers.lines import Line, LineRun, LineSplitter, Utf16LineSplitter, sniff_encoding
from parsers.multiline import Multiline, MultilineConfig
from shipper.container import ContainerJoiner


class Event(NamedTuple):
    """One log event: its text and the file bytes ``[offset, end)`` it came from."""

    offset: int
    end: int
    text: str


# Events column-wise: their offsets, ends and texts.
Columns = tuple[list[int], list[int], list[str]]


class Tail:
    """Incremental event assembly for one file from ``offset`` on."""

    def __init__(
        self,
        offset: int,
        *,
        max_line_bytes: int,
        multiline: MultilineConfig | None = None,
        container: str | None = None,
        encoding: str = "utf-8",
        forced: Iterable[int] = (),
        skip: bool = False,
    ) -> None:
        if multiline is not None and container is not None:
            raise ValueError("a Tail joins container fragments or multiline events, not both")
        # Container fragments may cut a UTF-8 character in two: keep the bytes until joined.
        errors: Literal["replace", "surrogateescape"] = (
            "surrogateescape" if container is not None else "replace"
        )
        # "auto" from the start of a file: its first bytes decide (a UTF-16 byte order mark).
        self._max_line_bytes = max_line_bytes
        self._errors: Literal["replace", "surrogateescape"] = errors
        self._sniff = encoding == "auto" and offset == 0 and container is None
        # UTF-16: big-endian or not (None: the bytes are UTF-8).
        self._utf16_be: bool | None = (
            encoding == "utf-16be"
            if encoding in ("utf-16le", "utf-16be") and container is None
            else None
        )
        self.splitter: LineSplitter | Utf16LineSplitter = (
            Utf16LineSplitter(
                offset, big_endian=encoding == "utf-16be", max_line_bytes=max_line_bytes
            )
            if encoding in ("utf-16le", "utf-16be") and container is None
            else LineSplitter(offset, max_line_bytes=max_line_bytes, errors=errors)
        )
        self.multiline = Multiline(multiline) if multiline is not None else None
        self.container = (
            ContainerJoiner(container, max_bytes=max_line_bytes) if container is not None else None
        )
        self._held: deque[tuple[int, int]] = deque()  # (offset, end) of lines in the grouper
        self.forced = sorted(b for b in set(forced) if b > offset)
        self.emitted_end = offset
        self.partial_since_ns: int | None = None  # last time the partial line grew
        # Dropping the rest of an over-long line cut by a timer (see the module docstring).
        self.skipping = skip
        self.skip_points: list[int] = [offset] if skip else []
        self._skip_carry = b""  # UTF-16: the first byte of a code unit, while skipping
        # Counts of the splitters a skip replaced, and what ``take_counts`` has handed out.
        self._base_counts = (0, 0, 0)
        self._taken = (0, 0, 0)

    @property
    def next_offset(self) -> int:
        """The file offset of the next byte to feed."""
        return self.splitter.next_offset

    def _counts(self) -> tuple[int, int, int]:
        sp, (lines, truncated, invalid) = self.splitter, self._base_counts
        return lines + sp.lines, truncated + sp.truncated_lines, invalid + sp.invalid_utf8_lines

    @property
    def lines(self) -> int:
        """Lines split so far (flushed partial lines included)."""
        return self._counts()[0]

    @property
    def truncated_lines(self) -> int:
        """Lines cut at ``max_line_bytes`` so far, whether by their end or by a timer."""
        return self._counts()[1]

    @property
    def invalid_utf8_lines(self) -> int:
        """Lines whose invalid bytes were replaced so far."""
        return self._counts()[2]

    def take_counts(self) -> tuple[int, int, int]:
        """``(lines, truncated_lines, invalid_utf8_lines)`` added since the last call: what a
        caller adds to its own counters after each ``feed`` or flush."""
        now, before = self._counts(), self._taken
        self._taken = now
        return now[0] - before[0], now[1] - before[1], now[2] - before[2]

    @property
    def grouping(self) -> bool:
        """Whether events can span several lines (multiline, or container fragments)."""
        return self.multiline is not None or self.container is not None

    @property
    def pending(self) -> bool:
        """Whether bytes were read that are not yet in an emitted event."""
        return self.emitted_end != self.splitter.next_offset

    def room(self) -> int | None:
        """How many bytes may be fed before the next forced boundary (``None``: any)."""
        if not self.forced:
            return None
        return self.forced[0] - self.splitter.next_offset

    def feed(self, data: bytes, now_ns: int) -> list[Event]:
        """Take the next bytes of the file (at most ``room()``); return completed events."""
        offsets, ends, texts = self.feed_columns(data, now_ns)
        return [Event(o, e, t) for o, e, t in zip(offsets, ends, texts, strict=True)]

    def feed_parts(self, data: bytes, now_ns: int) -> list[Columns | LineRun]:
        """``feed``, with the events in parts, in order: ``Columns`` of events, and a
        ``LineRun`` for the whole lines of the chunk when they need no repair (then each is an
        event of its own: no multiline grouping, UTF-8, no skip in progress). The zero-copy
        path: a run is the file's bytes as read. Expanded, the parts are the events ``feed``
        gives for the same bytes, and the counters move the same way."""
        if self.grouping or self._utf16_be is not None or self._sniff or self.skipping:
            cols = self.feed_columns(data, now_ns)
            return [cols] if cols[0] else []
        splitter = self.splitter
        assert isinstance(splitter, LineSplitter)
        texts, offsets, ends, run = splitter.feed_run(data)
        parts: list[Columns | LineRun] = []
        if texts:
            parts.append((offsets, ends, texts))
            self.emitted_end = ends[-1]
        if run is not None:
            parts.append(run)
            self.emitted_end = run.end
        self._after_feed(now_ns, parts)
        return parts

    def _after_feed(self, now_ns: int, parts: list[Columns | LineRun]) -> None:
        """The partial line's clock, and a forced boundary reached (see ``feed_columns``)."""
        self.partial_since_ns = now_ns if self.splitter.pending_bytes else None
        if self.forced and self.splitter.next_offset >= self.forced[0]:
            self.forced.pop(0)
            events = self._flush_all(now_ns)
            if events:
                parts.append(
                    ([e.offset for e in events], [e.end for e in events], [e.text for e in events])
                )

    def feed_columns(self, data: bytes, now_ns: int) -> tuple[list[int], list[int], list[str]]:
        """``feed``, column-wise: the offsets, ends and texts of the completed events (no
        per-line objects on the common path: lines without multiline grouping)."""
        if self._sniff and data:
            self._sniff = False
            encoding = sniff_encoding(data[:2])
            if encoding != "utf-8":
                self._utf16_be = encoding == "utf-16be"
                self.splitter = Utf16LineSplitter(
                    self.splitter.next_offset,
                    big_endian=encoding == "utf-16be",
                    max_line_bytes=self._max_line_bytes,
                )
        if self.skipping:
            data = self._skip(data)
            if not data:
                return [], [], []
        if self.grouping:
            out = self._group(self.splitter.feed(data), now_ns)
            offsets = [e.offset for e in out]
            ends = [e.end for e in out]
            texts = [e.text for e in out]
        else:
            texts, offsets, ends = self.splitter.feed_columns(data)
            if ends:
                self.emitted_end = ends[-1]
        if self.splitter.pending_bytes:
            self.partial_since_ns = now_ns
        else:
            self.partial_since_ns = None
        if self.forced and self.splitter.next_offset >= self.forced[0]:
            # A boundary from before a restart: cut here, as the first run did.
            self.forced.pop(0)
            for ev in self._flush_all(now_ns):
                offsets.append(ev.offset)
                ends.append(ev.end)
                texts.append(ev.text)
        return offsets, ends, texts

    def flush(self, now_ns: int) -> list[Event]:
        """Emit everything held (partial line included): end of a rotated file, shutdown, or
        the partial-line timeout. The caller records ``emitted_end`` as a forced boundary."""
        return self._flush_all(now_ns)

    def flush_due(self, now_ns: int, partial_timeout_ns: int) -> list[Event]:
        """Timer tick: emit a partial line that stopped growing ``partial_timeout_ns`` ago
        (and the event it belongs to), or a multiline event past its flush timeout."""
        if (
            self.partial_since_ns is not None
            and now_ns - self.partial_since_ns >= partial_timeout_ns
        ):
            return self._flush_all(now_ns)
        if self.multiline is not None and self._held:
            texts = self.multiline.flush_due(now_ns)
            return self._events(texts)
        if self.container is not None:
            return self._pieces(self.container.flush_due(now_ns))
        return []

    def next_due_ns(self, partial_timeout_ns: int) -> int | None:
        """The clock value at which ``flush_due`` will have something to do (``None``: never)."""
        due: list[int] = []
        if self.partial_since_ns is not None:
            due.append(self.partial_since_ns + partial_timeout_ns)
        if self.multiline is not None and self._held:
            since = self.multiline.pending_since
            if since is not None:
                # pending_since is the first line's time; the timeout runs from the last line,
                # so this is early, never late: flush_due then simply returns nothing.
                due.append(since + self.multiline.config.flush_timeout_ns)
        if self.container is not None:
            joined = self.container.next_due_ns()
            if joined is not None:
                due.append(joined)
        return min(due) if due else None

    def add_forced(self, boundary: int) -> None:
        """Remember a boundary (used when the same bytes are fed again after a reset)."""
        if boundary > self.splitter.next_offset:
            bisect.insort(self.forced, boundary)

    def _skip(self, data: bytes) -> bytes:
        """Drop ``data`` up to the end of the over-long line being skipped (all of it if the
        line goes on); return what follows, for the next line."""
        base = self.splitter.next_offset
        big_endian = self._utf16_be
        if big_endian is not None:
            # U+000A at an even file offset; a code unit may be split between two reads.
            term = b"\x00\n" if big_endian else b"\n\x00"
            buf = self._skip_carry + data
            start = base - len(self._skip_carry)  # the file offset of buf[0]
            p = buf.find(term)
            while p >= 0 and (start + p) % 2:
                p = buf.find(term, p + 1)
            end = p + 2 - len(self._skip_carry) if p >= 0 else -1
            self._skip_carry = b"" if p >= 0 or (start + len(buf)) % 2 == 0 else buf[-1:]
        else:
            p = data.find(b"\n")
            end = p + 1 if p >= 0 else -1
        consumed = len(data) if end < 0 else end
        offset = base + consumed
        self._base_counts = self._counts()
        self.splitter = (
            LineSplitter(offset, max_line_bytes=self._max_line_bytes, errors=self._errors)
            if big_endian is None
            else Utf16LineSplitter(
                offset, big_endian=big_endian, max_line_bytes=self._max_line_bytes
            )
        )
        if end >= 0:
            self.skipping = False
            self.emitted_end = offset  # nothing is held: the flush that began this emptied all
        return data[consumed:]

    def _flush_all(self, now_ns: int) -> list[Event]:
        truncated = self.splitter.truncated_lines
        lines = self.splitter.flush()
        if self.splitter.truncated_lines > truncated:
            # Cut while over the limit: the rest of this line is dropped, not a line of its own.
            self.skipping = True
            self.skip_points.append(self.splitter.next_offset)
        self.partial_since_ns = None
        out = self._group(lines, now_ns)
        if self.multiline is not None:
            out += self._events(self.multiline.flush())
        if self.container is not None:
            out += self._pieces(self.container.flush())
        return out

    def _group(self, lines: list[Line], now_ns: int) -> list[Event]:
        if self.container is not None:
            return self._pieces(self.container.feed(lines, now_ns))
        if self.multiline is None:
            out = [Event(ln.offset, ln.offset + ln.size, ln.text) for ln in lines]
            if out:
                self.emitted_end = out[-1].end
            return out
        texts: list[str] = []
        for ln in lines:
            self._held.append((ln.offset, ln.offset + ln.size))
            texts += self.multiline.feed(ln.text, now_ns)
        return self._events(texts)

    def _pieces(self, pieces: list[tuple[int, int, str]]) -> list[Event]:
        out = [Event(o, e, t) for o, e, t in pieces]
        if out:
            self.emitted_end = out[-1].end
        return out

    def _events(self, texts: list[str]) -> list[Event]:
        out: list[Event] = []
        held = self._held
        for text in texts:
            count = text.count("\n") + 1
            offset, end = held.popleft()
            for _ in range(count - 1):
                end = held.popleft()[1]
            out.append(Event(offset, end, text))
        if out:
            self.emitted_end = out[-1].end
        return out
