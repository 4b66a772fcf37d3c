"""Split a byte stream into text lines: the first step of tailing a file.

Pure and incremental, like h11's receive buffer: feed it the bytes read from a file (with the file
offset they start at) and it returns the complete lines found so far. It never does I/O and never
raises on any input bytes.

- ``\\n`` and ``\\r\\n`` end a line; neither is kept in the text. A lone ``\\r`` is text.
- Bytes that are not valid UTF-8 are replaced with U+FFFD (``errors="replace"``, the default) and
  each such line is counted in ``invalid_utf8_lines``. ``errors="surrogateescape"`` keeps the
  bytes recoverable (``text.encode("utf-8", "surrogateescape")`` gives them back): use it only
  when a stage follows that re-encodes, like ``parsers.partial.PartialMerger`` for CRI logs, whose
  16 KiB fragments can cut a multi-byte character in two.
- A line longer than ``max_line_bytes`` is truncated to that many bytes (at a character
  boundary) and counted in ``truncated_lines``; the rest of it is read and dropped until its end.
  Memory stays bounded by the limit and the file keeps moving: a huge line never stops a tail.
- A last line without its terminator is held (``pending_bytes``) until the terminator arrives or
  ``flush()`` is called (after a timeout, or at the end of a rotated file).

The output depends only on the bytes, never on how they were cut into chunks.

``Utf16LineSplitter`` does the same for UTF-16 files (``sniff_encoding`` reads the byte order
mark), with the offsets of the file's own bytes.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Final, Literal, NamedTuple

__all__ = ["DEFAULT_MAX_LINE_BYTES", "Line", "LineRun", "LineSplitter"]

# 1 MiB: far above any sane log line (Filebeat's max_bytes default is 10 MiB for a whole
# multiline event, Fluent Bit's Buffer_Max_Size 32 KiB, Vector's max_line_bytes 100 KiB) yet small
# enough that one runaway line (a minified JSON dump, binary garbage without newlines) cannot
# exhaust a shipper's memory or a batch's size limit.
DEFAULT_MAX_LINE_BYTES: Final = 1 << 20

_NL: Final = b"\n"
_CR: Final = b"\r"
_PLUS_ONE: Final = (1).__add__  # a line's length plus its terminator


class Line(NamedTuple):
    """One line read from a file.

    ``offset`` is the file offset of its first byte; ``size`` is how many bytes it took in the
    file, terminator included (the next line starts at ``offset + size``).
    """

    offset: int
    text: str
    size: int


class LineRun(NamedTuple):
    """Consecutive lines that need no repair, as the file holds them: ``blob`` is their bytes
    up to, not including, the newline that ends the last one (so ``blob.split(b"\\n")`` gives
    its ``lines`` lines), and the first starts at file offset ``offset``.

    "No repair": no ``\\r``, valid UTF-8, none longer than the limit. Each line's text is then
    its bytes decoded, and each starts right after the previous one's newline.
    """

    blob: bytes
    lines: int
    offset: int

    @property
    def end(self) -> int:
        """The file offset right after the last line's newline."""
        return self.offset + len(self.blob) + 1


