"""``wharf config check``, the pure part: which kind of config a file is, every error in it, and
the line each error is on.

msgspec stops at the first error, so errors are collected in rounds: report the error, drop
the offending key (or array element, or, when a required key is what is missing, the table
holding it) from the parsed document, and decode again. Dropped array elements shift the
indices msgspec reports for the next ones, so the indices are mapped back to the file's own.
Then the semantic checks of ``shipper.config`` / ``collector.config`` (their ``problems()``,
the rules ``load_config`` and ``check()`` apply) run on what decoded. Nothing here does I/O.

tomllib keeps no positions, so ``locate`` scans the TOML text once and maps every key path
(tables, array-of-tables elements, dotted keys, keys of inline tables, array elements) to the
line it is defined on.
"""

from __future__ import annotations

import bisect
import copy
import difflib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal, NamedTuple

import msgspec

from collector.config import CollectorConfig
from shipper.config import ShipperConfig
from wharf.errors import InvalidArgument

__all__ = [
    "KINDS",
    "Diagnostic",
    "KeyPath",
    "Kind",
    "check_config",
    "detect_kind",
    "format_key_path",
    "line_of",
    "locate",
    "parse_key_path",
]

Kind = Literal["shipper", "collector"]
KINDS: Final[tuple[Kind, ...]] = ("shipper", "collector")
_SCHEMAS: Final[dict[Kind, type[ShipperConfig] | type[CollectorConfig]]] = {
    "shipper": ShipperConfig,
    "collector": CollectorConfig,
}

# A key path: table keys and array indices, e.g. ("inputs", 1, "paths") for inputs[1].paths.
KeyPath = tuple[str | int, ...]

# Each round of decoding finds one error and drops one key; a file with more errors than this
# is reported in part (and says so) rather than decoded hundreds of times.
_MAX_ROUNDS: Final = 100


class Diagnostic(NamedTuple):
    """One error: its line in the file (1-based), its key path (empty for a TOML syntax
    error) and what is wrong."""

    line: int
    path: str
    message: str

    def render(self, file: str) -> str:
        """``FILE:LINE: KEY.PATH: message`` (``FILE:LINE: message`` without a key path)."""
        where = f"{self.path}: " if self.path else ""
        return f"{file}:{self.line}: {where}{self.message}"


# --- key paths ---------------------------------------------------------------------------

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_PATH_PART: Final = re.compile(
    r"""\.?(?P<bare>[A-Za-z0-9_-]+)|\.?(?P<quoted>"(?:[^"\\]|\\.)*")|\[(?P<index>\d+)\]""",
)


