"""logfmt (``key=value key2="quoted value" bare_key``), with go-logfmt's semantics exactly.

The reference is go-logfmt/logfmt's ``Decoder.ScanKeyval`` (decode.go) and ``unquoteBytes``
(jsonstring.go):

- Bytes up to and including ``' '`` separate pairs; a key is a run of other bytes and may not
  contain ``=`` or ``"`` (``unexpected '='``/``unexpected '"'``) nor U+FFFD / invalid UTF-8
  (``invalid key``).
- ``k``, ``k=`` and ``k=""`` all mean "key present without a value": ``None`` here (nil there).
- An unquoted value runs to the next separator and may not contain ``=`` or ``"``.
- A quoted value ends at the first unescaped ``"`` and the next key may follow at once. Without
  backslashes it is taken as it is; with any, it is decoded like a JSON string (``\\" \\\\ \\/
  \\' \\b \\f \\n \\r \\t \\uXXXX`` with surrogate pairs) and raw control characters make it an
  ``invalid quoted value``. A missing closing quote is an ``unterminated quoted value``.
- Errors carry go-logfmt's position: the 1-based byte offset (of the line as UTF-8).

``LogfmtParser`` turns the pairs into fields (a repeated key keeps its last value) and takes the
timestamp and level from the usual keys. ``scan`` gives the pairs in order; ``encode`` writes
them back as go-logfmt's ``Encoder`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, tzinfo
from operator import itemgetter
from typing import Any, Final

from parsers._base import Parsed
from parsers.levels import level_from_fields
from parsers.timestamps import resolve_tz, ts_from_fields

__all__ = ["LogfmtParser", "LogfmtSyntaxError", "encode", "scan"]

# Keys tried for the timestamp: go-kit "ts", logrus/slog "time", log15 "t".
DEFAULT_TIME_KEYS: Final = ("ts", "time", "timestamp", "t", "@timestamp")


class LogfmtSyntaxError(ValueError):
    """A line that go-logfmt rejects; ``pos`` is its 1-based byte position."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(f"{msg} at byte {pos}")
        self.msg = msg
        self.pos = pos


# The fast path, for lines without anything unusual. ``_PAIR_RE.split`` gives, in C, the text
# between matches and each match's key and raw value: "" or None (no value), '"..."' (quoted,
# quotes kept) or the bare value. A key and a bare value stop at a separator, '=' or '"'; where
# go-logfmt would report an unexpected '=' or '"', that character starts no match and is left
# between matches. Each match starts with the separators before its key, so the matches tile
# the line exactly when everything between them is empty except trailing separators;
# otherwise ``_scan_exact`` decides (and reports the error). The character classes of
# separators, keys and values are disjoint and the quoted string is an unrolled loop, so a
# match never backtracks more than its own length: linear on any input.
_SEP: Final = r"[\x00-\x20]"
_KEY: Final = r'[^\x00-\x20="]+'
_QUOTED: Final = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_BARE: Final = r'[^\x00-\x20="]*'
_PAIR_RE: Final = re.compile(rf"{_SEP}*({_KEY})(?:=({_QUOTED}|{_BARE}))?", re.DOTALL)
# The same grammar with the quoted value's text and the bare value in two groups, for
# ``LogfmtParser``: it builds the fields dict from the split lists without a Python loop.
_FIELDS_RE: Final = re.compile(
    rf'{_SEP}*({_KEY})(?:=(?:"([^"\\]*(?:\\.[^"\\]*)*)"|({_BARE})))?', re.DOTALL
)
_SEPARATORS: Final = "".join(map(chr, range(0x21)))
_second: Final = itemgetter(1)
_BAD_KEY_RE: Final = re.compile("[\ufffd\ud800-\udfff]")
_SURROGATES_RE: Final = re.compile("[\ud800-\udfff]")


def _split(line: str) -> tuple[list[str], list[str | None]] | None:
    """Keys and raw values of a line the fast path can take, else None."""
    parts = _PAIR_RE.split(line)
    gaps = "".join(parts[::3])
    if gaps and gaps.strip(_SEPARATORS):
        return None
    keys: list[str] = parts[1::3]
    if not line.isascii() and any(_BAD_KEY_RE.search(k) for k in keys):
        return None
    return keys, parts[2::3]


def _fast_pairs(line: str) -> list[tuple[str, str | None]] | None:
    """The pairs of a plain line, or ``None`` when the exact scanner must decide."""
    split = _split(line)
    if split is None:
        return None
    pairs: list[tuple[str, str | None]] = []
    for key, value in zip(*split, strict=True):
        if not value:
            pairs.append((key, None))
        elif value[0] == '"':
            v = _quoted(value)
            if v is _INVALID:
                return None
            pairs.append((key, v))
        else:
            pairs.append((key, value))
    return pairs