class _Splitter:
    """What both splitters keep: the read position, the incomplete last line (held within the
    limit, the rest counted and dropped) and the counters."""

    __slots__ = (
        "_discarding",
        "_held",
        "_line_len",
        "_max",
        "_next_offset",
        "invalid_utf8_lines",
        "lines",
        "truncated_lines",
    )
    # Bytes held beyond the limit: a terminator's first part (the '\r' of '\r\n', or U+000D),
    # which is not text.
    _SLACK = 1

    def __init__(self, offset: int, max_line_bytes: int) -> None:
        if max_line_bytes < self._SLACK:
            raise ValueError(f"max_line_bytes must be at least {self._SLACK}, got {max_line_bytes}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self._max = max_line_bytes
        self._next_offset = offset
        # The start of the current incomplete line, at most max + _SLACK bytes. A bytearray, so
        # a line that arrives in many small reads is appended to, not copied each time.
        self._held = bytearray()
        # Bytes of the current incomplete line seen so far, held or dropped.
        self._line_len = 0
        self._discarding = False
        self.lines = 0
        self.invalid_utf8_lines = 0
        self.truncated_lines = 0

    @property
    def next_offset(self) -> int:
        """The file offset of the next byte ``feed`` expects."""
        return self._next_offset

    @property
    def pending_bytes(self) -> int:
        """Bytes read but not yet part of an emitted line (the incomplete last line)."""
        return self._line_len

    @property
    def pending_offset(self) -> int:
        """Offset of the first byte not yet part of an emitted line: a safe checkpoint."""
        return self._next_offset - self.pending_bytes

    def _follows(self, offset: int | None) -> None:
        if offset is not None and offset != self._next_offset:
            raise ValueError(
                f"chunk at offset {offset} does not follow the previous one "
                f"(expected {self._next_offset})"
            )

    def _hold(self, data: bytes, start: int, end: int) -> None:
        """Add ``data[start:end]`` (no terminator in it) to the incomplete line, within the
        limit."""
        size = end - start
        if not size:
            return
        self._line_len += size
        if self._discarding:
            return
        room = self._max + self._SLACK - len(self._held)
        if size <= room:
            self._held += data[start:end]
        else:
            self._held += data[start : start + room]
            self._discarding = True

    def _take(self) -> tuple[bytes, bool]:
        """The held line (and whether it was cut), which is then no longer held."""
        body, truncated = bytes(self._held), self._discarding
        self._held = bytearray()
        self._line_len = 0
        self._discarding = False
        return body, truncated


class LineSplitter(_Splitter):
    """Bytes in, complete lines out (see the module docstring)."""

    __slots__ = ("_errors",)

    def __init__(
        self,
        offset: int = 0,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        errors: Literal["replace", "surrogateescape"] = "replace",
    ) -> None:
        if errors not in ("replace", "surrogateescape"):
            raise ValueError(f"errors must be 'replace' or 'surrogateescape', got {errors!r}")
        super().__init__(offset, max_line_bytes)
        self._errors = errors

    def feed(self, data: bytes, offset: int | None = None) -> list[Line]:
        """Take the next chunk of the file; return the lines it completes, in order.

        ``offset`` (optional) is where ``data`` starts in the file; it must be ``next_offset``:
        a gap or a rewind means the caller lost track of the file (start a new splitter then).
        """
        texts, offsets, ends = self.feed_columns(data, offset)
        return [Line(o, t, e - o) for o, t, e in zip(offsets, texts, ends, strict=True)]

    def feed_columns(
        self, data: bytes, offset: int | None = None
    ) -> tuple[list[str], list[int], list[int]]:
        """``feed``, column-wise: the texts of the completed lines, their file offsets and
        their ends (the offset after each terminator). The common case (no held partial line,
        no ``\\r``, no over-long line) splits and decodes the whole chunk in C."""
        self._follows(offset)
        n = len(data)
        if not n:
            return [], [], []
        texts: list[str] = []
        offsets: list[int] = []
        ends: list[int] = []
        if self._line_len:
            # Finish the held line on the slow path, then the rest of the chunk on the fast one.
            nl = data.find(_NL)
            if nl < 0 or nl + 1 == n:
                for ln in self._feed_slow(data):
                    texts.append(ln.text)
                    offsets.append(ln.offset)
                    ends.append(ln.offset + ln.size)
                return texts, offsets, ends
            for ln in self._feed_slow(data[: nl + 1]):
                texts.append(ln.text)
                offsets.append(ln.offset)
                ends.append(ln.offset + ln.size)
            data = data[nl + 1 :]
            n = len(data)
        last = data.rfind(_NL)
        if last < 0 or _CR in data:
            for ln in self._feed_slow(data):
                texts.append(ln.text)
                offsets.append(ln.offset)
                ends.append(ln.offset + ln.size)
            return texts, offsets, ends
        body = data[:last]
        if body.isascii():
            # Most logs: characters are bytes, so the text's lengths are the offsets.
            new = body.decode("ascii").split("\n")
            lengths = list(map(len, new))
        else:
            new = []
            parts = body.split(_NL)
            lengths = list(map(len, parts))
        if max(lengths) > self._max:
            for ln in self._feed_slow(data):
                texts.append(ln.text)
                offsets.append(ln.offset)
                ends.append(ln.offset + ln.size)
            return texts, offsets, ends
        base = self._next_offset
        if new:
            texts += new
        else:
            try:
                texts += body.decode("utf-8").split("\n")
            except UnicodeDecodeError:
                errors = self._errors
                for part in parts:
                    try:
                        texts.append(part.decode("utf-8"))
                    except UnicodeDecodeError:
                        texts.append(part.decode("utf-8", errors))
                        self.invalid_utf8_lines += 1
        self.lines += len(lengths)
        bounds = list(accumulate(map(_PLUS_ONE, lengths), initial=base))
        offsets += bounds[:-1]
        ends += bounds[1:]
        self._next_offset = base + last + 1
        if last + 1 < n:
            self._hold(data, last + 1, n)
            self._next_offset = base + n
        return texts, offsets, ends

    def feed_run(
        self, data: bytes, offset: int | None = None
    ) -> tuple[list[str], list[int], list[int], LineRun | None]:
        """``feed_columns``, except that the chunk's whole lines come back as a ``LineRun``
        (the bytes as read, no per-line object) when none of them needs repair.

        Returns the texts, offsets and ends of the lines before the run (the held line the
        chunk completes), and the run or ``None``; when the lines need repair (a ``\\r``,
        invalid UTF-8, a line past the limit) they are all in the columns, split as
        ``feed_columns`` splits them. Either way the lines, their offsets and the counters are
        those ``feed_columns`` gives for the same bytes, and what follows the last newline is
        held.
        """
        self._follows(offset)
        n = len(data)
        start = 0
        texts: list[str] = []
        offsets: list[int] = []
        ends: list[int] = []
        if self._line_len:
            nl = data.find(_NL)
            if nl < 0 or nl + 1 == n:
                texts, offsets, ends = self.feed_columns(data)
                return texts, offsets, ends, None
            texts, offsets, ends = self.feed_columns(data[: nl + 1])
            start = nl + 1
        last = data.rfind(_NL, start)
        if last < 0:
            if start < n:
                self._hold(data, start, n)
                self._next_offset += n - start
            return texts, offsets, ends, None
        body = data[start:last]
        if _CR in body or not _fits(body, self._max) or not _utf8(body):
            more = self.feed_columns(data[start:] if start else data)
            return texts + more[0], offsets + more[1], ends + more[2], None
        count = body.count(_NL) + 1
        run = LineRun(body, count, self._next_offset)
        self.lines += count
        self._next_offset += last + 1 - start
        if last + 1 < n:
            self._hold(data, last + 1, n)
            self._next_offset += n - last - 1
        return texts, offsets, ends, run

    def _feed_slow(self, data: bytes) -> list[Line]:
        out: list[Line] = []
        n = len(data)
        if not n:
            return out
        start = 0
        base = self._next_offset
        find = data.find
        while True:
            nl = find(_NL, start)
            if nl < 0:
                self._hold(data, start, n)
                break
            if self._line_len:
                line_offset = base + start - self._line_len
                self._hold(data, start, nl)
                total = self._line_len
                body, truncated = self._take()
            else:
                body = data[start:nl]
                line_offset = base + start
                total = nl - start
                truncated = False
            out.append(self._emit(body, line_offset, total + 1, truncated))
            start = nl + 1
            if start >= n:
                break
        self._next_offset = base + n
        return out

    def flush(self) -> list[Line]:
        """Emit the incomplete last line, if any, as it is (a timeout, or the end of a file)."""
        if not self._line_len:
            return []
        offset, total = self.pending_offset, self._line_len
        body, truncated = self._take()
        return [self._emit(body, offset, total, truncated)]

    def _emit(self, body: bytes, offset: int, size: int, truncated: bool) -> Line:
        # A '\r' before the '\n' is part of the terminator; at a forced flush a trailing '\r' is
        # most likely the first half of one, so it is dropped there too.
        if body.endswith(b"\r") and not truncated:
            body = body[:-1]
        if len(body) > self._max:
            truncated = True
        if truncated:
            body = _cut(body, self._max)
            self.truncated_lines += 1
        self.lines += 1
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("utf-8", self._errors)
            self.invalid_utf8_lines += 1
        return Line(offset, text, size)


def _utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (one C-level pass; ASCII is checked first, faster)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Below this limit, checking line lengths by blocks (``_fits``) would take many steps: split.
_BLOCK_CHECK_MIN: Final = 4096


def _fits(body: bytes, limit: int) -> bool:
    """Whether no line of ``body`` (lines separated by ``\\n``) is longer than ``limit``.

    A line longer than ``limit`` covers a whole block of ``(limit + 1) // 2`` bytes (blocks
    aligned from 0) without a newline, so only the lines holding such a block are measured:
    a few C-level searches per chunk instead of one per line.
    """
    n = len(body)
    if n <= limit:
        return True
    if limit < _BLOCK_CHECK_MIN:
        return max(map(len, body.split(_NL))) <= limit
    step = (limit + 1) // 2
    s = 0
    while s < n:
        if body.find(_NL, s, s + step) >= 0:
            s += step
            continue
        a = body.rfind(_NL, 0, s) + 1
        b = body.find(_NL, s)
        if b < 0:
            b = n
        if b - a > limit:
            return False
        s = b + 1
    return True


def _cut(body: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of ``body``, moved back so no UTF-8 character is cut in two."""
    if len(body) <= limit or (body[limit] & 0xC0) != 0x80:
        return body[:limit]
    # body[limit] continues a character: cut before that character's lead byte (at most 3 back).
    p = limit - 1
    while p > limit - 4 and p > 0 and (body[p] & 0xC0) == 0x80:
        p -= 1
    if body[p] >= 0xC0:
        return body[:p]
    return body[:limit]


ENCODINGS: Final = ("utf-8", "utf-16le", "utf-16be")
_BOMS: Final = ((b"\xff\xfe", "utf-16le"), (b"\xfe\xff", "utf-16be"))


def sniff_encoding(head: bytes) -> str:
    """The encoding a file's first bytes announce: a UTF-16 byte order mark, else UTF-8."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return "utf-8"


class Utf16LineSplitter(_Splitter):
    """``LineSplitter`` for UTF-16 files (Windows tools write them): bytes in, text lines out.

    A line ends at the code unit U+000A (``0A 00`` little-endian, ``00 0A`` big-endian) at an
    even file offset; a U+000D before it is dropped, as is a byte order mark at offset 0.
    Offsets and sizes are bytes of the file, like ``LineSplitter``'s. Text that is not valid
    UTF-16 (a lone surrogate) is replaced and the line counted in ``invalid_utf8_lines`` (the
    shared name of "lines that were not valid text"); lines over ``max_line_bytes`` bytes are
    truncated and counted. The output does not depend on how the bytes are cut into chunks.
    """

    __slots__ = ("_carry", "_codec", "_errors", "_nl")
    _SLACK = 2

    def __init__(
        self,
        offset: int = 0,
        *,
        big_endian: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        errors: Literal["replace", "surrogateescape"] = "replace",
    ) -> None:
        super().__init__(offset, max_line_bytes - max_line_bytes % 2)
        self._codec = "utf-16-be" if big_endian else "utf-16-le"
        self._nl = b"\x00\n" if big_endian else b"\n\x00"
        self._errors = "replace" if errors == "replace" else "surrogatepass"
        self._carry = b""  # the first byte of a code unit whose second has not been read

    @property
    def pending_bytes(self) -> int:
        """Bytes read but not yet part of an emitted line."""
        return self._line_len + len(self._carry)

    def feed(self, data: bytes, offset: int | None = None) -> list[Line]:
        """Take the next chunk of the file; return the lines it completes, in order."""
        self._follows(offset)
        out: list[Line] = []
        if not data:
            return out
        buf = self._carry + data
        base = self._next_offset - len(self._carry)  # file offset of buf[0]
        self._next_offset += len(data)
        usable = len(buf) - (base + len(buf)) % 2  # whole code units only
        self._carry = buf[usable:]
        find, nl = buf.find, self._nl
        pos = 0
        while True:
            p = find(nl, pos, usable)
            while p >= 0 and (base + p) % 2:
                p = find(nl, p + 1, usable)
            if p < 0:
                self._hold(buf, pos, usable)
                return out
            self._hold(buf, pos, p)
            size = self._line_len + 2
            out.append(self._emit(base + p + 2 - size, size))
            pos = p + 2

    def feed_columns(
        self, data: bytes, offset: int | None = None
    ) -> tuple[list[str], list[int], list[int]]:
        """``feed``, column-wise: texts, offsets and ends of the completed lines."""
        lines = self.feed(data, offset)
        return (
            [ln.text for ln in lines],
            [ln.offset for ln in lines],
            [ln.offset + ln.size for ln in lines],
        )

    def flush(self) -> list[Line]:
        """Emit the incomplete last line, if any, as it is (a timeout, or the end of a file)."""
        if not self.pending_bytes:
            return []
        offset, size = self.pending_offset, self.pending_bytes
        self._hold(self._carry, 0, len(self._carry))  # half a code unit: replaced when decoded
        self._carry = b""
        return [self._emit(offset, size)]

    def _emit(self, offset: int, size: int) -> Line:
        body, truncated = self._take()
        if len(body) > self._max:
            truncated = True
        if truncated:
            body = body[: self._max]
            self.truncated_lines += 1
        self.lines += 1
        try:
            text = body.decode(self._codec)
        except UnicodeDecodeError:
            text = body.decode(self._codec, self._errors)
            self.invalid_utf8_lines += 1
        if offset == 0 and text.startswith("\ufeff"):
            text = text[1:]
        if text.endswith("\r") and not truncated:
            text = text[:-1]
        return Line(offset, text, size)
