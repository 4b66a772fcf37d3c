"""Columnar parsing: a block of whole lines in, columns of results out.

A shipper that reads a chunk of a file gets hundreds of lines at once (``parsers.lines.
LineRun``). Parsing them one by one costs a regex match, a ``Parsed``, a dict and a record per
line, and encoding the dicts one by one costs again. A *block parser* works on the whole block:
it splits it with a few C-level string operations (``str.split`` over the block, slices with
a step, ``map``), checks the block's shape the same way, and returns the fields as columns
(``FieldColumns``: what ``wharf.batch`` stores). Lines off the strict shape go through the
per-line parser, so the result for every line is the one ``parser.parse(line)`` gives: the
tests prove it on the peer vectors and on generated lines.

- ``clf`` (formats ``auto`` and ``combined``, default timestamp): the block is split on ``"``
  once; each line of the shape Apache and nginx write (single blanks, six quotes, a CLF time,
  no backslash) becomes columns without a per-line Python step. ``common`` lines, escaped
  quotes, odd spacing and bad times fall back, line by line, to ``ClfParser.parse``.
- ``json``: every line decoded by one reused decoder in one C-level ``map`` over the block's
  lines; a block with a line that is not a JSON object falls back to ``JsonParser.parse`` for
  its lines. Timestamps and levels come from the same functions the per-line parser uses.

Everything here is pure and never raises on any input.
"""

from __future__ import annotations

import operator
import re
from array import array
from collections.abc import Iterable, Sequence
from itertools import compress, repeat
from typing import Any, Final, Protocol

import msgspec

from parsers._base import Parsed, Parser
from parsers._columns import Block, FieldColumns
from parsers.clf import ClfParser
from parsers.json import JsonParser
from parsers.levels import level_from_fields
from parsers.timestamps import parse_clf, ts_from_fields

__all__ = ["Block", "BlockParser", "FieldColumns", "columnar_for"]


class BlockParser(Protocol):
    """Parses a block of whole lines at once (see the module docstring)."""

    def parse_block(self, blob: bytes, count: int, default_ts: int) -> Block:
        """``count`` lines of valid UTF-8 joined by ``\\n`` (no ``\\r``); ``default_ts`` for
        lines without a timestamp."""
        ...


def columnar_for(parser: Parser) -> BlockParser | None:
    """The block parser that gives ``parser``'s results, if there is one."""
    if isinstance(parser, ClfParser) and parser.format in ("auto", "combined"):
        return ClfBlocks(parser)
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


# -- clf ------------------------------------------------------------------------------------

# A block smaller than this that is not all of the strict shape is parsed line by line rather
# than split in two again (see ``ClfBlocks``).
_MIN_SPLIT: Final = 32
# The strict CLF time of the fast path, as ``parsers.clf`` cuts it: "[dd/Mon/yyyy:HH:MM:SS"
# and "+zzzz]", joined by the blank between them.
_TIME: Final = re.compile(
    r"\[([0-9]{2}/[A-Za-z]{3}/[0-9]{4}:)([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-][0-9]{4})\]",
    re.ASCII,
)
_TIME_SLICE: Final = slice(-29, -1)  # where "[time zone]" sits in a head of the shape
_NS: Final = 1_000_000_000
_TIMES_MAX: Final = 65_536  # distinct seconds remembered (cleared when full)
_DAYS_MAX: Final = 1024
# Blanks the fast path's ``\S`` excludes besides " " (lines hold no "\n" or "\r").
_OTHER_BLANKS: Final = ("\t", "\x0b", "\x0c")
_NE = operator.ne
# ASCII characters ``str.split()`` takes for whitespace, besides " " (requests are stripped).
_REQUEST_BLANKS: Final = ("\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f")


