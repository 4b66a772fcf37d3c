"""Line matching over a batch's lines blob: one pass per batch, no Python object per miss.

The lines of a batch are stored joined by ``\\n``. A matcher searches the whole blob, maps each
hit to its record with a binary search, then continues at the next record, so the Python work is
proportional to the number of *matching* records, not to the number of records.

Grep semantics are kept: patterns run in multiline mode (``^``/``$`` anchor at line ends) and a
hit that crosses a separator is confirmed against its own record alone, so ``[^x]*`` or ``\\s``
can never join two lines. User regexes run on RE2 (google-re2): linear time, so no pattern can
hang a server; it works on the UTF-8 bytes directly, with Unicode-aware classes and case folding.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, Final, Protocol

import re2

from wharf.errors import CorruptBatch, InvalidArgument

# A pattern longer than this is refused: RE2 memory grows with the pattern, and no human
# types a 64 KiB grep pattern.
MAX_PATTERN_BYTES: Final = 64 * 1024
# RE2's default DFA budget (8 MiB) is per compiled regex; raising it keeps big alternations fast.
_RE2_MAX_MEM: Final = 64 << 20
# What one regular expression may cost. A pattern is first compiled with this memory budget,
# where RE2 gives up as soon as the program outgrows it (in milliseconds): a counted repetition
# of a big class such as \pL{1000} would otherwise take a second to compile and a DFA that
# scans at a crawl. About 60,000 RE2 instructions pass (\pL{50}), 120,000 do not.
_PROBE_MEM: Final = 1 << 20
# Compiled regexes kept for reuse (a search compiles its pattern once per partition). google-re2
# keeps 128 in its own module cache, each with a DFA of up to ``_RE2_MAX_MEM``: memory that grew
# by a GB over 150 distinct patterns and was never given back. Ours is smaller, and theirs is
# emptied after every compile.
_CACHE_SIZE: Final = 16

_META: Final = frozenset(b"\\^$.|?*+()[]{}")
_QUANT: Final = frozenset(b"?*+{")


def required_literal(pattern: str) -> bytes | None:
    """The longest of ``required_literals(pattern)``, or ``None``."""
    runs = required_literals(pattern)
    return max(runs, key=len) if runs else None


def required_literals(pattern: str) -> list[bytes]:
    """Substrings every match of ``pattern`` must contain (empty if none is certain).

    Deliberately conservative: only the top level of the pattern is read, any top-level ``|``
    or inline flag gives up, groups and bracket expressions are skipped, and a character followed
    by a quantifier is not required.
    """
    if "(?" in pattern:
        return []
    data = pattern.encode("utf-8")
    runs: list[bytearray] = []
    run = bytearray()
    i, n, depth = 0, len(data), 0

    def close() -> None:
        nonlocal run
        if run:
            runs.append(run)
        run = bytearray()

    while i < n:
        c = data[i]
        if depth:
            if c == ord("\\"):
                i += 2
                continue
            if c == ord("["):
                i = _skip_class(data, i)
                continue
            depth += (c == ord("(")) - (c == ord(")"))
            i += 1
            continue
        if c == ord("|"):
            return []
        if c == ord("("):
            close()
            depth = 1
            i += 1
            continue
        if c == ord("["):
            close()
            i = _skip_class(data, i)
            continue
        if c == ord("{"):  # a counted repetition: its digits are not text
            close()
            end = data.find(b"}", i)
            i = n if end < 0 else end + 1
            continue
        if c == ord("\\"):
            if i + 1 < n and chr(data[i + 1]) in ".\\^$|?*+()[]{}/-":
                lit, width = data[i + 1], 2
            else:  # \d, \w, \b, \x41 ...: not a literal we can vouch for
                close()
                i += 2
                continue
        elif c in _META:
            close()
            i += 1
            continue
        else:
            lit, width = c, 1
            while i + width < n and (data[i + width] & 0xC0) == 0x80:
                width += 1  # keep a UTF-8 sequence whole
        nxt = data[i + width] if i + width < n else None
        if nxt is not None and nxt in _QUANT:
            close()  # x? x* x{0,} may be absent; even x+ we skip for simplicity
        elif c == ord("\\"):
            run.append(lit)
        else:
            run += data[i : i + width]
        i += width
    close()
    return [bytes(r) for r in runs]


def _skip_class(data: bytes, i: int) -> int:
    """Index just after the bracket expression starting at ``data[i] == '['``."""
    j = i + 1
    if j < len(data) and data[j] == ord("^"):
        j += 1
    if j < len(data) and data[j] == ord("]"):
        j += 1
    while j < len(data) and data[j] != ord("]"):
        j += 2 if data[j] == ord("\\") else 1
    return j + 1


class Lines(Protocol):
    """The lines of a batch, as the matcher needs them (``wharf.batch.Batch`` is one)."""

    def __len__(self) -> int: ...

    @property
    def flat(self) -> bool:
        """True when no record holds a newline: then every newline ends a record."""
        ...

    def lines_blob(self) -> bytes:
        """The records' lines in UTF-8, joined by newlines."""
        ...

    def line_stops(self) -> list[int]:
        """Per record, the blob position just past its line and separator."""
        ...