# Returned by ``_quoted`` for a quoted value go-logfmt rejects (not None: that means "no value").
_INVALID: Final = "\x00invalid"


def _quoted(value: str) -> str | None:
    """A quoted value as matched (quotes included): its text, None if empty, or _INVALID."""
    body = value[1:-1]
    if "\\" not in body:
        return body or None
    text = _unquote(body)
    if text is None:
        return _INVALID
    return text or None


def scan(line: str) -> list[tuple[str, str | None]]:
    """The ``(key, value)`` pairs of one line, in order; ``None`` for a key without a value.

    Raises ``LogfmtSyntaxError`` where go-logfmt reports a syntax error.
    """
    pairs = _fast_pairs(line)
    if pairs is None:
        pairs = _scan_exact(line)
    return pairs


def _utf8_len(text: str) -> int:
    """Bytes of ``text`` as UTF-8, where a lone surrogate from ``surrogateescape`` decoding
    stands for the one byte it replaced (other lone surrogates count 3, as WTF-8 has them)."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return sum(
            1 if 0xDC80 <= ord(c) <= 0xDCFF else len(c.encode("utf-8", "surrogatepass"))
            for c in text
        )


def _byte_pos(line: str, index: int) -> int:
    """go-logfmt's error position: 1 + the UTF-8 byte offset of ``line[index]``."""
    return _utf8_len(line[:index]) + 1


def _scan_exact(line: str) -> list[tuple[str, str | None]]:
    """A character-by-character port of go-logfmt's ``ScanKeyval`` loop (slow, exact)."""
    pairs: list[tuple[str, str | None]] = []
    n = len(line)
    pos = 0
    while True:
        # Garbage: skip separators.
        while pos < n and line[pos] <= " ":
            pos += 1
        if pos >= n:
            return pairs
        # Key: checks in go-logfmt's order ('"' first, then an empty key, then U+FFFD).
        start = pos
        while pos < n:
            c = line[pos]
            if c in {"=", '"'} or c <= " ":
                break
            pos += 1
        key = line[start:pos]
        stop = line[pos] if pos < n else ""
        if stop == '"' or (stop == "=" and not key):
            raise LogfmtSyntaxError(f"unexpected {stop!r}", _byte_pos(line, pos))
        if _BAD_KEY_RE.search(key):
            raise LogfmtSyntaxError("invalid key", _byte_pos(line, pos))
        if stop != "=":
            pairs.append((key, None))
            continue
        # Equal sign.
        pos += 1
        if pos >= n or line[pos] <= " ":
            pairs.append((key, None))
            continue
        if line[pos] != '"':
            start = pos
            while pos < n:
                c = line[pos]
                if c in {"=", '"'}:
                    raise LogfmtSyntaxError(f"unexpected {c!r}", _byte_pos(line, pos))
                if c <= " ":
                    break
                pos += 1
            pairs.append((key, line[start:pos] or None))
            continue
        # Quoted value.
        start = pos
        pos += 1
        has_esc = esc = False
        while pos < n:
            c = line[pos]
            if esc:
                esc = False
            elif c == "\\":
                has_esc = esc = True
            elif c == '"':
                break
            pos += 1
        else:
            raise LogfmtSyntaxError("unterminated quoted value", _byte_pos(line, n))
        pos += 1
        body = line[start + 1 : pos - 1]
        if has_esc:
            value = _unquote(body)
            if value is None:
                raise LogfmtSyntaxError("invalid quoted value", _byte_pos(line, pos))
            pairs.append((key, value or None))
        else:
            pairs.append((key, body or None))


_SIMPLE_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "'": "'",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def _u4(s: str, i: int) -> int:
    """go-logfmt's ``getu4``: the code unit of ``\\uXXXX`` at ``s[i]``, or -1."""
    if i + 6 > len(s) or s[i] != "\\" or s[i + 1] != "u":
        return -1
    digits = s[i + 2 : i + 6]
    if not all(d in _HEX for d in digits):
        return -1
    return int(digits, 16)


def _unquote(s: str) -> str | None:
    """go-logfmt's ``unquoteBytes`` on the text between the quotes; ``None`` if invalid."""
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 1
            if i >= n:
                return None
            e = s[i]
            simple = _SIMPLE_ESCAPES.get(e)
            if simple is not None:
                out.append(simple)
                i += 1
                continue
            if e != "u":
                return None
            r = _u4(s, i - 1)
            if r < 0:
                return None
            i += 5
            if 0xD800 <= r <= 0xDFFF:
                r2 = _u4(s, i)
                if 0xD800 <= r <= 0xDBFF and 0xDC00 <= r2 <= 0xDFFF:
                    out.append(chr(0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)))
                    i += 6
                    continue
                r = 0xFFFD
            out.append(chr(r))
        elif c == '"' or c < " ":
            return None
        else:
            out.append(c)
            i += 1
    value = "".join(out)
    if not value.isascii():
        # Invalid UTF-8 (seen as lone surrogates) is coerced to U+FFFD, as Go does.
        value = _SURROGATES_RE.sub("\ufffd", value)
    return value


