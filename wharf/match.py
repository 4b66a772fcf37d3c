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

from bisect import bisect_right
from collections.abc import Callable
from typing import Any, Final

import re2

from wharf.errors import InvalidArgument

# A pattern longer than this is refused: RE2 memory grows with the pattern, and no human
# types a 64 KiB grep pattern.
MAX_PATTERN_BYTES: Final = 64 * 1024
# RE2's default DFA budget (8 MiB) is per compiled regex; raising it keeps big alternations fast.
_RE2_MAX_MEM: Final = 64 << 20

_META: Final = frozenset(b"\\^$.|?*+()[]{}")
_QUANT: Final = frozenset(b"?*+{")


def required_literal(pattern: str) -> bytes | None:
    """A substring every match of ``pattern`` must contain, or ``None`` if none is certain.

    Deliberately conservative: only the top level of the pattern is read, any top-level ``|``
    or inline flag gives up, groups and bracket expressions are skipped, and a character followed
    by a quantifier is not required. The longest certain run wins (it is the rarest, usually).
    """
    if "(?" in pattern:
        return None
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
            return None
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
    if not runs:
        return None
    best = max(runs, key=len)
    return bytes(best)


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


class LineMatcher:
    """Which records of a blob match a grep pattern.

    ``fixed`` treats the pattern as a literal string (``grep -F``); ``ignore_case`` is ``-i``;
    ``invert`` is ``-v``. An empty pattern matches every record.
    """

    __slots__ = ("_fixed_lower", "_literal", "_prefilter", "_regex", "invert", "pattern")

    def __init__(
        self, pattern: str, *, fixed: bool = False, ignore_case: bool = False, invert: bool = False
    ) -> None:
        encoded = pattern.encode("utf-8", "surrogatepass")
        if len(encoded) > MAX_PATTERN_BYTES:
            raise InvalidArgument(f"pattern of {len(encoded)} bytes exceeds {MAX_PATTERN_BYTES}")
        self.pattern = pattern
        self.invert = invert
        self._literal: bytes | None = None
        self._fixed_lower = False
        self._regex: Any = None
        self._prefilter: bytes | None = None
        if fixed and (not ignore_case or encoded.isascii()):
            self._literal = encoded.lower() if ignore_case else encoded
            self._fixed_lower = ignore_case
            return
        source = re2.escape(encoded) if fixed else encoded
        flags = b"(?m" + (b"i" if ignore_case else b"") + b")"
        options = re2.Options()
        options.max_mem = _RE2_MAX_MEM
        try:
            self._regex = re2.compile(flags + source, options)
        except re2.error as exc:
            raise InvalidArgument(f"invalid regular expression {pattern!r}: {exc}") from exc
        if not fixed and not ignore_case:
            self._prefilter = required_literal(pattern)

    def matching(self, blob: bytes, stops: list[int]) -> list[int]:
        """Indexes of the records whose line matches (or does not, when inverted), ascending."""
        hits = self._hits(blob, stops)
        if not self.invert:
            return hits
        hit_set = set(hits)
        return [i for i in range(len(stops)) if i not in hit_set]

    def count(self, blob: bytes, stops: list[int]) -> int:
        """How many records match (``grep -c``)."""
        hits = len(self._hits(blob, stops))
        return len(stops) - hits if self.invert else hits

    def _hits(self, blob: bytes, stops: list[int]) -> list[int]:
        if self._literal is not None:
            hay = blob.lower() if self._fixed_lower else blob
            return _walk(hay, stops, _literal_finder(hay, self._literal))
        if self._prefilter is not None:
            return _walk(blob, stops, _prefiltered_finder(blob, self._prefilter, self._regex))
        return _walk(blob, stops, _regex_finder(blob, self._regex))


# A finder gets (pos, stops) and returns the index of the next matching record whose line
# starts at or after ``pos``... or -1. Each strategy confirms hits within their own record.
_Finder = Callable[[int, list[int]], int]


def _walk(blob: bytes, stops: list[int], find: _Finder) -> list[int]:
    out: list[int] = []
    pos, n = 0, len(stops)
    while True:
        i = find(pos, stops)
        if i < 0:
            return out
        out.append(i)
        if i + 1 >= n:
            return out
        pos = stops[i]


def _literal_finder(hay: bytes, needle: bytes) -> _Finder:
    size = len(needle)

    def find(pos: int, stops: list[int]) -> int:
        while True:
            p = hay.find(needle, pos)
            if p < 0:
                return -1
            i = bisect_right(stops, p)
            if i >= len(stops):
                return -1
            end = stops[i] - 1
            if p + size <= end:
                return i
            start = stops[i - 1] if i else 0
            if hay.find(needle, start, end) >= 0:  # only when the needle holds a newline
                return i
            pos = stops[i]

    return find


def _regex_finder(blob: bytes, regex: Any) -> _Finder:
    def find(pos: int, stops: list[int]) -> int:
        while True:
            m = regex.search(blob, pos)
            if m is None:
                return -1
            p = m.start()
            i = bisect_right(stops, p)
            if i >= len(stops):
                return -1
            end = stops[i] - 1
            if m.end() <= end:
                return i
            start = stops[i - 1] if i else 0
            if regex.search(blob, start, end) is not None:
                return i
            pos = stops[i]

    return find


def _prefiltered_finder(blob: bytes, literal: bytes, regex: Any) -> _Finder:
    def find(pos: int, stops: list[int]) -> int:
        while True:
            p = blob.find(literal, pos)
            if p < 0:
                return -1
            i = bisect_right(stops, p)
            if i >= len(stops):
                return -1
            start = stops[i - 1] if i else 0
            if regex.search(blob, start, stops[i] - 1) is not None:
                return i
            pos = stops[i]

    return find
