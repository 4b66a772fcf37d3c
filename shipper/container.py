"""Container log lines (CRI, docker json-file) joined from their fragments: a ``Tail`` stage.
Pure: no I/O, no clock of its own.

Runtimes cut a long line into 16 KiB fragments and interleave stdout with stderr, so the pieces
of one line need not be adjacent in the file: ``P1(out) L(err) F1(out)``.
``parsers.partial.PartialMerger`` joins them; this stage adds what exactly-once delivery needs:

- Events leave in the order of their first byte, as whole *groups*: events whose byte ranges
  overlap (``P1…F1`` holds ``L``) leave together, and every event of a group carries the
  group's last byte as its ``end``. So ends never go back, the bytes before any end belong to
  events already emitted, and ``Tail.emitted_end`` stays a safe checkpoint. A group waits while
  a fragment still pending starts inside it.
- ``Batcher.add_many`` never cuts between events with the same end: a span never ends inside a
  group, so the collector's high-water mark never falls between two of its events (a re-sent
  group is all below the mark or all above it).
- A joined line is written back in its runtime's format, so the input's parser reads it like any
  other line: CRI ``<time> <stream> F <content>`` with the first fragment's time, docker the
  first fragment's object with the joined ``log``. A line still incomplete when flushed (its
  timeout, the end of a file) keeps the tag ``P`` (docker: ``log`` without its newline).
- A line that is not a container line ends every pending line (as in Fluent Bit) and is passed
  on as read: the parser then reports it as a parse error.

Known limit: a timer flush (a line whose fragments stopped coming) is recorded as a forced
boundary, and re-reading after a crash flushes *every* pending line there. If another stream
also had fragments pending at that moment and the first run's joined copy of that line was
not acknowledged before the crash, the line is stored split in two (nothing is lost, and
nothing is stored twice: the collector's mark covers the first run's copy or none of it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from parsers import Parser, get_parser
from parsers.lines import Line
from parsers.partial import DEFAULT_PARTIAL_FLUSH_TIMEOUT_NS, Merged, PartialMerger

FORMATS: Final = frozenset({"cri", "docker"})

Piece = tuple[int, int, str]  # (offset, end, text) of one event

_json_decode = msgspec.json.Decoder(dict[str, Any]).decode
_json_encode = msgspec.json.Encoder().encode


class ContainerJoiner:
    """Lines of one container log file in, whole container lines out (see the module
    docstring)."""

    def __init__(
        self,
        fmt: str,
        *,
        max_bytes: int,
        flush_timeout_ns: int = DEFAULT_PARTIAL_FLUSH_TIMEOUT_NS,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"not a container log format: {fmt!r}")
        self.fmt = fmt
        self._parser: Parser = get_parser(fmt)
        self._merger = PartialMerger(max_bytes=max_bytes, flush_timeout_ns=flush_timeout_ns)
        self._first: dict[int, str] = {}  # offset -> first fragment of a line being joined
        self._ready: list[list[Any]] = []  # [offset, end, text]: complete, group not yet

    @property
    def pending(self) -> bool:
        """Whether anything is held (fragments, or a group waiting for one)."""
        return bool(self._ready) or self._merger.pending_parts > 0

    def next_due_ns(self) -> int | None:
        """When ``flush_due`` will have something to emit (``None``: nothing held)."""
        return self._merger.next_due_ns()

    def feed(self, lines: list[Line], now_ns: int) -> list[Piece]:
        """Take the next lines of the file; return the events that may leave."""
        merger = self._merger
        for ln in lines:
            parsed = self._parser.parse(ln.text)
            if parsed.error is not None:
                self._add(merger.flush())
                self._ready.append([ln.offset, ln.offset + ln.size, _clean(ln.text)])
                continue
            merged = merger.feed(parsed, ln.offset, ln.size, now_ns)
            for m in merged:
                if m.parts == 1 and m.offset == ln.offset and m.complete:
                    # a whole line: passed on as written (only invalid bytes replaced)
                    self._ready.append([m.offset, m.end, _clean(ln.text)])
                else:
                    self._add([m])
            if ln.offset in merger.pending_offsets:
                self._first[ln.offset] = ln.text
        return self._release(final=False)

    def flush_due(self, now_ns: int) -> list[Piece]:
        """Timer: emit (incomplete) the lines that waited ``flush_timeout_ns`` for a fragment."""
        self._add(self._merger.flush_due(now_ns))
        return self._release(final=False)

    def flush(self) -> list[Piece]:
        """Emit everything held, incomplete lines included (end of file, forced boundary)."""
        self._add(self._merger.flush())
        return self._release(final=True)

    def _add(self, merged: list[Merged]) -> None:
        for m in merged:
            first = self._first.pop(m.offset, None)
            self._ready.append([m.offset, m.end, self._render(m, first)])

    def _release(self, *, final: bool) -> list[Piece]:
        """The complete groups of ready events, in order of their first byte."""
        if not self._ready:
            return []
        ready = sorted(self._ready, key=lambda e: int(e[0]))
        hold = None if final else self._merger.pending_offset
        out: list[Piece] = []
        i, n = 0, len(ready)
        while i < n:
            j, end = i, int(ready[i][1])
            while j + 1 < n and ready[j + 1][0] < end:
                j += 1
                end = max(end, int(ready[j][1]))
            if hold is not None and end > hold:
                break  # a pending fragment starts inside this group: not complete yet
            out += [(int(e[0]), end, str(e[2])) for e in ready[i : j + 1]]
            i = j + 1
        self._ready = ready[i:]
        return out

    def _render(self, m: Merged, first: str | None) -> str:
        """The joined line in its runtime's format (see the module docstring)."""
        fields = m.parsed.fields
        message: str = fields["message"]
        if self.fmt == "cri":
            time = first.split(" ", 1)[0] if first is not None else _rfc3339(m.parsed.ts)
            return f"{time} {fields['stream']} {'F' if m.complete else 'P'} {message}"
        entry: dict[str, Any] = {}
        if first is not None:
            try:
                entry = _json_decode(first)
            except msgspec.DecodeError:
                entry = {}
        entry["log"] = message + "\n" if m.complete else message
        entry["stream"] = fields["stream"]
        if "time" not in entry:
            entry["time"] = _rfc3339(m.parsed.ts)
        return _json_encode(entry).decode()


def _rfc3339(ns: int | None) -> str:
    ns = ns or 0
    whole = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{ns % 1_000_000_000:09d}Z"


def _clean(text: str) -> str:
    """A line read with surrogate escapes, as valid text (invalid bytes replaced)."""
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
