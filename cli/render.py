"""One renderer per output format, for ``wharf grep``, ``wharf tail`` and ``wharf replay`` alike.

Every renderer takes a ``wharf.api.Hit`` (search, tail and consume rows are all ``Hit``s; a
context answer's are ``ContextHit``s) and returns its text without the newline:

- ``json``: the record exactly as the API sends it (``topic, partition, offset, ts, host,
  source, line, fields, level``; a context hit adds ``match`` and ``group``). Encoded by the same
  msgspec Struct as on the server, so the bytes are the API's bytes.
- ``raw``: the line alone, exactly as stored: ``wharf grep ... | diff - <(grep ...)`` works.
- ``logfmt``: ``ts=... topic=... partition=... offset=... host=... source=... level=...
  <fields> line="..."`` (see ``render_logfmt`` for the choices).
- ``text``: ``host source: line`` (``host source- line`` for a context line, as grep marks
  context with ``-``). On a terminal ``Printer`` colours it: each host its own colour (a hash of
  its name picks it from a palette, so ``web-3`` is the same colour in every run), error and
  warn lines red and yellow, the match highlighted as ``grep --color`` does.
- a template, any text with ``{name}`` in it: ``'{ts} {host} {line}'``. Names: ``ts`` (RFC 3339,
  UTC, milliseconds), ``local`` (the time in the local zone), ``ts_ns``, ``host``, ``source``,
  ``line``, ``level``, ``topic``, ``partition``, ``offset``, ``fields`` (JSON); any other name
  is a parsed field (``{status}``, ``{http.method}``), empty when the record has none. ``{{`` is
  a brace.

rich (colour) and re2 (highlighting) are imported only when a terminal gets coloured text:
piped output and ``wharf replay`` never pay for them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TextIO

import msgspec

from wharf.api import ContextHit, Hit
from wharf.errors import InvalidArgument

if TYPE_CHECKING:  # rich is imported only to colour a terminal's output (see Printer)
    from rich.console import Console
    from rich.text import Text

FORMATS: Final = ("text", "raw", "json", "logfmt")
FORMAT_HELP: Final = "text, raw, json, logfmt or a template like '{ts} {host} {line}'"

Render = Callable[[Hit], str]
Encoder = Callable[[Hit], bytes]

_json: Final = msgspec.json.Encoder()


def parse_format(choice: str) -> str:
    """A format name of ``FORMATS`` (any case) or a template (kept as typed, once it is known
    to be one: every brace opens a ``{name}`` or is doubled)."""
    name = choice.strip().lower()
    if name in FORMATS:
        return name
    if "{" in choice:
        _check_template(choice)
        return choice
    raise InvalidArgument(f"unknown output format {choice!r}: use {FORMAT_HELP}")


def _check_template(template: str) -> None:
    """Refuse a template with a brace that is neither ``{name}`` nor ``{{``/``}}``: printed
    as typed for every record, it would look like output rather than a typo."""
    pos = 0
    for m in _TEMPLATE_FIELD.finditer(template):
        _check_literal(template, pos, m.start())
        pos = m.end()
    _check_literal(template, pos, len(template))


def _check_literal(template: str, start: int, end: int) -> None:
    for i in range(start, end):
        c = template[i]
        if c not in "{}":
            continue
        if c == "}":
            why = "a '}' that closes nothing (write }} for a brace)"
        elif "}" not in template[i:]:
            why = "a '{' that is never closed"
        else:
            inner = template[i + 1 : template.index("}", i)]
            why = f"{{{inner}}} is not a field name (letters, digits, '_', '.', '-')"
        raise InvalidArgument(
            f"output template {template!r}: {why} at character {i + 1} "
            "(a field is {name}, a literal brace {{ or }})"
        )


# -- values ---------------------------------------------------------------------------------


def rfc3339(ns: int, local: bool = False, *, digits: int = 3) -> str:
    """A record time as RFC 3339 with ``digits`` of the second (3: milliseconds, 9: lossless),
    in UTC with ``Z`` or in the local zone. A time no calendar holds stays a number."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    try:
        dt = datetime.fromtimestamp(seconds, UTC)
        if local:
            dt = dt.astimezone()
    except (OverflowError, OSError, ValueError):
        return str(ns)
    fraction = f"{nanos:09d}"[:digits]
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction}"
    if not local:
        return text + "Z"
    zone = dt.strftime("%z")
    return f"{text}{zone[:3]}:{zone[3:]}"


def rfc3339_ns(ts: int) -> str:
    """``2024-05-01T12:00:00.123456789Z`` for nanoseconds since the epoch (UTC): lossless."""
    return rfc3339(ts, digits=9)


