"""Columnar parsing: a block of whole lines in, columns of results out.

A shipper that reads a chunk of a file gets hundreds of lines at once (``parsers.lines.
LineRun``). Parsing them one by one costs a regex match, a ``Parsed``, a dict and a record per
line, and encoding the dicts one by one costs again. A *block parser* works on the whole block
with a few C-level string operations (``str.split`` over the block, slices with a step,
``map``, ``list.count``) and returns the fields as columns (``FieldColumns``: what
``wharf.batch`` stores). Lines off the strict shape go through the per-line parser, so the
result for every line is the one ``parser.parse(line)`` gives: the tests prove it on the peer
vectors, real logs and generated lines.

Access logs (``clf`` in every format, ``nginx`` formats ``auto``, ``main`` and ``combined``).
The block is split once on ``"``. A line of the strict shape (single blanks, a CLF time, ``q``
quotes: 2 for common, 6 for combined, 8 with nginx's ``"$http_x_forwarded_for"``) then owns
``q`` parts, and the parts between quoted fields are joined back with one ``"`` each and the
line ends marked, which gives per line::

    host ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] " status size " " ... \\n

One ``split(" ")`` of that text gives every line's tokens, ``w`` per line; the block is of
the shape exactly when the slots where the ``"`` and line-end tokens belong hold them (each
such token is the one character alone, so a count of each slot settles it, and as many of
them are found as the text holds, so no line is off by a token). Host, identity, user, time
and numbers are then slices with step ``w``; the quoted fields are slices of the first split.
The time is read once per distinct second and zone (a log repeats its second many times).
Requests are split into method, path and protocol the same way (one split of all of them).

Lines off the shape go line by line and the lines around them on by columns, as slices of
the same parts (no new split). Which lines: a value check names them (a bad time, a ``-``
where nginx wants a number, an empty token); for ``clf``, a backslash in a quoted field
(``ClfParser`` reads escaped quotes on its general path) is looked for in those columns
first. Each cut is made as if every line had the block's quotes, and checked: a newline
where the cut falls, as many lines as expected in each piece; all the block's newlines are
so accounted for, so none hides in a quoted field. A block whose lines do not all have the
same quotes (a cut that fails its check, a total that does not divide) is cut into runs by
counting each line's quotes (and, for ``clf``, backslashes) in one ``bytes.translate``. A
run that fails a check that names no line is halved until the halves pass or are small.
Small runs (fewer than ``_MIN_RUN`` lines of a shape between others, ``_MIN_SPLIT`` when
halving) go line by line, and neighbouring lines that go line by line are parsed together.

JSON (``json``): every line decoded by one reused decoder in one C-level ``map``; lines that
are not JSON objects go line by line. Columns come from one transpose (``zip``) when every
object has the same keys in the same order, else key by key. The first time key's column is
read at once when it holds RFC 3339 UTC times of one layout (the second from
``parse_rfc3339``, once per distinct second; the fraction as integers), and levels come from
the ``level`` column where it holds a known spelling; anything else goes through the same
functions the per-line parser uses, object by object.

Everything here is pure and never raises where the per-line parser does not.
"""

from __future__ import annotations

import operator
import re
from array import array
from collections.abc import Iterable, Sequence
from itertools import chain, compress, groupby, repeat
from typing import Any, Final, Protocol, cast

import msgspec

from parsers._base import Parsed, Parser
from parsers._columns import Block, FieldColumns
from parsers.clf import ClfParser
from parsers.json import JsonParser
from parsers.levels import _SPELLINGS, level_from_fields
from parsers.nginx import NginxParser
from parsers.timestamps import parse_clf, parse_rfc3339, ts_from_fields

__all__ = ["Block", "BlockParser", "FieldColumns", "columnar_for"]


class BlockParser(Protocol):
    """Parses a block of whole lines at once (see the module docstring)."""

    def parse_block(self, blob: bytes, count: int, default_ts: int) -> Block:
        """``count`` lines of valid UTF-8 joined by ``\\n`` (no ``\\r``); ``default_ts`` for
        lines without a timestamp."""
        ...


def columnar_for(parser: Parser) -> BlockParser | None:
    """The block parser that gives ``parser``'s results, if there is one."""
    if isinstance(parser, ClfParser):
        return ClfBlocks(parser)
    if isinstance(parser, NginxParser) and parser.format in _NGINX_SHAPES:
        return NginxBlocks(parser)
    if isinstance(parser, JsonParser):
        return JsonBlocks(parser)
    return None


def per_line(parser: Parser, lines: Sequence[str], default_ts: int) -> Block:
    """The block of ``lines`` parsed one by one (the exact, slow path)."""
    results: list[Parsed] = list(map(parser.parse, lines))
    levels = [p.level for p in results]
    return Block(
        [default_ts if p.ts is None else p.ts for p in results],
        None if levels.count(None) == len(levels) else levels,
        FieldColumns.from_dicts([p.fields for p in results]),
        sum(1 for p in results if p.error is not None),
    )


# -- access logs ----------------------------------------------------------------------------

