"""``where`` expressions: filters on a record's fields, shared by search, tail and the CLI.

    status>=500 and path~"^/api" or not level=error

Grammar, lowest precedence first (keywords are case-insensitive)::

    expr     := and_expr ("or" and_expr)*
    and_expr := unary ("and" unary)*
    unary    := "not" unary | "(" expr ")" | NAME OP VALUE
    OP       := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "!~"
    VALUE    := NUMBER | "double quoted" | 'single quoted' | bare-word

A NAME is a field of the record, dots reaching into nested objects (``http.status`` is
``fields["http"]["status"]``, or the flat key ``fields["http.status"]`` when the record has one).
``level``, ``host``, ``source``, ``line`` and ``ts`` name the record's own attributes;
``fields.host`` reaches a parsed field that shares one of those names.

Comparison rules, chosen so that the obvious query does the obvious thing:

- A number compares numerically with a numeric field or a numeric string (``status>=500``
  matches ``500`` and ``"500"``); a quoted value compares numerically only with a numeric field,
  so ``version="1.10"`` does not equal the string ``"1.1"``.
- ``level`` with an ordering operator and a level name orders by severity: ``level>=warn``.
- Otherwise values compare as text (``<`` is then lexicographic, handy for ISO dates).
- ``~`` is an RE2 search (linear time, so no expression can hang a server).
- A missing field satisfies only ``!=`` and ``!~``: they are exactly ``not =`` and ``not ~``.

Quoted strings take ``\\"``, ``\\'``, ``\\\\``, ``\\n`` and ``\\t``; any other backslash is kept,
so regex escapes like ``"\\d+"`` need no doubling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import re2

from collector.filters.match import RegexTooCostly, compile_regex
from wharf.errors import InvalidArgument
from wharf.record import LEVELS, Record

__all__ = [
    "MAX_DEPTH",
    "MAX_REGEX_INSTRUCTIONS",
    "MAX_WHERE_CHARS",
    "MISSING",
    "Where",
    "WhereError",
    "as_text",
    "parse",
    "reader",
]

# Longer expressions are refused: nobody types 4096 characters of filter, and the parser and
# the per-record evaluation stay cheap.
MAX_WHERE_CHARS: Final = 4096
# Parentheses and ``not`` nest at most this deep: the parser and the evaluator recurse, and
# Python's stack must never be the limit a user finds.
MAX_DEPTH: Final = 64
# A numeric string longer than this is text: bounds the int() conversion of huge digit runs.
_MAX_NUMBER_CHARS: Final = 64

_OPERATORS: Final = ("<=", ">=", "!=", "!~", "==", "=", "<", ">", "~")
_ORDERING: Final = frozenset({"<", "<=", ">", ">="})
_SPECIAL: Final = frozenset({"level", "host", "source", "line", "ts"})
_KEYWORDS: Final = frozenset({"and", "or", "not"})
_LEVEL_RANK: Final = {name: i for i, name in enumerate(LEVELS)}
_NAME_RE: Final = re.compile(r"[A-Za-z_@$][A-Za-z0-9_@$-]*(?:\.[A-Za-z0-9_@$-]+)*")
_NUMBER_RE: Final = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_BARE_STOP: Final = frozenset(" \t\r\n()\"'=!<>~")
_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}
# The RE2 instructions all the ``~``/``!~`` patterns of one expression may add up to (each
# alone is capped by ``compile_regex``): compiling and running them costs about that much.
MAX_REGEX_INSTRUCTIONS: Final = 200_000
_MISSING: Final = object()
_json = msgspec.json.Encoder()


class WhereError(InvalidArgument):
    """An expression that does not parse. ``column`` is 1-based; ``reason`` says what was wrong."""

    def __init__(self, reason: str, column: int) -> None:
        super().__init__(f"invalid where expression at column {column}: {reason}")
        self.reason = reason
        self.column = column


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "op", "word", "string", "end"
    text: str  # the source text (the decoded value for strings)
    col: int  # 1-based column of the first character


def _tokens(src: str) -> Iterator[_Token]:
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()":
            yield _Token(c, c, i + 1)
            i += 1
        elif c in "\"'":
            text, end = _string(src, i)
            yield _Token("string", text, i + 1)
            i = end
        elif c in "=!<>~":
            op = next((o for o in _OPERATORS if src.startswith(o, i)), None)
            if op is None:
                raise WhereError(f"{c!r} is not an operator (use !=, !~ or 'not')", i + 1)
            yield _Token("op", op, i + 1)
            i += len(op)
        else:
            j = i
            while j < n and src[j] not in _BARE_STOP:
                j += 1
            yield _Token("word", src[i:j], i + 1)
            i = j
    yield _Token("end", "", n + 1)


def _string(src: str, start: int) -> tuple[str, int]:
    """The decoded quoted string at ``src[start]`` and the index just past its closing quote."""
    quote = src[start]
    out: list[str] = []
    i = start + 1
    while i < len(src):
        c = src[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(src):
            nxt = src[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise WhereError(f"unterminated string (opening {quote} has no closing {quote})", start + 1)


# -- values ---------------------------------------------------------------------------------


def _number(text: str) -> int | float | None:
    """``text`` as a number when it is written as one, else ``None``."""
    s = text.strip()
    if len(s) > _MAX_NUMBER_CHARS or not _NUMBER_RE.fullmatch(s):
        return None
    try:
        return int(s)
    except ValueError:
        return float(s)


def _numeric(value: object) -> int | float | None:
    """A field value as a number: numbers (not booleans) and numeric strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return _number(value)
    return None