def _text(value: object) -> str:
    """A parsed value as text: strings as they are, ``true``/``false``, numbers, nothing for
    null, and lists and objects as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _json.encode(value).decode()


def _field(fields: object, name: str) -> object:
    """``fields[name]``, or a dotted path into nested objects (``http.method``)."""
    if not isinstance(fields, dict):
        return None
    if name in fields:
        return fields[name]
    head, _, rest = name.partition(".")
    return _field(fields.get(head), rest) if rest else None


# -- json, raw ------------------------------------------------------------------------------


def render_json(hit: Hit) -> str:
    """The record as the API sends it (one compact object)."""
    return _json.encode(hit).decode()


def render_raw(hit: Hit) -> str:
    """The logged line, unchanged (a multiline event stays several lines, as it was logged)."""
    return hit.line


# -- logfmt ---------------------------------------------------------------------------------

# The record's own keys in a logfmt line, in this order; a parsed field of one of these names is
# written ``fields.<name>``, so it can never shadow or repeat the record's value.
_OWN_KEYS: Final = ("ts", "topic", "partition", "offset", "host", "source", "level", "line")
_RESERVED: Final = frozenset(_OWN_KEYS)
# logfmt keys are bare words: anything else in a field name becomes ``_``.
_BAD_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9_.:/@-]")
# A value with one of these (or an empty one) is quoted.
_NEEDS_QUOTES: Final = re.compile(r'[\s="\\]|[\x00-\x1f\x7f]')


def _logfmt_value(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = _text(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    # JSON string escapes (\" \\ \n \t \u0001): what logfmt readers (go-logfmt, Loki's
    # logfmt parser) unquote; non-ASCII stays as it is.
    return json.dumps(text, ensure_ascii=False)


def _logfmt_key(name: str) -> str:
    key = _BAD_KEY_CHARS.sub("_", name) or "_"
    return f"fields.{key}" if key in _RESERVED else key


def _flatten(prefix: str, value: object, out: list[str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append(f"{_logfmt_key(prefix)}={_logfmt_value(value)}")


def render_logfmt(hit: Hit) -> str:
    """``ts=... topic=... partition=... offset=... host=... source=... level=... <fields>
    line="..."``: one logfmt line, the same from grep, tail and replay.

    - ``ts`` is RFC 3339 in UTC with nanoseconds, as Loki's logcli prints it: lossless (records
      keep nanoseconds; a millisecond stamp would merge distinct events and lose their order).
    - ``topic``, ``partition`` and ``offset`` are there because they identify the record: a
      reader can drop a repeat, as it can from ``-o json``.
    - Parsed fields follow, nested objects flattened with dots (``http.method=GET``), as Vector's
      logfmt encoder does: logfmt has no nesting, and a dotted key stays greppable and is what
      ``--where`` and templates call the field. Lists stay compact JSON.
    - A field named like one of the record's keys (``host``, ``ts``, ...) is written
      ``fields.<name>``: the record's own value comes once, under its own name, so a logfmt
      reader that keeps the first or the last of a repeated key both get it right.
    - ``line`` comes last, as it is usually the longest. Values with spaces, ``=``, quotes,
      backslashes or control characters are quoted with JSON escapes; booleans are
      ``true``/``false``; a missing value is ``""``.
    """
    parts = [
        f"ts={rfc3339_ns(hit.ts)}",
        f"topic={_logfmt_value(hit.topic)}",
        f"partition={hit.partition}",
        f"offset={hit.offset}",
        f"host={_logfmt_value(hit.host)}",
        f"source={_logfmt_value(hit.source)}",
    ]
    if hit.level:
        parts.append(f"level={_logfmt_value(hit.level)}")
    for name, value in hit.fields.items():
        _flatten(str(name), value, parts)
    parts.append(f"line={_logfmt_value(hit.line)}")
    return " ".join(parts)


# -- templates ------------------------------------------------------------------------------

_TEMPLATE_FIELD: Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_ATTRIBUTES: Final = frozenset({"host", "source", "line", "level", "topic", "partition", "offset"})


def template_value(hit: Hit, name: str) -> str:
    """The text of ``{name}`` for a record (see the module docstring)."""
    if name == "ts":
        return rfc3339(hit.ts)
    if name == "local":
        return rfc3339(hit.ts, local=True)
    if name == "ts_ns":
        return str(hit.ts)
    if name in _ATTRIBUTES:
        return _text(getattr(hit, name))
    if name == "fields":
        return _text(hit.fields)
    return _text(_field(hit.fields, name.removeprefix("fields.")))


def render_template(template: str, hit: Hit) -> str:
    """``template`` with every ``{name}`` replaced."""

    def one(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole in ("{{", "}}"):
            return whole[0]
        return template_value(hit, m.group(1))

    return _TEMPLATE_FIELD.sub(one, template)


# -- text -----------------------------------------------------------------------------------


def is_match(hit: Hit) -> bool:
    """Whether the record matched (``False`` only for a context line)."""
    return hit.match if isinstance(hit, ContextHit) else True


def render_text(hit: Hit) -> str:
    """``host source: line``; ``host source- line`` for a context line."""
    return f"{hit.host} {hit.source}{':' if is_match(hit) else '-'} {hit.line}"


def renderer(fmt: str) -> Render:
    """The renderer of a format from ``parse_format`` (``text``: the plain one)."""
    if fmt == "json":
        return render_json
    if fmt == "raw":
        return render_raw
    if fmt == "logfmt":
        return render_logfmt
    if fmt == "text":
        return render_text
    if "{" in fmt:
        return lambda hit: render_template(fmt, hit)
    raise InvalidArgument(f"unknown output format {fmt!r}: use {FORMAT_HELP}")


def encoder_for(fmt: str) -> Encoder:
    """A record as one line of bytes, newline included (``wharf replay``'s sinks)."""
    if fmt == "json":  # the hot path of a replay: straight to bytes, the API's own
        return lambda hit: _json.encode(hit) + b"\n"
    render = renderer(fmt)
    return lambda hit: (render(hit) + "\n").encode("utf-8", "surrogateescape")


# -- colour ---------------------------------------------------------------------------------

# Distinct on dark and light terminals; red and yellow are kept for levels.
HOST_PALETTE: Final = (
    "cyan", "green", "blue", "magenta", "bright_cyan", "bright_green", "bright_blue",
    "bright_magenta", "dark_orange", "deep_sky_blue1", "spring_green2", "orchid",
)  # fmt: skip
_LEVEL_STYLE: Final = {
    "fatal": "bold white on red",
    "error": "red",
    "warn": "yellow",
    "debug": "dim",
    "trace": "dim",
}
_MATCH_STYLE: Final = "bold red"


def host_style(host: str) -> str:
    """The colour of a host: a stable hash (CRC-32, not Python's salted ``hash``) into the
    palette."""
    return HOST_PALETTE[zlib.crc32(host.encode("utf-8", "surrogatepass")) % len(HOST_PALETTE)]


class Highlighter:
    """Finds what a grep pattern matched in a line, to highlight it (RE2, like the server)."""

    def __init__(self, pattern: str, *, fixed: bool, ignore_case: bool) -> None:
        import re2  # noqa: PLC0415 (lazy: re2 loads only to highlight on a terminal (CLI start-up))

        source = re2.escape(pattern) if fixed else pattern
        options = re2.Options()
        options.log_errors = False
        self._regex: Any = None
        if pattern:
            try:
                self._regex = re2.compile(("(?i)" if ignore_case else "") + source, options)
            except Exception:  # the server reports bad patterns; we just do not highlight
                self._regex = None

    def spans(self, line: str) -> list[tuple[int, int]]:
        """Character spans of the non-empty matches in ``line``."""
        if self._regex is None:
            return []
        return [m.span() for m in self._regex.finditer(line) if m.end() > m.start()]


def styled_text(hit: Hit, *, colour: bool, highlight: Highlighter | None = None) -> Text:
    """``render_text`` as rich ``Text``: coloured unless ``colour`` is off (``NO_COLOR``)."""
    from rich.text import Text  # noqa: PLC0415 (lazy: rich costs ~40 ms of start-up; only a terminal needs it)

    match = is_match(hit)
    text = Text()
    text.append(hit.host, style=host_style(hit.host) if colour else None)
    text.append(" ")
    text.append(hit.source, style="dim" if colour else None)
    text.append(": " if match else "- ", style="dim" if colour else None)
    body = Text(hit.line, style=(_LEVEL_STYLE.get(hit.level or "", "") if colour else ""))
    if colour and match and highlight is not None:
        for start, end in highlight.spans(hit.line):
            body.stylize(_MATCH_STYLE, start, end)
    text.append_text(body)
    return text


class Printer:
    """Prints records in one format to a text stream (``wharf grep``, ``wharf tail``): text on a
    terminal goes through rich, everything else straight out."""

    def __init__(
        self, fmt: str, out: TextIO | None = None, highlight: Highlighter | None = None
    ) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        terminal = fmt == "text" and self.out.isatty()
        self._console: Console | None = None
        if terminal:
            from cli._common import console  # noqa: PLC0415 (lazy: it brings typer; renderers alone must not need it)

            self._console = console()
        self._colour = terminal and "NO_COLOR" not in os.environ
        self._highlight = highlight
        self._render = renderer(fmt)

    def record(self, hit: Hit) -> None:
        """Print one record."""
        if self._console is not None:
            text = styled_text(hit, colour=self._colour, highlight=self._highlight)
            self._console.print(text, soft_wrap=True)
        else:
            self.out.write(self._render(hit) + "\n")

    def separator(self) -> None:
        """grep's ``--`` between context groups (nothing in json: records carry ``group``)."""
        if self.fmt == "json":
            return
        if self._console is not None:
            self._console.print("--", style="cyan" if self._colour else None)
        else:
            self.out.write("--\n")

    def flush(self) -> None:
        """Flush buffered output (streams flush after every record batch)."""
        self.out.flush()