class LineMatcher:
    """Which records of a batch match a grep pattern.

    ``fixed`` treats the pattern as a literal string (``grep -F``); ``ignore_case`` is ``-i``;
    ``invert`` is ``-v``. An empty pattern matches every record. Not thread-safe: it learns
    which required literal to skip to from the first blob it sees.
    """

    __slots__ = (
        "_candidates",
        "_literal",
        "_lower",
        "_prefilter",
        "_regex",
        "_tail",
        "invert",
        "pattern",
    )

    def __init__(
        self, pattern: str, *, fixed: bool = False, ignore_case: bool = False, invert: bool = False
    ) -> None:
        encoded = pattern.encode("utf-8", "surrogatepass")
        if len(encoded) > MAX_PATTERN_BYTES:
            raise InvalidArgument(f"pattern of {len(encoded)} bytes exceeds {MAX_PATTERN_BYTES}")
        self.pattern = pattern
        self.invert = invert
        self._literal: bytes | None = None
        self._lower = False
        self._regex: Any = None
        self._prefilter: bytes | None = None
        self._tail: re.Pattern[bytes] | None = None
        self._candidates: list[bytes] = []
        if fixed and (not ignore_case or encoded.isascii()):
            self._literal = encoded.lower() if ignore_case else encoded
            self._lower = ignore_case
            self._tail = _tail_regex(self._literal)
            return
        source = re2.escape(encoded) if fixed else encoded
        flags = b"(?m" + (b"i" if ignore_case else b"") + b")"
        try:
            self._regex = compile_regex(flags + source)
        except re2.error as exc:
            reason = _re2_reason(exc, flags.decode())
            raise InvalidArgument(f"invalid regular expression {pattern!r}: {reason}") from None
        except RegexTooCostly as exc:
            raise InvalidArgument(f"regular expression {pattern!r} {exc}") from None
        if not fixed and not ignore_case:
            self._candidates = required_literals(pattern)

    def matching(self, lines: Lines) -> list[int]:
        """Indexes of the records whose line matches (or not, when inverted), ascending."""
        n = len(lines)
        hits = self._hits(lines)
        if not self.invert:
            return hits
        hit_set = set(hits)
        return [i for i in range(n) if i not in hit_set]

    def count(self, lines: Lines) -> int:
        """How many records match (``grep -c``), without computing which."""
        n = len(lines)
        if self._literal is not None and lines.flat and b"\n" not in self._literal:
            # One C-level pass: each hit consumes the rest of its line, so a line counts once.
            assert self._tail is not None
            hay = lines.lines_blob()
            hits = len(self._tail.findall(hay.lower() if self._lower else hay))
        else:
            hits = len(self._hits(lines, want_index=False))
        return n - hits if self.invert else hits

    def _hits(self, lines: Lines, *, want_index: bool = True) -> list[int]:
        blob = lines.lines_blob()
        n = len(lines)
        if self._literal is not None:
            hay = blob.lower() if self._lower else blob
            needle = self._literal
            size = len(needle)

            def find_literal(pos: int) -> tuple[int, int]:
                p = hay.find(needle, pos)
                return p, p + size

            def has_literal(start: int, end: int) -> bool:
                return hay.find(needle, start, end) >= 0

            return _walk(hay, n, lines, find_literal, has_literal, want_index)
        regex = self._regex

        def confirm(start: int, end: int) -> bool:
            # A slice of one line, not pos/endpos: RE2's wrapper costs half as much per call
            # that way, and the line's own edges are where ^, $ and \b must look anyway.
            return regex.search(blob[start:end]) is not None

        if self._candidates:
            # Pick the rarest required literal on the first blob seen: the longest is often
            # the most common ("HTTP/1." in an access log), and grep's speed comes from
            # skipping to rare text.
            self._prefilter = min(self._candidates, key=blob.count)
            self._candidates = []
        if self._prefilter is not None:
            lit = self._prefilter
            unconfirmed = len(blob) + 1  # a literal hit is only a candidate: always confirm

            def find_candidate(pos: int) -> tuple[int, int]:
                return blob.find(lit, pos), unconfirmed

            return _walk(blob, n, lines, find_candidate, confirm, want_index)

        def find_regex(pos: int) -> tuple[int, int]:
            m = regex.search(blob, pos)
            return (-1, -1) if m is None else (m.start(), m.end())

        return _walk(blob, n, lines, find_regex, confirm, want_index)