class ClfBlocks:
    """``ClfParser`` (formats ``auto``, ``combined``) a block at a time."""

    def __init__(self, parser: ClfParser) -> None:
        self.parser = parser
        # The fast shape needs the default CLF time (``ClfParser``'s own fast path does).
        self._strict = parser._fast is not None
        self._times: dict[str, int | None] = {}
        self._days: dict[str, int | None] = {}

    def parse_block(self, blob: bytes, count: int, default_ts: int) -> Block:
        text = blob.decode("utf-8", "replace")
        if not self._strict:
            return per_line(self.parser, text.split("\n"), default_ts)
        if text.count('"') == 6 * count and "\\" not in text:
            block = self._columns(text, count)
            if block is not None:
                return block
        return self._segments(text.split("\n"), default_ts)

    def _segments(self, lines: list[str], default_ts: int) -> Block:
        """Lines with six quotes and no backslash in runs through ``_columns``, the others
        line by line."""
        sixes = list(
            map(
                operator.gt,
                map(operator.eq, map(str.count, lines, repeat('"')), repeat(6)),
                map(operator.contains, lines, repeat("\\")),
            )
        )
        blocks: list[Block] = []
        i, n = 0, len(lines)
        while i < n:
            j = i
            kind = sixes[i]
            while j < n and sixes[j] == kind:
                j += 1
            if kind:
                blocks.append(self._bisect(lines[i:j], default_ts))
            else:
                blocks.append(per_line(self.parser, lines[i:j], default_ts))
            i = j
        return Block.concat(blocks)

    def _bisect(self, lines: list[str], default_ts: int) -> Block:
        """``_columns`` on ``lines``; if they are not all of the strict shape, each half again,
        down to ``_MIN_SPLIT`` lines, which are parsed line by line."""
        block = self._columns("\n".join(lines), len(lines))
        if block is not None:
            return block
        if len(lines) < _MIN_SPLIT:
            return per_line(self.parser, lines, default_ts)
        mid = len(lines) // 2
        return Block.concat(
            [self._bisect(lines[:mid], default_ts), self._bisect(lines[mid:], default_ts)]
        )

    def _columns(self, text: str, k: int) -> Block | None:
        """The block as columns if every line is of the strict combined shape (``host ident
        user [time] "request" status size "referrer" "agent"``, anything without a quote
        after it), else ``None``."""
        if "\\" in text:
            return None  # escaped quotes: the general path's business
        parts = text.split('"')
        if len(parts) != 6 * k + 1 or set(parts[4::6]) != {" "}:
            return None
        # parts[6j] is what follows line j-1's agent, a newline, and line j's head.
        rests = parts[6::6]
        heads = [parts[0]]
        if k > 1:
            inner = rests[:-1]
            # Each holds one newline exactly when each holds one at least (the text has k - 1).
            if all(map(str.startswith, inner, repeat("\n"))):
                heads += "".join(inner).split("\n")[1:]  # nothing after the agents: one split
            else:
                _, seps, more = zip(*map(str.partition, inner, repeat("\n")), strict=True)
                if "" in seps:
                    return None
                heads += more
        if set(map(str.count, heads, repeat(" "))) != {5} or not all(
            map(str.endswith, heads, repeat(" "))
        ):
            return None
        joined = "".join(heads)
        if "\n" in joined or any(b in joined for b in _OTHER_BLANKS):
            return None
        tokens = joined.split(" ")
        tokens.pop()  # after the last head's final blank
        hosts, idents, users = tokens[0::5], tokens[1::5], tokens[2::5]
        if "" in hosts or "" in idents or "" in users:
            return None
        # "[dd/Mon/yyyy:HH:MM:SS +zzzz]" ends each head (before its last blank) when the head
        # is of the shape: then ``_TIME`` matches it, and the tokens before it are the three.
        ts = self._timestamps(list(map(operator.getitem, heads, repeat(_TIME_SLICE))))
        if ts is None:
            return None
        mids = parts[2::6]
        if set(map(str.count, mids, repeat(" "))) != {3}:
            return None
        mt = "".join(mids).split(" ")
        if set(mt[0::3]) != {""}:
            return None
        statuses, sizes = mt[1::3], mt[2::3]
        status_of = _numbers(statuses)
        if status_of is None:
            return None
        builder = _Columns(k)
        builder.add("host", hosts)
        builder.add("identity", idents)
        builder.add("user", users)
        requests = list(map(str.strip, parts[1::6]))
        builder.add("message", requests)
        builder.add_request(requests)
        builder.add("status", statuses, status_of)
        size_present = bytes(map(_NE, sizes, repeat("-")))
        present_sizes = list(compress(sizes, size_present))
        digits = "".join(present_sizes)
        if present_sizes and not (digits.isascii() and digits.isdigit()):
            return None
        if "" in present_sizes:
            return None
        builder.add_ints("size", sizes, size_present, present_sizes)
        builder.add("referrer", parts[3::6])
        builder.add("agent", parts[5::6])
        return Block(ts, None, builder.result(), 0)

    def _timestamps(self, keys: list[str]) -> list[int] | None:
        """Each line's ts from its "[time zone]" (``None`` if one is off the fast shape or
        the fast path leaves it to the general one: ``ClfParser._parse_fast``)."""
        times = self._times
        out = list(map(times.get, keys, repeat(-1)))
        if -1 in out:
            if len(times) + len(keys) > _TIMES_MAX:
                times.clear()
            for i, got in enumerate(out):
                if got == -1:
                    key = keys[i]
                    value = times.get(key, -1)
                    if value == -1:
                        value = times[key] = self._time(key)
                    out[i] = value
        if None in out:
            return None
        return out  # type: ignore[return-value]

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