# --- Encoding ------------------------------------------------------------------------------

_NEEDS_QUOTES_RE: Final = re.compile('[\x00-\x20="\ufffd\ud800-\udfff]')
_BAD_KEY_CHARS_RE: Final = re.compile('[\x00-\x20="\ufffd\ud800-\udfff]')
_QUOTE_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_RE: Final = re.compile('[\x00-\x1f\x7f"\\\\\ufffd\ud800-\udfff]')


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    special = _QUOTE_ESCAPES.get(c)
    if special is not None:
        return special
    if c < " " or c == "\x7f":
        return f"\\u{ord(c):04x}"
    return "\\ufffd"


def encode(pairs: Iterable[tuple[str, Any]]) -> str:
    """One logfmt record (no line ending), as go-logfmt's ``Encoder`` writes it.

    A key that is empty or holds a separator, ``=``, ``"`` or U+FFFD raises ``ValueError``
    (the decoder would not read it back); ``None`` writes ``k=``; a value holding any of those
    is quoted and escaped (control characters and DEL as ``\\u00XX``, invalid UTF-8 as
    ``\\ufffd``); the string ``"null"`` is quoted; other values are written with ``str()``.
    """
    parts: list[str] = []
    for key, value in pairs:
        if not key or _BAD_KEY_CHARS_RE.search(key):
            raise ValueError(f"invalid logfmt key {key!r}")
        if value is None:
            v = ""
        else:
            v = value if isinstance(value, str) else _scalar(value)
            if v == "null" and isinstance(value, str):
                v = '"null"'
            elif _NEEDS_QUOTES_RE.search(v):
                v = '"' + _ESCAPE_RE.sub(_escape, v) + '"'
        parts.append(f"{key}={v}")
    return " ".join(parts)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- Parser --------------------------------------------------------------------------------


class LogfmtParser:
    """Parse logfmt lines into fields; ``ts`` and ``level`` from the usual keys.

    Options: ``time_key`` (one key to take the timestamp from, instead of ``ts``, ``time``,
    ``timestamp``, ``t``, ``@timestamp``); ``tz`` for timestamps without a zone;
    ``max_line_bytes`` refuses longer lines (UTF-8 bytes, without the line ending), as
    go-logfmt's decoder does when its buffer is full (``bufio.ErrTooLong``).
    """

    name = "logfmt"

    def __init__(
        self,
        *,
        time_key: str | None = None,
        tz: str | tzinfo = UTC,
        max_line_bytes: int | None = None,
    ) -> None:
        self._time_keys = (time_key,) if time_key else DEFAULT_TIME_KEYS
        self._tz = resolve_tz(tz)
        if max_line_bytes is not None and int(max_line_bytes) < 0:
            raise ValueError("max_line_bytes must be >= 0")
        self._max_line = None if max_line_bytes is None else int(max_line_bytes)

    def parse(self, line: str) -> Parsed:
        """Parse one line; a syntax error keeps no fields and says what and where."""
        if self._max_line is not None and (
            len(line) > self._max_line and _utf8_len(line) > self._max_line
        ):
            return Parsed(error=f"logfmt: line longer than {self._max_line} bytes")
        fields = self._fast_fields(line)
        if fields is None:
            try:
                fields = dict(_scan_exact(line))
            except LogfmtSyntaxError as exc:
                return Parsed(error=f"logfmt: {exc}")
        return Parsed(
            fields=fields,
            ts=ts_from_fields(fields, self._time_keys, self._tz),
            level=level_from_fields(fields),
        )

    @staticmethod
    def _fast_fields(line: str) -> dict[str, Any] | None:
        """``dict(scan(line))`` for a plain line, built in C; else None."""
        parts = _FIELDS_RE.split(line)
        gaps = "".join(parts[::4])
        if gaps and gaps.strip(_SEPARATORS):
            return None
        keys = parts[1::4]
        if not line.isascii() and any(_BAD_KEY_RE.search(k) for k in keys):
            return None
        bare = parts[3::4]
        # zip() without strict=: the lists have equal lengths by construction, and the keyword
        # costs a quarter of the dict's build time on this path.
        fields: dict[str, Any] = dict(zip(keys, bare))  # noqa: B905
        if len(fields) != len(keys) or "" in bare or "\\" in line:
            # A repeated key, an empty value or an escape: the exact, ordered way.
            pairs = _fast_pairs(line)
            return None if pairs is None else dict(pairs)
        if '"' in line:
            # Quoted values, where the bare group is None; an empty quoted value stays None.
            fields.update(filter(_second, zip(keys, parts[2::4])))  # noqa: B905
        return fields