def format_key_path(path: KeyPath) -> str:
    """``inputs[1].paths``; keys that are not bare TOML keys are quoted (``a."b c"``)."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
            continue
        key = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
        out.append(f".{key}" if out else key)
    return "".join(out)


def parse_key_path(text: str) -> KeyPath:
    """The inverse of ``format_key_path``; also reads msgspec's ``$.inputs[1].paths``. A part
    it cannot read (msgspec's ``[...]`` for a dict key) ends the path there."""
    text = text.removeprefix("$")
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_PART.match(text, pos)
        if m is None:
            break
        if m["bare"] is not None:
            parts.append(m["bare"])
        elif m["quoted"] is not None:
            parts.append(json.loads(m["quoted"]))
        else:
            parts.append(int(m["index"]))
        pos = m.end()
    return tuple(parts)


# --- locating key paths in TOML text -------------------------------------------------------


def locate(text: str) -> dict[KeyPath, int]:
    """The line (1-based) where each key path of a TOML document is defined.

    Tables (``[a.b]``), array-of-tables elements (``[[a]]``, counted in order, nested ones
    under the last element of their parent), dotted keys (and the tables they imply), quoted
    keys, keys inside inline tables and the elements of arrays are all located; a path defined
    twice keeps its first line. The text should be valid TOML (check it with tomllib first);
    on anything else this still returns, with what it could make out.
    """
    return _Locator(text).run()


def line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, else of its nearest enclosing key or table, else 1."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1


class _Locator:
    """One pass over the text with a cursor, following TOML's grammar just far enough to know
    which key is defined where; strings and comments are skipped so that nothing inside them is
    taken for a key or a table."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: dict[KeyPath, int] = {}
        self.table: KeyPath = ()
        # Elements seen so far of each array of tables, by its path (with parent indices).
        self.arrays: dict[KeyPath, int] = {}

    def run(self) -> dict[KeyPath, int]:
        while True:
            self.skip_blank(newlines=True)
            if self.i >= self.n:
                return self.lines
            if self.s[self.i] == "[":
                self.header()
            else:
                self.key_value(self.table)
            # Whatever is left of the line is a comment in valid TOML; skipping it also makes
            # sure every statement, even garbage, moves the cursor on.
            end = self.s.find("\n", self.i)
            self.i = self.n if end < 0 else end + 1

    def line(self) -> int:
        return bisect.bisect_left(self.newlines, self.i) + 1

    def record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def skip_blank(self, *, newlines: bool) -> None:
        """Skip spaces and tabs; with ``newlines``, line ends and comments too."""
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            elif newlines and c == "#":
                end = self.s.find("\n", self.i)
                self.i = self.n if end < 0 else end
            else:
                return

    def resolve(self, keys: list[str], base: KeyPath = ()) -> KeyPath:
        """``keys`` under ``base``, with the current element of each array of tables crossed."""
        path = base
        for key in keys:
            path = (*path, key)
            if path in self.arrays:
                path = (*path, self.arrays[path] - 1)
        return path

    def header(self) -> None:
        line = self.line()
        is_array = self.s.startswith("[[", self.i)
        self.i += 2 if is_array else 1
        keys = self.key()
        if not keys:
            return
        parent = self.resolve(keys[:-1])
        for end in range(1, len(parent) + 1):  # tables a header implies
            self.record(parent[:end], line)
        if is_array:
            array = (*parent, keys[-1])
            index = self.arrays.get(array, 0)
            self.arrays[array] = index + 1
            self.record(array, line)
            self.table = (*array, index)
        else:
            self.table = self.resolve(keys[-1:], parent)
        self.record(self.table, line)

    def key_value(self, base: KeyPath) -> None:
        line = self.line()
        keys = self.key()
        if not keys:
            return
        self.skip_blank(newlines=False)
        if not self.s.startswith("=", self.i):
            return
        self.i += 1
        self.skip_blank(newlines=False)
        path = (*base, *keys)
        for end in range(len(base) + 1, len(path) + 1):
            self.record(path[:end], line)
        self.value(path)

    def key(self) -> list[str]:
        """A dotted key (``a."b.c".d``) as its parts; empty if there is none here."""
        keys: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            start = self.i
            c = self.s[self.i] if self.i < self.n else ""
            if c in ('"', "'"):  # a tuple: "" (the end of the text) is in every str
                self.string()
                raw = self.s[start : self.i]
                try:  # tomllib decodes the quoted key exactly as the document's parser did
                    keys.append(tomllib.loads(f"k = {raw}")["k"])
                except tomllib.TOMLDecodeError:
                    keys.append(raw[1:-1])
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if m is None:
                    return keys
                keys.append(m.group())
                self.i = m.end()
            self.skip_blank(newlines=False)
            if not self.s.startswith(".", self.i):
                return keys
            self.i += 1

    def value(self, path: KeyPath) -> None:
        c = self.s[self.i] if self.i < self.n else ""
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:  # number, boolean, date: up to whatever ends a value
            while self.i < self.n and self.s[self.i] not in ",]}#\r\n":
                self.i += 1

    def string(self) -> None:
        """Skip one string of any of TOML's four kinds, the cursor on its opening quote."""
        quote = self.s[self.i]
        escapes = quote == '"'
        if self.s.startswith(quote * 3, self.i):
            self.i += 3
            while self.i < self.n:
                if escapes and self.s[self.i] == "\\":
                    self.i += 2
                elif self.s.startswith(quote * 3, self.i):
                    # Up to two quotes of the content may touch the closing ones ('''a''''').
                    run = 3
                    while run < 5 and self.s.startswith(quote, self.i + run):
                        run += 1
                    self.i += run
                    return
                else:
                    self.i += 1
            self.i = min(self.i, self.n)  # unterminated (broken text): an escape ran past it
            return
        self.i += 1
        while self.i < self.n and self.s[self.i] != "\n":
            c = self.s[self.i]
            if escapes and c == "\\":
                self.i += 2
                continue
            self.i += 1
            if c == quote:
                return
        self.i = min(self.i, self.n)

    def array(self, path: KeyPath) -> None:
        self.i += 1
        index = 0
        while True:
            self.skip_blank(newlines=True)
            if self.i >= self.n:
                return
            c = self.s[self.i]
            if c == "]":
                self.i += 1
                return
            if c in ",}":  # "}" only in broken text: never stop on it, never loop on it
                self.i += 1
                continue
            start = self.i
            self.record((*path, index), self.line())
            self.value((*path, index))
            index += 1
            if self.i == start:
                self.i += 1

    def inline_table(self, path: KeyPath) -> None:
        self.i += 1
        while True:
            self.skip_blank(newlines=True)
            if self.i >= self.n:
                return
            c = self.s[self.i]
            if c == "}":
                self.i += 1
                return
            if c in ",]":
                self.i += 1
                continue
            start = self.i
            self.key_value(path)
            if self.i == start:
                self.i += 1


# --- which kind of config ------------------------------------------------------------------


def _root_keys(kind: Kind) -> frozenset[str]:
    return frozenset(f.encode_name for f in msgspec.structs.fields(_SCHEMAS[kind]))


def detect_kind(doc: Mapping[str, Any]) -> Kind:
    """Shipper or collector, from the top-level keys that only one of the two schemas has
    (``inputs`` with ``paths`` counts for the shipper even if the collector gains
    ``[[inputs]]`` of its own); raises ``InvalidArgument`` when they do not tell."""
    shipper_keys, collector_keys = _root_keys("shipper"), _root_keys("collector")
    votes: dict[Kind, list[str]] = {
        "shipper": sorted(k for k in doc if k in shipper_keys - collector_keys),
        "collector": sorted(k for k in doc if k in collector_keys - shipper_keys),
    }
    inputs = doc.get("inputs")
    if (
        "inputs" not in votes["shipper"]
        and isinstance(inputs, list)
        and any(isinstance(t, dict) and "paths" in t for t in inputs)
    ):
        votes["shipper"].append("inputs")
    shipper, collector = len(votes["shipper"]), len(votes["collector"])
    if shipper > collector:
        return "shipper"
    if collector > shipper:
        return "collector"
    if not shipper:
        why = (
            "none of its keys belongs to only one of them (a shipper has e.g. collectors, "
            "[[inputs]] with paths, state_dir; a collector data_dir, listen, http, [storage])"
        )
    else:
        why = (
            f"it has as many shipper keys ({', '.join(votes['shipper'])}) as collector keys "
            f"({', '.join(votes['collector'])})"
        )
    raise InvalidArgument(
        f"cannot tell whether this is a shipper or a collector config: {why}; give --kind"
    )


# --- collecting every error -----------------------------------------------------------------

_AT: Final = re.compile(r"^(?P<message>.*) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_UNKNOWN: Final = re.compile(r"Object contains unknown field `(?P<key>.*)`", re.DOTALL)
_MISSING: Final = re.compile(r"Object missing required field `(?P<key>.*)`", re.DOTALL)
_TOML_AT: Final = re.compile(
    r"^(?P<message>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$",
    re.DOTALL,
)


def check_config(data: bytes, kind: Kind | None = None) -> list[Diagnostic]:
    """Every error in a config file's bytes, sorted by line (empty: the file is fine).
    ``kind`` ``None`` detects it (``detect_kind``, whose ``InvalidArgument`` propagates)."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return [Diagnostic(line, "", f"invalid TOML: not UTF-8 (byte 0x{data[exc.start]:02x})")]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [_syntax_error(text, str(exc))]
    if kind is None:
        kind = detect_kind(doc)
    lines = locate(text)
    found = [
        Diagnostic(line_of(lines, path), format_key_path(path), message)
        for path, message in _errors(doc, kind)
    ]
    return sorted(dict.fromkeys(found), key=lambda d: d.line)


def _syntax_error(text: str, error: str) -> Diagnostic:
    m = _TOML_AT.match(error)
    if m is None:
        return Diagnostic(1, "", f"invalid TOML: {error}")
    if m["line"] is None:  # at end of document: the last line
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        return Diagnostic(line, "", f"invalid TOML: {m['message']} (at end of file)")
    return Diagnostic(int(m["line"]), "", f"invalid TOML: {m['message']} (column {m['col']})")


def _errors(doc: dict[str, Any], kind: Kind) -> Iterator[tuple[KeyPath, str]]:
    """``(key path in the file, message)`` for every error: decoding errors round by round,
    then the semantic problems of what decoded."""
    schema = _SCHEMAS[kind]
    decoder = _Rounds(doc)
    for _ in range(_MAX_ROUNDS):
        try:
            config = msgspec.convert(decoder.doc, schema)
        except msgspec.ValidationError as exc:
            found = decoder.step(str(exc), kind)
            if found is not None:
                yield found
            if decoder.stuck:
                return
            continue
        for path, message in config.problems():
            where = decoder.original(parse_key_path(path))
            if not decoder.emptied(where):
                yield where, message
        return
    yield (), f"more than {_MAX_ROUNDS} errors; fix these and check again"


class _Rounds:
    """The document being decoded, the keys dropped from it so far, and the mapping of the
    array indices msgspec reports back to the file's."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = copy.deepcopy(doc)
        # By the array's path in the file: the indices (the file's) of its dropped elements.
        self.removed: dict[KeyPath, list[int]] = {}
        # Paths (the file's) this checker dropped: their absence is no error of the file's.
        self.dropped: set[KeyPath] = set()
        self.stuck = False

    def original(self, current: KeyPath) -> KeyPath:
        """A path in the decoded document → the same path in the file."""
        out: list[str | int] = []
        for part in current:
            if isinstance(part, int):
                index = part
                for gone in self.removed.get(tuple(out), ()):  # sorted
                    if gone <= index:
                        index += 1
                out.append(index)
            else:
                out.append(part)
        return tuple(out)

    def emptied(self, path: KeyPath) -> bool:
        """Whether this checker dropped something inside ``path``: then a problem of ``path``
        itself (no ``[[inputs]]`` left) is one of this checker's making, reported already."""
        n = len(path)
        return any(len(d) > n and d[:n] == path for d in self.dropped)

    def step(self, error: str, kind: Kind) -> tuple[KeyPath, str] | None:
        """Read one msgspec error, drop what it is about; the error to report, if any."""
        m = _AT.match(error)
        message, at = (m["message"], parse_key_path(m["path"])) if m else (error, ())
        report: tuple[KeyPath, str] | None
        if unknown := _UNKNOWN.fullmatch(message):
            target: KeyPath = (*at, unknown["key"])
            report = (self.original(target), _unknown_key(kind, at, unknown["key"]))
        elif missing := _MISSING.fullmatch(message):
            # Drop the table that lacks the key; if the key is missing because a round before
            # dropped it (a wrong type), that round has reported it already.
            target = at
            key = self.original((*at, missing["key"]))
            report = None if key in self.dropped else (key, "missing required key")
        else:
            target = at
            report = (self.original(target), message)
        if not target:  # the document itself is wrong: nothing left to drop
            self.stuck = True
        else:
            self.drop(target)
        return report

    def drop(self, target: KeyPath) -> None:
        parent: Any = self.doc
        for part in target[:-1]:
            parent = parent[part]
        last = target[-1]
        original = self.original(target)
        self.dropped.add(original)
        if isinstance(parent, list) and isinstance(original[-1], int):
            self.removed.setdefault(original[:-1], []).append(original[-1])
            self.removed[original[:-1]].sort()
        del parent[last]


def _unknown_key(kind: Kind, at: KeyPath, key: str) -> str:
    """The message for an unknown key: the key of the other kind it is, or the key it looks
    like (a typo), if any."""
    # A key of the other kind means a wrong --kind or a mixed-up file: say that rather than
    # suggest a look-alike (state_dir is not a typo of data_dir).
    other: Kind = "collector" if kind == "shipper" else "shipper"
    if not at and key in _root_keys(other):
        return f"unknown key: {key!r} is a {other} key, and this file is read as a {kind} config"
    close = difflib.get_close_matches(key, _fields_at(_SCHEMAS[kind], at), n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return "unknown key"


def _fields_at(schema: type[msgspec.Struct], at: KeyPath) -> list[str]:
    """The keys the table at ``at`` may have (by the schema), for suggestions."""
    types: list[msgspec.inspect.Type] = [msgspec.inspect.type_info(schema)]
    for part in at:
        nxt: list[msgspec.inspect.Type] = []
        for t in types:
            options = t.types if isinstance(t, msgspec.inspect.UnionType) else (t,)
            for o in options:
                if isinstance(o, msgspec.inspect.StructType) and isinstance(part, str):
                    nxt += [f.type for f in o.fields if f.encode_name == part]
                elif isinstance(o, msgspec.inspect.ListType) and isinstance(part, int):
                    nxt.append(o.item_type)
        types = nxt
    names: list[str] = []
    for t in types:
        for o in t.types if isinstance(t, msgspec.inspect.UnionType) else (t,):
            if isinstance(o, msgspec.inspect.StructType):
                names += [f.encode_name for f in o.fields]
    return names