def _numbers(tokens: list[str]) -> dict[str, int | None] | None:
    """Each distinct token of a ``(-|[0-9]+)`` column with its value (``None`` for "-"), or
    ``None`` if a token is neither."""
    out: dict[str, int | None] = {}
    for t in set(tokens):
        if t == "-":
            out[t] = None
        elif t.isascii() and t.isdigit():
            out[t] = int(t)
        else:
            return None
    return out


def _valid_method(method: str) -> bool:
    """``parsers.clf._split_request``'s test of a method (``\\w+``)."""
    return method.isalnum() or method.replace("_", "a").isalnum()


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

    def add_ints(self, name: str, tokens: list[str], present: bytes, kept: list[str]) -> None:
        """A column of digits where "-" means absent."""
        if not kept:
            return
        values = list(map(int, kept))
        self._set(name, values, None if len(kept) == len(tokens) else present)

    def add_request(self, requests: list[str]) -> None:
        """method, path and protocol from each (stripped) request, where it has three parts
        and a method (``parsers.clf._split_request``)."""
        joined = " ".join(requests)
        if (
            joined.isascii()
            and not any(b in joined for b in _REQUEST_BLANKS)
            and set(map(str.count, requests, repeat(" "))) == {2}
        ):
            # "METHOD PATH PROTOCOL" with single blanks everywhere: one split for the block,
            # the same parts as ``str.split(None, 2)`` of each.
            tokens = joined.split(" ")
            if "" not in tokens:
                methods, paths, protocols = tokens[0::3], tokens[1::3], tokens[2::3]
                if all(map(_valid_method, set(methods))):
                    self._set("method", methods, None)
                    self._set("path", paths, None)
                    self._set("protocol", protocols, None)
                    return
        split = list(map(str.split, requests, repeat(None), repeat(2)))
        if set(map(len, split)) == {3}:
            methods, paths, protocols = map(list, zip(*split, strict=True))
            if all(map(_valid_method, set(methods))):
                self._set("method", methods, None)
                self._set("path", paths, None)
                self._set("protocol", protocols, None)
                return
        present = bytes(len(s) == 3 and _valid_method(s[0]) for s in split)
        kept = list(compress(split, present))
        if not kept:
            return
        methods, paths, protocols = map(list, zip(*kept, strict=True))
        self._set("method", methods, present)
        self._set("path", paths, present)
        self._set("protocol", protocols, present)

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


class JsonBlocks:
    """``JsonParser`` a block at a time: one C-level ``map`` of the decoder over the lines."""

    def __init__(self, parser: JsonParser) -> None:
        self.parser = parser
        self._decode = msgspec.json.Decoder().decode

    def parse_block(self, blob: bytes, count: int, default_ts: int) -> Block:
        parts = blob.split(b"\n")
        try:
            objs = list(map(self._decode, parts))
        except (msgspec.DecodeError, RecursionError):
            objs = None
        if objs is None or set(map(type, objs)) != {dict}:
            return per_line(self.parser, blob.decode("utf-8", "replace").split("\n"), default_ts)
        keys, tz = self.parser._time_keys, self.parser._tz
        ts = [ts_from_fields(o, keys, tz) for o in objs]
        levels = list(map(level_from_fields, objs))
        return Block(
            [default_ts if t is None else t for t in ts],
            None if levels.count(None) == len(levels) else levels,
            FieldColumns.from_dicts(objs),
            0,
        )