# A run smaller than this that is not all of the strict shape is parsed line by line rather
# than halved again.
_MIN_SPLIT: Final = 32
# A run of lines of a shape shorter than this, between lines of others, goes line by line:
# making its columns costs more than it saves.
_MIN_RUN: Final = 4
# The strict CLF time, "[dd/Mon/yyyy:HH:MM:SS +zzzz]", as ``parsers.clf``'s fast path cuts it.
_TIME: Final = re.compile(
    r"\[([0-9]{2}/[A-Za-z]{3}/[0-9]{4}:)([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-][0-9]{4})\]",
    re.ASCII,
)
_NS: Final = 1_000_000_000
# Longer numbers take the per-line path, which says whether they fit a field (``count_of``).
_MAX_DIGITS: Final = 18
_TIMES_MAX: Final = 65_536  # distinct seconds remembered per zone (cleared when full)
_ZONES_MAX: Final = 64
_DAYS_MAX: Final = 1024
_NE = operator.ne
# Blanks besides " " that ``re``'s ASCII ``\s`` takes (``ClfParser``'s regexes): a head with
# one is not of the strict shape.
_ASCII_BLANKS: Final = ("\t", "\x0b", "\x0c", "\r")
# ... and that ``str.isspace`` (``str.split()``, ``str.strip()`` and unicode ``\s``) takes.
_SPACE_BLANKS: Final = (*_ASCII_BLANKS, "\x1c", "\x1d", "\x1e", "\x1f")
_INTS: Final = msgspec.json.Decoder(list[int]).decode
# What JSON takes in an integer array besides digits and commas: signs and blanks.
_NOT_IN_DIGITS: Final = ("-", " ", "\t", "\n", "\r")
# What a block is cut into, in order: lines by columns, or lines to parse one by one.
_Pieces = list[Block | list[str]]


def _delete_all_but(keep: bytes) -> bytes:
    """The ``bytes.translate`` deletion table that keeps only the bytes of ``keep``."""
    return bytes(b for b in range(256) if b not in keep)