def _text(value: object) -> str:
    """A field value as the text a user would write for it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    try:
        return _json.encode(value).decode("utf-8", "replace")
    except (TypeError, ValueError, OverflowError):
        return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- the tree -------------------------------------------------------------------------------


def _getter(name: str) -> Callable[[Record], object]:
    if name in _SPECIAL:
        return lambda rec: getattr(rec, name)
    path = name.removeprefix("fields.") if name.startswith("fields.") else name
    parts = tuple(path.split("."))

    def get(rec: Record) -> object:
        fields = rec.fields
        if path in fields:
            return fields[path]
        value: Any = fields
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value

    return get


def reader(name: str) -> Callable[[Record], object]:
    """How an expression reads ``name`` from a record: ``MISSING`` when the record has no such
    field (facets count values the way ``where`` sees them)."""
    return _getter(name)


def as_text(value: object) -> str:
    """A field value as the text ``where`` compares it as (``null``, ``true``, ``500``, JSON for
    maps and lists)."""
    return _text(value)


# What ``reader``'s function returns for a field the record lacks.
MISSING: Final = _MISSING


class Where:
    """A parsed expression. ``matches(record)`` evaluates it; ``str()`` gives a canonical form
    that parses back to the same expression."""

    __slots__ = ()

    def matches(self, record: Record) -> bool:
        """Whether ``record`` satisfies the expression."""
        raise NotImplementedError


class _Compare(Where):
    __slots__ = ("_get", "_level", "_number", "_regex", "name", "op", "quoted", "value")

    def __init__(self, name: str, op: str, value: str, quoted: bool, value_col: int) -> None:
        self.name, self.op, self.value, self.quoted = name, "=" if op == "==" else op, value, quoted
        self._get = _getter(name)
        self._number = _number(value)
        self._level = (
            _LEVEL_RANK.get(value.lower()) if name == "level" and op in _ORDERING else None
        )
        self._regex: Any = None
        if op in ("~", "!~"):
            try:
                self._regex = compile_regex(value.encode("utf-8", "surrogatepass"))
            except re2.error as exc:
                why = exc.args[0] if exc.args else exc
                if isinstance(why, bytes):
                    why = why.decode("utf-8", "replace")
                raise WhereError(f"invalid regular expression {value!r}: {why}", value_col) from exc
            except RegexTooCostly as exc:
                raise WhereError(f"regular expression {value!r} {exc}", value_col) from None
            except (UnicodeError, ValueError, TypeError) as exc:  # the wrapper's own complaints
                raise WhereError(f"invalid regular expression {value!r}: {exc}", value_col) from exc

    @property
    def regex_instructions(self) -> int:
        """The size of the compiled pattern's RE2 program (0 without one)."""
        return int(self._regex.programsize) if self._regex is not None else 0

    def __str__(self) -> str:
        if self.quoted or (self._number is None and not _is_bare(self.value)):
            return f"{self.name}{self.op}{_quote(self.value)}"
        return f"{self.name}{self.op}{self.value}"

    def matches(self, record: Record) -> bool:
        got = self._get(record)
        op = self.op
        if op == "!=":
            return not self._equal(got)
        if op == "!~":
            return not self._search(got)
        if op == "=":
            return self._equal(got)
        if op == "~":
            return self._search(got)
        return self._order(got)

    def _equal(self, got: object) -> bool:
        if got is _MISSING:
            return False
        num = self._number
        if num is not None:
            have = _numeric(got) if not self.quoted else _numeric_only(got)
            if have is not None:
                return have == num
        return _text(got) == self.value

    def _search(self, got: object) -> bool:
        if got is _MISSING:
            return False
        data = _text(got).encode("utf-8", "surrogatepass")
        return self._regex.search(data) is not None

    def _order(self, got: object) -> bool:
        if got is _MISSING or got is None:
            return False
        if self._level is not None:
            if not isinstance(got, str) or got not in _LEVEL_RANK:
                return False
            return _ordered(self.op, _LEVEL_RANK[got], self._level)
        num = self._number
        if num is not None:
            have = _numeric(got) if not self.quoted else _numeric_only(got)
            if have is not None:
                return _ordered(self.op, have, num)
            if not isinstance(got, str) or not self.quoted:
                return False
        if isinstance(got, str):
            return _ordered(self.op, got, self.value)
        return False