class RegexTooCostly(Exception):
    """A pattern whose RE2 program is over the budget (the message completes a sentence that
    starts with the pattern)."""


def compile_regex(source: bytes) -> Any:
    """``source`` compiled by RE2 (UTF-8, errors not logged), from a small cache of recent ones.
    Raises ``re2.error`` for a bad pattern and ``RegexTooCostly`` for one over the budget."""
    return _compile_cached(source)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile_cached(source: bytes) -> Any:
    probe = re2.Options()
    probe.max_mem = _PROBE_MEM
    probe.log_errors = False  # the error goes to the user once, in our message
    try:
        re2.compile(source, probe)
    except re2.error as exc:
        if b"pattern too large" not in (exc.args[0] if exc.args else b""):
            raise
        raise RegexTooCostly(
            "is too costly to run: its RE2 program is over the limit (about 60,000 "
            "instructions; a counted repetition of a large class such as \\pL{100} is "
            "over it): narrow the class or lower the count"
        ) from None
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    try:
        return re2.compile(source, options)
    finally:
        re2.purge()  # the wrapper's own cache: we keep what we reuse, here


def _re2_reason(exc: Exception, flags: str) -> str:
    """RE2's message as text (the binding gives bytes), without the inline flags we prepended:
    ``missing ): (?m)(kib`` becomes ``missing ): (kib``."""
    raw = exc.args[0] if exc.args else exc
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    kind, sep, rest = text.partition(": ")
    if sep and rest.startswith(flags):
        rest = rest[len(flags) :]
    return f"{kind}{sep}{rest}"


def _tail_regex(literal: bytes) -> re.Pattern[bytes]:
    """``literal`` then the rest of its line. Linear time (a literal and one negated class),
    so Python's engine is safe here; it finds the literal with its fast substring search."""
    return re.compile(re.escape(literal) + rb"[^\n]*")


def _walk(
    blob: bytes,
    n: int,
    lines: Lines,
    search: Callable[[int], tuple[int, int]],
    confirm: Callable[[int, int], bool],
    want_index: bool = True,
) -> list[int]:
    """Drive ``search`` over the blob, one hit per record at most, in record order.

    Without ``want_index`` (counting), the returned list has the right length but its items
    are meaningless: newlines need not be counted to number the records.

    ``search(pos)`` returns the next hit ``(start, end)`` at or after ``pos`` (start -1: none).
    A hit whose end passes its record's end is re-checked with ``confirm(start, end)`` on that
    record alone; then the search resumes at the next record. When no record holds a newline
    of its own, records are found by counting newlines (C speed) instead of a binary search
    over their boundaries, which then never need computing.
    """
    out: list[int] = []
    size = len(blob)
    stops = None if lines.flat else lines.line_stops()
    pos = idx = 0
    while pos <= size:
        p, hit_end = search(pos)
        if p < 0:
            break
        if stops is None:
            i = idx + blob.count(b"\n", pos, p) if want_index else idx
            if i >= n:
                raise CorruptBatch(f"more lines than the {n} records the batch declares")
            start = blob.rfind(b"\n", pos, p) + 1 or pos
            end = blob.find(b"\n", p)
            if end < 0:
                end = size
        else:
            i = bisect_right(stops, p)
            if i >= n:
                break
            start = stops[i - 1] if i else 0
            end = stops[i] - 1
        if hit_end <= end or confirm(start, end):
            out.append(i)
        pos, idx = end + 1, i + 1
    return out