class _AccessBlocks:
    """What ``ClfBlocks`` and ``NginxBlocks`` share: cutting a block into lines of a strict
    shape (see the module docstring) and the time of each. A subclass says which quote counts
    it takes (``shapes``), whether text after the last quoted field it reads is ignored
    (``rests``), and turns one run's parts into columns (``_fields``)."""

    shapes: frozenset[int]
    rests: bool

    def __init__(self, parser: Parser, strict: bool, signature: bytes) -> None:
        self.parser = parser
        self._strict = strict  # else every block goes line by line
        self._delete = _delete_all_but(signature)
        self._kinds = {b'"' * q: q for q in self.shapes}  # a line's signature -> its shape
        self._strip_rests = False  # the last block had text after its fields (clf only)
        self._zones: dict[str, dict[str, int]] = {}  # zone -> "[dd/Mon/yyyy:HH:MM:SS" -> ns
        self._days: dict[str, int | None] = {}

    def parse_block(self, blob: bytes, count: int, default_ts: int) -> Block:
        text = blob.decode("utf-8", "replace")
        if not self._strict or count == 0:
            return per_line(self.parser, text.split("\n"), default_ts)
        parts = text.split('"')
        q, r = divmod(len(parts) - 1, count)
        if not r and q in self.shapes:
            # As if every line had q quotes; each cut made so is checked (``_Misaligned``).
            out: _Pieces = []
            try:
                off = self._off_at_once(text, parts, count, q)
                if off:
                    self._around(parts, count, q, off, out)
                else:
                    self._bisect(parts, count, q, out, halve=False)
                return self._assemble(out, default_ts)
            except _Misaligned:
                pass
        out = []
        try:
            self._runs(blob, parts, count, out)
        except _Misaligned:  # not expected (the runs' counts are exact): the text decides
            return per_line(self.parser, text.split("\n"), default_ts)
        return self._assemble(out, default_ts)

    def _assemble(self, pieces: _Pieces, default_ts: int) -> Block:
        """The block of ``pieces`` in order, neighbouring lines parsed one by one together."""
        blocks: list[Block] = []
        lines: list[str] = []
        for piece in pieces:
            if isinstance(piece, Block):
                if lines:
                    blocks.append(per_line(self.parser, lines, default_ts))
                    lines = []
                blocks.append(piece)
            else:
                lines += piece
        if lines:
            blocks.append(per_line(self.parser, lines, default_ts))
        return Block.concat(blocks)

    def _off_at_once(self, text: str, parts: list[str], k: int, q: int) -> list[int]:
        """Lines known to go line by line before any column is made, if every line of the
        block has ``q`` quotes."""
        return []

    def _runs(self, blob: bytes, parts: list[str], k: int, out: _Pieces) -> None:
        """The block cut into runs of lines of one shape (and the others), each run by
        columns and the others line by line."""
        sigs = blob.translate(None, self._delete).split(b"\n")
        if len(sigs) != k:  # not the lines the caller says: trust the text
            out.append(blob.decode("utf-8", "replace").split("\n"))
            return
        kinds = list(map(self._kinds.get, sigs))  # a line's shape, None if it has none
        spans = _spans(kinds)
        start = 0  # the part in which the span's first line starts
        for r, (i, j, kind) in enumerate(spans):
            if kind is None:
                end = start + sum(map(bytes.count, sigs[i:j], repeat(b'"')))
            else:
                end = start + kind * (j - i)
            sub = parts[start : end + 1]
            # Cut off the lines before and after. Of two neighbouring spans at least one is of
            # a shape, and a line of a shape holds no newline outside its quotes: the newline
            # between them is the first of their shared part if the span before is of a shape,
            # else the last.
            if i > 0:
                prev_good = spans[r - 1][2] is not None
                sub[0] = (sub[0].partition if prev_good else sub[0].rpartition)("\n")[2]
            if j < k:
                good = kind is not None
                sub[-1] = (sub[-1].partition if good else sub[-1].rpartition)("\n")[0]
            if kind is None or j - i < _MIN_RUN:
                out.append(_lines(sub, j - i))
            else:
                self._bisect(sub, j - i, kind, out)
            start = end

    def _bisect(
        self, parts: list[str], k: int, q: int, out: _Pieces, *, halve: bool = True
    ) -> None:
        """``_columns`` of ``k`` lines of ``q`` quotes each. If some lines are off the strict
        shape, those that a check names go line by line and the others on; if no check names
        them, each half again (unless not to ``halve``: then ``_Misaligned``, for the caller
        to cut the block by each line's quotes), down to ``_MIN_SPLIT`` lines, which go line
        by line."""
        got = self._columns(parts, k, q)
        if isinstance(got, Block):
            out.append(got)
        elif got:
            self._around(parts, k, q, got, out)
        elif not halve:
            raise _Misaligned
        elif k < _MIN_SPLIT:
            out.append(_lines(parts, k))
        else:
            mid = k // 2
            left, right = parts[: q * mid + 1], parts[q * mid :]
            left[-1], right[0] = _before_newline(left[-1]), _after_newline(right[0])
            self._bisect(left, mid, q, out)
            self._bisect(right, k - mid, q, out)

    def _around(self, parts: list[str], k: int, q: int, off: list[int], out: _Pieces) -> None:
        """The ``k`` lines of ``parts`` (``q`` quotes each), lines ``off`` line by line and
        the runs between them by ``_bisect``."""
        spans: list[tuple[int, int, bool]] = []  # start, end, of the shape
        i = 0
        for b in sorted(set(off)):
            if b > i:
                spans.append((i, b, True))
            if spans and not spans[-1][2] and spans[-1][1] == b:
                spans[-1] = (spans[-1][0], b + 1, False)
            else:
                spans.append((b, b + 1, False))
            i = b + 1
        if i < k:
            spans.append((i, k, True))
        for start, end, good in spans:
            # Lines of ``q`` quotes: each part between two lines holds their one newline.
            sub = parts[q * start : q * end + 1]
            if start > 0:
                sub[0] = _after_newline(sub[0])
            if end < k:
                sub[-1] = _before_newline(sub[-1])
            if good and end - start >= _MIN_RUN:
                self._bisect(sub, end - start, q, out)
            else:
                out.append(_lines(sub, end - start))

    def _columns(self, parts: list[str], k: int, q: int) -> Block | list[int] | None:
        """The block as columns if its ``k`` lines (``parts``: split on ``"``, ``q * k + 1``
        of them) are all of the strict shape with ``q`` quotes; else the lines a check found
        off it (maybe not all), or ``None`` if the check cannot say which."""
        evens = parts[0::2]
        if q > 6 and self.rests:
            del evens[3 :: q // 2]  # only three quoted fields are read: the rest is ignored
            q_read = 6
        else:
            q_read = q
        e = q_read // 2  # even parts per line
        # Text after the last quoted field (Apache's %D, ...) is ignored by ``clf`` where
        # its regex reads referrer and agent; the last block says whether to expect it.
        rests = self.rests and q >= 6
        strip = rests and self._strip_rests
        tokens = self._tokens(_without_rests(evens, k, e) if strip else evens, k, e)
        if tokens is None and rests:
            tokens = self._tokens(evens if strip else _without_rests(evens, k, e), k, e)
            if tokens is not None:
                self._strip_rests = not strip
        if tokens is None:
            return self._layout_off(_without_rests(evens, k, e) if rests else evens, k, e)
        head, w = tokens
        times, zones = head[3::w], head[4::w]
        ts = self._timestamps(times, zones)
        if ts is None:
            return self._bad_times(times, zones)
        return self._fields(parts, k, q, head, w, ts)

    def _tokens(self, evens: list[str] | None, k: int, e: int) -> tuple[list[str], int] | None:
        """The tokens of the text outside the quotes, ``w`` per line, if every line is of
        the strict shape there (see the module docstring)."""
        if evens is None:
            return None
        bare = '"'.join(evens)
        if not self._blanks_ok(bare):
            return None
        tokens = bare.replace("\n", " \n ").split(" ")
        w = e + 8  # host ident user [time zone] " status size, e - 1 more quotes, line end
        if (
            len(tokens) != w * k - 1
            or tokens[w - 1 :: w].count("\n") != k - 1
            or tokens[5::w].count('"') != k
            or any(tokens[s::w].count('"') != k for s in range(8, w - 1))
        ):
            return None
        return tokens, w

    def _layout_off(self, evens: list[str] | None, k: int, e: int) -> list[int]:
        """Lines whose text outside the quotes has too many or too few blanks, or other
        blanks, when ``_tokens`` refuses the block (empty if none is found)."""
        if evens is None:
            return []
        bare = '"'.join(evens)
        lines = bare.split("\n")
        if len(lines) != k:
            return []
        blanks = e + 6  # between the w - 1 tokens of a line
        off = [i for i, n in enumerate(map(str.count, lines, repeat(" "))) if n != blanks]
        if not self._blanks_ok(bare):
            off += [i for i, line in enumerate(lines) if not self._blanks_ok(line)]
        return off

    def _blanks_ok(self, bare: str) -> bool:
        """Whether the text outside the quotes has no blank but " " and the line ends (the
        regexes' ``\\S`` would stop at one): ASCII ``\\s`` for ``clf``."""
        return not any(b in bare for b in _ASCII_BLANKS)

    def _fields(
        self, parts: list[str], k: int, q: int, head: list[str], w: int, ts: list[int]
    ) -> Block | list[int]:
        """The columns of the lines, whose tokens outside the quotes are ``head`` (``w`` per
        line) and whose times are ``ts``; or the lines whose values are off the shape."""
        raise NotImplementedError

    def _bad_times(self, times: list[str], zones: list[str]) -> list[int]:
        """The lines whose time ``_time`` does not take."""
        memo: dict[str, bool] = {}
        off = []
        for i, key in enumerate(map(" ".join, zip(times, zones, strict=True))):
            ok = memo.get(key)
            if ok is None:
                ok = memo[key] = self._time(key) is not None
            if not ok:
                off.append(i)
        return off

    def _timestamps(self, times: list[str], zones: list[str]) -> list[int] | None:
        """Each line's ts from its "[dd/Mon/yyyy:HH:MM:SS" and "+zzzz]" tokens, or ``None`` if
        one is not a time the fast path takes."""
        zone = zones[0]
        if zones.count(zone) == len(zones):
            return self._zone_timestamps(times, zone)
        out: list[int] = []
        for z, group in groupby(zip(zones, times, strict=True), operator.itemgetter(0)):
            got = self._zone_timestamps([t for _, t in group], z)
            if got is None:
                return None
            out += got
        return out

    def _zone_timestamps(self, times: list[str], zone: str) -> list[int] | None:
        """``_timestamps`` of lines that all have ``zone``."""
        cache = self._zones.get(zone)
        if cache is None:
            if len(self._zones) >= _ZONES_MAX:
                self._zones.clear()
            cache = self._zones[zone] = {}
        try:
            return list(map(cache.__getitem__, times))
        except KeyError:
            pass
        missing = set(times).difference(cache)
        if len(cache) + len(missing) > _TIMES_MAX:
            cache.clear()
            missing = set(times)
        for t in missing:
            ns = self._time(t + " " + zone)
            if ns is None:
                return None
            cache[t] = ns
        return list(map(cache.__getitem__, times))

    def _time(self, key: str) -> int | None:
        """The ts of one "[time zone]", or ``None`` to leave the line to the parser."""
        raise NotImplementedError


class _Misaligned(Exception):
    """Lines were cut where they do not end: the block's lines do not all have the quotes
    they were taken to have."""


def _after_newline(part: str) -> str:
    """What follows the first newline of ``part``, which must have one."""
    _, newline, after = part.partition("\n")
    if not newline:
        raise _Misaligned
    return after


def _before_newline(part: str) -> str:
    """What precedes the first newline of ``part``, which must have one."""
    before, newline, _ = part.partition("\n")
    if not newline:
        raise _Misaligned
    return before


def _lines(parts: list[str], k: int) -> list[str]:
    """The text of ``parts`` (split on quotes), which must be ``k`` lines, line by line."""
    lines = '"'.join(parts).split("\n")
    if len(lines) != k:
        raise _Misaligned
    return lines


def _spans(kinds: list[int | None]) -> list[tuple[int, int, int | None]]:
    """The runs of equal ``kinds``: (first line, end, kind). Lines of one shape but a few are
    found with C-level ``list.index``; other blocks with ``groupby``."""
    k = len(kinds)
    spans: list[tuple[int, int, int | None]] = []
    main = next((kind for kind in kinds if kind is not None), None)
    if main is None or kinds.count(main) + kinds.count(None) != k:
        i = 0
        for kind, group in groupby(kinds):
            n = len(list(group))
            spans.append((i, i + n, kind))
            i += n
        return spans
    i = 0
    while i < k:
        try:
            b = kinds.index(None, i)
        except ValueError:
            b = k
        if b > i:
            spans.append((i, b, main))
        e = b
        while e < k and kinds[e] is None:
            e += 1
        if e > b:
            spans.append((b, e, None))
        i = e
    return spans


def _without_rests(evens: list[str], k: int, e: int) -> list[str] | None:
    """``evens`` (``e`` per line) without the text after each line's last quote, or ``None``
    if a line's last part holds no newline."""
    inner = evens[e : e * k : e]
    _, seps, heads = (
        zip(*map(str.partition, inner, repeat("\n")), strict=True) if inner else ((), (), ())
    )
    if "" in seps:
        return None
    out = list(evens)
    out[e : e * k : e] = map("\n".__add__, heads)
    out[-1] = ""
    return out


# -- clf ------------------------------------------------------------------------------------

# Quote counts per line of the strict shape, by format: common lines have the request, combined
# ones also referrer and agent, and whatever follows the agent (nginx's quoted
# "$http_x_forwarded_for", Apache's %D) is ignored, as ``ClfParser`` does.
_CLF_SHAPES: Final = {
    "common": frozenset({2}),
    "combined": frozenset({6, 8}),
    "auto": frozenset({2, 6, 8}),
}


class ClfBlocks(_AccessBlocks):
    """``ClfParser`` (every format) a block at a time. Lines with a backslash go line by
    line: ``ClfParser`` reads escaped quotes on its general path."""

    rests = True

    def __init__(self, parser: ClfParser) -> None:
        self.shapes = _CLF_SHAPES[parser.format]
        # The fast shape needs the default CLF time (``ClfParser``'s own fast path does).
        super().__init__(parser, parser._fast is not None, b'"\n\\')

    def _off_at_once(self, text: str, parts: list[str], k: int, q: int) -> list[int]:
        """The lines with a backslash in the request, referrer or agent, which
        ``ClfParser`` leaves to its general path (escaped quotes)."""
        if "\\" not in text:
            return []
        quoted = (1, 3, 5) if q >= 6 else (1,)
        off: set[int] = set()
        for c in quoted:
            column = parts[c::q]
            if "\\" in "".join(column):
                off.update(i for i, value in enumerate(column) if "\\" in value)
        return sorted(off)

    def _time(self, key: str) -> int | None:
        """``ClfParser._parse_fast``'s ts for one "[time zone]", or ``None``."""
        m = _TIME.fullmatch(key)
        if m is None:
            return None
        day, hh, mm, sec, zone = m.groups()
        dkey = day + " " + zone
        base = self._days.get(dkey, -1)
        if base == -1:
            if len(self._days) >= _DAYS_MAX:
                self._days.clear()
            base = self._days[dkey] = parse_clf(day + "00:00:00 " + zone)
        h, mi, s = int(hh), int(mm), int(sec)
        if base is None or h > 23 or mi > 59 or s > 60:
            return None
        return base + (h * 3600 + mi * 60) * _NS + s * _NS

    def _fields(
        self, parts: list[str], k: int, q: int, head: list[str], w: int, ts: list[int]
    ) -> Block | list[int]:
        hosts, idents, users = head[0::w], head[1::w], head[2::w]
        if "" in hosts or "" in idents or "" in users:
            return _off(bool, hosts, idents, users)
        statuses, sizes = head[6::w], head[7::w]
        status_of = _numbers(statuses)
        if status_of is None:
            return _off(_dash_or_digits, statuses)
        builder = _Columns(k)
        builder.add("host", hosts)
        builder.add("identity", idents)
        builder.add("user", users)
        builder.add_request(parts[1::q])
        builder.add("status", statuses, status_of)
        if not builder.add_ints("size", sizes):
            return _off(_dash_or_digits, sizes)
        if q >= 6:
            builder.add("referrer", parts[3::q])
            builder.add("agent", parts[5::q])
        return Block(ts, None, builder.result(), 0)


def _numbers(tokens: list[str]) -> dict[str, int | None] | None:
    """Each distinct token of a ``(-|[0-9]+)`` column with its value (``None`` for "-"), or
    ``None`` if a token is neither."""
    out: dict[str, int | None] = {}
    for t in set(tokens):
        if t == "-":
            out[t] = None
        elif len(t) <= _MAX_DIGITS and t.isascii() and t.isdigit():
            out[t] = int(t)
        else:
            return None
    return out


def _ints(tokens: list[str]) -> list[int] | None:
    """The values of a column of ASCII digits, or ``None`` if a token is something else (or
    longer than ``_MAX_DIGITS``)."""
    if max(map(len, tokens), default=0) > _MAX_DIGITS:
        return None
    text = ",".join(tokens)
    if not any(c in text for c in _NOT_IN_DIGITS):
        # One JSON array: a C-level parse of every number at once. JSON takes only digits
        # here (no sign, blank, fraction or exponent is left); a leading zero or an empty
        # token is not JSON, and a comma in a token makes too many numbers.
        try:
            values = _INTS("[" + text + "]")
        except msgspec.DecodeError:
            pass
        else:
            if len(values) == len(tokens):
                return values
    digits = "".join(tokens)
    if not (digits.isascii() and digits.isdigit()) or "" in tokens:
        return None
    try:
        return list(map(int, tokens))
    except ValueError:  # past ``int``'s digit limit: the per-line parser has the last word
        return None


def _off(ok: Any, *columns: list[str]) -> list[int]:
    """The lines where ``ok`` is false for the token of one of ``columns``."""
    return [i for i, tokens in enumerate(zip(*columns, strict=True)) if not all(map(ok, tokens))]


def _digits(token: str) -> bool:
    return len(token) <= _MAX_DIGITS and token.isascii() and token.isdigit()


def _dash_or_digits(token: str) -> bool:
    return token == "-" or _digits(token)


def _valid_method(method: str) -> bool:
    """``parsers.clf._split_request``'s test of a method (``\\w+``)."""
    return method.isalnum() or method.replace("_", "a").isalnum()


# -- nginx ----------------------------------------------------------------------------------

# Quote counts per line, by format: the third quoted field after the agent is
# "$http_x_forwarded_for" (``main``, optional in ``auto``) or compression (``combined``).
_NGINX_SHAPES: Final = {
    "auto": frozenset({6, 8}),
    "main": frozenset({8}),
    "combined": frozenset({6, 8}),
}
# Field names: ``auto`` and ``main`` use nginx's variable names, ``combined`` VRL's.
_NGINX_NAMES: Final = {
    "main": (
        "remote_addr",
        "remote_user",
        "request",
        "status",
        "body_bytes_size",
        "http_referer",
        "http_user_agent",
        "http_x_forwarded_for",
    ),
    "combined": ("client", "user", "request", "status", "size", "referer", "agent", "compression"),
}


class NginxBlocks(_AccessBlocks):
    """``NginxParser`` (formats ``auto``, ``main``, ``combined``) a block at a time, for access
    lines of the strict shape with nothing after the last quoted field."""

    rests = False

    def __init__(self, parser: NginxParser) -> None:
        self.shapes = _NGINX_SHAPES[parser.format]
        self.format = parser.format
        self._names = _NGINX_NAMES["combined" if parser.format == "combined" else "main"]
        super().__init__(parser, True, b'"\n')

    def _blanks_ok(self, bare: str) -> bool:
        # nginx's regexes read ``\s`` and ``\S`` as unicode.
        if bare.isascii():
            return not any(b in bare for b in _SPACE_BLANKS)
        return not any(map(str.isspace, set(bare).difference(" \n")))

    def _time(self, key: str) -> int | None:
        """``NginxParser``'s ts for one "[time zone]" of the strict shape, or ``None``."""
        if _TIME.fullmatch(key) is None:
            return None
        return parse_clf(key[1:-1])

    def _fields(
        self, parts: list[str], k: int, q: int, head: list[str], w: int, ts: list[int]
    ) -> Block | list[int]:
        hosts, idents, users = head[0::w], head[1::w], head[2::w]
        if "" in hosts or "" in users or idents.count("-") != k:
            return _off(bool, hosts, users) + _off("-".__eq__, idents)
        if self.format == "auto" and "/" in "".join(hosts):
            # It might look like an error line ("2019/10/10 ..."): line by line.
            return [i for i, host in enumerate(hosts) if "/" in host]
        statuses = _ints(head[6::w])
        sizes = _ints(head[7::w])
        if statuses is None or sizes is None:
            return _off(_digits, head[6::w], head[7::w])
        referrers, agents = parts[3::q], parts[5::q]
        last = parts[7::q] if q == 8 else None
        if self.format == "main" and "" in agents:
            return _off(bool, agents)  # ``[^"]+``: the line is not of the format
        if last is not None and "" in last:
            return _off(bool, last)
        n = self._names
        builder = _Columns(k)
        builder.add(n[0], hosts)
        builder.add(n[1], users)
        builder.add_all(n[2], parts[1::q])
        builder.add_all(n[3], statuses)
        builder.add_all(n[4], sizes)
        if self.format == "combined":  # VRL keeps "-" in these two
            builder.add_all(n[5], referrers)
            builder.add_all(n[6], agents)
        else:
            builder.add(n[5], referrers)
            builder.add(n[6], agents)
        if last is not None:
            builder.add(n[7], last)
        return Block(ts, None, builder.result(), 0)


# -- columns --------------------------------------------------------------------------------


class _Columns:
    """The columns of a block of ``count`` lines, key by key, and which lines have each key:
    every line, or those a presence byte string says (one byte per line, 0 or 1)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.keys: list[str] = []
        self.values: dict[str, list[Any]] = {}
        self.partial: dict[str, bytes] = {}  # key -> presence, for keys some lines lack

    def _set(self, name: str, values: list[Any], present: bytes | None) -> None:
        """``values`` (one per line that has the key), on the lines ``present`` says
        (``None``: all)."""
        self.keys.append(name)
        self.values[name] = values
        if present is not None:
            self.partial[name] = present

    def add_all(self, name: str, values: list[Any]) -> None:
        """A column every line has."""
        self._set(name, values, None)

    def add(
        self, name: str, tokens: list[str], numbers: dict[str, int | None] | None = None
    ) -> None:
        """A column of texts where "-" means absent (``numbers``: their values instead)."""
        absent = tokens.count("-")
        if absent == len(tokens):
            return
        present = None if not absent else bytes(map(_NE, tokens, repeat("-")))
        kept = tokens if present is None else list(compress(tokens, present))
        self._set(name, kept if numbers is None else list(map(numbers.__getitem__, kept)), present)

    def add_ints(self, name: str, tokens: list[str]) -> bool:
        """A column of ASCII digits where "-" means absent; ``False`` if a token is neither."""
        absent = tokens.count("-")
        if absent == len(tokens):
            return True
        present = None if not absent else bytes(map(_NE, tokens, repeat("-")))
        values = _ints(tokens if present is None else list(compress(tokens, present)))
        if values is None:
            return False
        self._set(name, values, present)
        return True

    def add_request(self, raw: list[str]) -> None:
        """``message`` (the request, stripped; "-" is absent) and method, path and protocol
        where it has three parts and a method (``parsers.clf._split_request``)."""
        joined = " \n ".join(raw)
        if joined.isascii() and not any(b in joined for b in _SPACE_BLANKS):
            # "METHOD PATH PROTOCOL" with single blanks and nothing around: one split for the
            # block, the same parts as ``str.split(None, 2)`` of each, nothing to strip.
            tokens = joined.split(" ")
            k = len(raw)
            # No empty token: no blank doubled, none at either end of a request (one at the
            # start of the first makes an empty method, which is not one).
            if (
                "  " not in joined
                and joined[-1:] != " "
                and len(tokens) == 4 * k - 1
                and tokens[3::4].count("\n") == k - 1
            ):
                methods = tokens[0::4]
                if all(map(_valid_method, set(methods))):
                    self._set("message", raw, None)
                    self._set("method", methods, None)
                    self._set("path", tokens[1::4], None)
                    self._set("protocol", tokens[2::4], None)
                    return
        requests = list(map(str.strip, raw))
        self.add("message", requests)
        split = list(map(str.split, requests, repeat(None), repeat(2)))
        present = bytes(len(s) == 3 and _valid_method(s[0]) for s in split)
        kept = list(compress(split, present))
        if not kept:
            return
        methods, paths, protocols = map(list, zip(*kept, strict=True))
        flags = None if len(kept) == len(split) else present
        self._set("method", methods, flags)
        self._set("path", paths, flags)
        self._set("protocol", protocols, flags)

    def result(self) -> FieldColumns:
        """The columns, with each line's shape: which of the partial keys it has, as a bit
        mask, added up for all lines at once in one big integer (presence bytes shifted to
        their bit) when there are at most 8 partial keys."""
        keys, partial, n = self.keys, self.partial, self.count
        if not partial:
            return FieldColumns([tuple(keys)], array("I", bytes(4 * n)), self.values)
        bits = {name: i for i, name in enumerate(partial)}
        masks: Iterable[int]
        if len(partial) <= 8:
            total = 0
            for name, present in partial.items():
                total += int.from_bytes(present, "little") << bits[name]
            masks = total.to_bytes(n, "little")
        else:
            masks = [0] * n
            for name, present in partial.items():
                masks = list(
                    map(operator.or_, masks, map(operator.lshift, present, repeat(bits[name])))
                )
        index: dict[int, int] = {}
        shapes: list[tuple[str, ...]] = []
        for mask in dict.fromkeys(masks):  # first-seen order: the same batch every time
            index[mask] = len(shapes)
            shapes.append(tuple(k for k in keys if k not in bits or mask >> bits[k] & 1))
        if isinstance(masks, bytes):
            table = bytearray(256)
            for mask, code in index.items():
                table[mask] = code
            codes = array("I", array("B", masks.translate(table)))
        else:
            codes = array("I", map(index.__getitem__, masks))
        return FieldColumns(shapes, codes, self.values)


# -- json -----------------------------------------------------------------------------------

_ABSENT: Final = object()
# RFC 3339 times in UTC ("...Z") of one layout are read as a column when their seconds are
# at least a second before the end of int64 nanoseconds (a fraction cannot carry one past it;
# ``parse_rfc3339`` rejects seconds before its start).
_RFC3339_NS_MAX: Final = 2**63 - 1 - _NS
_SECONDS_MAX: Final = 65_536


class JsonBlocks:
    """``JsonParser`` a block at a time (see the module docstring)."""

    def __init__(self, parser: JsonParser) -> None:
        self.parser = parser
        self._decode = msgspec.json.Decoder().decode
        self._seconds: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> ns, valid ones only

    def parse_block(self, blob: bytes, count: int, default_ts: int) -> Block:
        parts = blob.split(b"\n")
        try:
            objs = list(map(self._decode, parts))
        except (msgspec.DecodeError, RecursionError):
            objs = None
        if objs is None or set(map(type, objs)) != {dict} or len(objs) != count:
            return self._mixed(parts, default_ts)
        return self._objects(objs, default_ts)

    def _mixed(self, parts: list[bytes], default_ts: int) -> Block:
        """Runs of lines that are JSON objects by columns, the others line by line."""
        objs: list[Any] = []
        for part in parts:
            try:
                objs.append(self._decode(part))
            except (msgspec.DecodeError, RecursionError):
                objs.append(None)
        blocks: list[Block] = []
        i = 0
        for is_dict, group in groupby(map(operator.is_, map(type, objs), repeat(dict))):
            j = i + len(list(group))
            if is_dict:
                blocks.append(self._objects(objs[i:j], default_ts))
            else:
                lines = [p.decode("utf-8", "replace") for p in parts[i:j]]
                blocks.append(per_line(self.parser, lines, default_ts))
            i = j
        return Block.concat(blocks)

    def _objects(self, objs: list[dict[str, Any]], default_ts: int) -> Block:
        fields = _dict_columns(objs)
        ts = self._timestamps(objs, fields)
        levels = self._levels(objs, fields)
        return Block(
            [default_ts if t is None else t for t in ts] if None in ts else cast("list[int]", ts),
            None if levels.count(None) == len(levels) else levels,
            fields,
            0,
        )

    def _timestamps(self, objs: list[dict[str, Any]], fields: FieldColumns) -> list[int | None]:
        """``ts_from_fields`` of each object: the first time key's column at once where it
        can be, the objects it leaves one by one."""
        keys, tz = self.parser._time_keys, self.parser._tz
        names = set(chain.from_iterable(fields.shapes))
        key = next((k for k in keys if k in names), None)
        if key is None:
            return [None] * len(objs)
        if len(fields.shapes) == 1:
            column = fields.values[key]
        else:
            column = list(map(dict.get, objs, repeat(key)))
        ts = self._rfc3339_column(column)
        if ts is None:
            return [ts_from_fields(o, keys, tz) for o in objs]
        if None in ts:
            for i in [i for i, t in enumerate(ts) if t is None]:
                ts[i] = ts_from_fields(objs[i], keys, tz)
        return ts

    def _rfc3339_column(self, column: list[Any]) -> list[int | None] | None:
        """``parse_rfc3339`` of each value, if all are texts "YYYY-MM-DDTHH:MM:SS[.f...]Z" of
        one length (at most nine fraction digits), else ``None``."""
        if set(map(type, column)) != {str}:
            return None
        lengths = set(map(len, column))
        if len(lengths) != 1:
            return None
        size = lengths.pop()
        if size < 20 or size == 21 or size > 30:  # 21: "." without digits
            return None
        seconds: list[str] = list(map(operator.getitem, column, repeat(slice(0, 19))))
        bases = self._bases(seconds)  # each second's ns minus a second
        if bases is None:
            return None
        k, m = len(column), size - 19
        tails = "".join(map(operator.getitem, column, repeat(slice(19, None))))
        if size == 20:
            if tails != "Z" * k:
                return None
            return list(map(operator.add, bases, repeat(_NS)))
        # Every tail is "." n digits "Z": the dots and the zones where they belong, and no
        # other. Then one JSON array reads all fractions: ".123456Z" becomes 1123456000, a
        # second and the fraction's ns (leading zeros are not JSON; this has none), which
        # the bases are short of. A fraction that is not all digits is not a JSON integer,
        # or makes more of them than there are times.
        if tails[0::m] != "." * k or tails[m - 1 :: m] != "Z" * k or tails.count(".") != k:
            return None
        numbers = tails.replace(".", "1").replace("Z", "0" * (30 - size) + ",")
        try:
            ns = _INTS("[" + numbers[:-1] + "]")
        except msgspec.DecodeError:
            return None
        if len(ns) != k:
            return None
        return list(map(operator.add, bases, ns))

    def _bases(self, seconds: list[str]) -> list[int] | None:
        """Each "YYYY-MM-DDTHH:MM:SS" as ns (``parse_rfc3339`` of it in UTC) minus a second,
        or ``None`` if one is not such a time within the column's range."""
        cache = self._seconds
        try:
            return list(map(cache.__getitem__, seconds))
        except KeyError:
            pass
        missing = set(seconds).difference(cache)
        if len(cache) + len(missing) > _SECONDS_MAX:
            cache.clear()
            missing = set(seconds)
        for s in missing:
            ns = parse_rfc3339(s + "Z")
            if ns is None or ns > _RFC3339_NS_MAX:
                return None
            cache[s] = ns - _NS
        return list(map(cache.__getitem__, seconds))

    def _levels(self, objs: list[dict[str, Any]], fields: FieldColumns) -> list[str | None]:
        """``level_from_fields`` of each object: the ``level`` column's known spellings at
        once, the objects it leaves one by one."""
        if len(fields.shapes) == 1 and "level" in fields.values:
            column = fields.values["level"]
            if set(map(type, column)) == {str}:
                levels: list[str | None] = list(map(_SPELLINGS.get, column))
                if None in levels:
                    for i in [i for i, v in enumerate(levels) if v is None]:
                        levels[i] = level_from_fields(objs[i])
                return levels
        return list(map(level_from_fields, objs))


def _dict_columns(objs: list[dict[str, Any]]) -> FieldColumns:
    """``FieldColumns.from_dicts(objs)``, column by column."""
    n = len(objs)
    if not n:
        return FieldColumns.from_dicts(objs)
    shapes_of = list(map(tuple, objs))
    names = shapes_of[0]
    # Equal tuples of the decoder's cached key strings compare by identity: no hashing.
    if shapes_of.count(names) == n:
        columns = map(list, zip(*map(dict.values, objs), strict=True)) if names else iter(())
        return FieldColumns(
            [names], array("I", bytes(4 * n)), dict(zip(names, columns, strict=True))
        )
    index = dict.fromkeys(shapes_of, 0)
    shapes = list(index)
    for code, shape in enumerate(shapes):
        index[shape] = code
    codes = array("I", map(index.__getitem__, shapes_of))
    everywhere = set(shapes[0]).intersection(*shapes[1:])
    values: dict[str, list[Any]] = {}
    for name in dict.fromkeys(chain.from_iterable(shapes)):
        if name in everywhere:
            values[name] = list(map(operator.itemgetter(name), objs))
        else:
            got = list(map(dict.get, objs, repeat(name), repeat(_ABSENT)))
            values[name] = [v for v in got if v is not _ABSENT]
    return FieldColumns(shapes, codes, values)