def _numeric_only(value: object) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ordered(op: str, a: Any, b: Any) -> bool:
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _is_bare(value: str) -> bool:
    return (
        bool(value) and value.lower() not in _KEYWORDS and not any(c in _BARE_STOP for c in value)
    )


class _Not(Where):
    __slots__ = ("inner",)

    def __init__(self, inner: Where) -> None:
        self.inner = inner

    def __str__(self) -> str:
        return f"not {_wrapped(self.inner)}"

    def matches(self, record: Record) -> bool:
        return not self.inner.matches(record)


class _And(Where):
    __slots__ = ("parts",)

    def __init__(self, parts: list[Where]) -> None:
        self.parts = parts

    def __str__(self) -> str:
        return " and ".join(_wrapped(p) for p in self.parts)

    def matches(self, record: Record) -> bool:
        return all(p.matches(record) for p in self.parts)


class _Or(Where):
    __slots__ = ("parts",)

    def __init__(self, parts: list[Where]) -> None:
        self.parts = parts

    def __str__(self) -> str:
        return " or ".join(_wrapped(p) for p in self.parts)

    def matches(self, record: Record) -> bool:
        return any(p.matches(record) for p in self.parts)


def _wrapped(node: Where) -> str:
    return f"({node})" if isinstance(node, _And | _Or) else str(node)


# -- the parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, src: str) -> None:
        self.tokens = list(_tokens(src))
        self.pos = 0
        self.depth = 0
        self.regex_left = MAX_REGEX_INSTRUCTIONS

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def keyword(self, word: str) -> bool:
        t = self.tok
        if t.kind == "word" and t.text.lower() == word:
            self.pos += 1
            return True
        return False

    def expr(self) -> Where:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else _Or(parts)

    def and_expr(self) -> Where:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else _And(parts)

    def unary(self) -> Where:
        t = self.tok
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise WhereError(f"nested deeper than {MAX_DEPTH} levels", t.col)
        try:
            if self.keyword("not"):
                return _Not(self.unary())
            if t.kind == "(":
                self.pos += 1
                inner = self.expr()
                if self.tok.kind != ")":
                    raise WhereError(
                        f"expected ')' to close the '(' at column {t.col}, found {_show(self.tok)}",
                        self.tok.col,
                    )
                self.pos += 1
                return inner
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Where:
        t = self.tok
        if t.kind != "word" or t.text.lower() in _KEYWORDS:
            raise WhereError(f"expected a field name, found {_show(t)}", t.col)
        if not _NAME_RE.fullmatch(t.text):
            raise WhereError(
                f"{t.text!r} is not a field name (letters, digits, '_', '-', '@', '$', "
                "dots between parts)",
                t.col,
            )
        self.pos += 1
        op = self.tok
        if op.kind != "op":
            raise WhereError(f"expected an operator after {t.text!r}, found {_show(op)}", op.col)
        self.pos += 1
        v = self.tok
        if v.kind not in ("word", "string"):
            raise WhereError(f"expected a value after {op.text!r}, found {_show(v)}", v.col)
        self.pos += 1
        compare = _Compare(t.text, op.text, v.text, v.kind == "string", v.col)
        self.regex_left -= compare.regex_instructions
        if self.regex_left < 0:
            raise WhereError(
                f"the regular expressions up to here compile to more than "
                f"{MAX_REGEX_INSTRUCTIONS:,} RE2 instructions together: use fewer or simpler ones",
                v.col,
            )
        return compare


def _show(t: _Token) -> str:
    if t.kind == "end":
        return "the end of the expression"
    if t.kind == "string":
        return f"the string {_quote(t.text)}"
    return repr(t.text)


def parse(text: str) -> Where:
    """Parse a ``where`` expression; ``WhereError`` (and only that) says what is wrong and where."""
    if len(text) > MAX_WHERE_CHARS:
        raise WhereError(f"expression of {len(text)} characters exceeds {MAX_WHERE_CHARS}", 1)
    parser = _Parser(text)
    if parser.tok.kind == "end":
        raise WhereError("the expression is empty", 1)
    tree = parser.expr()
    t = parser.tok
    if t.kind != "end":
        hint = " (missing 'and' or 'or'?)" if t.kind in ("word", "(") else ""
        raise WhereError(f"unexpected {_show(t)}{hint}", t.col)
    return tree
