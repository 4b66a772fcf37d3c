"""Printing records for ``wharf grep`` and ``wharf tail``, and the options they share.

Formats (``-o``):

- ``text``: ``host source: line``; on a terminal each host has its own colour (a hash of its
  name picks it from a palette, so ``web-3`` is the same colour in every run), error and warn
  lines are red and yellow, and the matched text is highlighted as ``grep --color`` does. A
  context line reads ``host source- line``, as grep marks context with ``-``.
- ``raw``: the line alone, exactly as stored: ``wharf grep ... | diff - <(grep ...)`` works.
- ``json``: one object per record, as the API sends it (``topic, partition, offset, ts, host,
  source, line, fields, level``; in context mode also ``match`` and ``group``).
- ``logfmt``: ``ts=... host=... source=... level=... <fields> line="..."``.
- a template, any text with ``{name}`` in it: ``'{ts} {host} {line}'``. Names: ``ts`` (RFC 3339,
  UTC), ``local`` (the time in the local zone), ``ts_ns``, ``host``, ``source``, ``line``,
  ``level``, ``topic``, ``partition``, ``offset``, ``fields`` (JSON); any other name is a parsed
  field (``{status}``, ``{http.method}``), empty when the record has none. ``{{`` is a brace.

The default is ``text`` on a terminal and ``raw`` when piped. Colour only ever goes to a
terminal, never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, TextIO

import typer

from cli._common import EXIT_MATCH, console, stdout_is_terminal
from wharf.errors import InvalidArgument

if TYPE_CHECKING:  # rich is imported only to colour a terminal's output (see Printer)
    from rich.text import Text

FORMATS: Final = ("text", "raw", "json", "logfmt")


def complete_topic(incomplete: str) -> list[str]:
    """Shell completion for ``-t``: the collector's topics (nothing if it cannot be reached
    within a second: completion must never hang a shell)."""
    from cli.http_client import Client  # noqa: PLC0415 (lazy: rich/re2/the HTTP client only when used (CLI start-up))

    try:
        topics = Client(None, timeout=1.0).get_json("/v1/topics")["topics"]
        return [t["name"] for t in topics if str(t["name"]).startswith(incomplete)]
    except Exception:
        return []


Topics = Annotated[
    list[str] | None,
    typer.Option(
        "-t",
        "--topic",
        help="Topic to read (repeatable; default: all topics).",
        autocompletion=complete_topic,
    ),
]
Hosts = Annotated[
    list[str] | None, typer.Option("--host", help="Only hosts matching this glob (repeatable).")
]
Sources = Annotated[
    list[str] | None,
    typer.Option("--source", help="Only sources (files) matching this glob (repeatable)."),
]
Where = Annotated[
    str | None,
    typer.Option("--where", help="Filter on fields: 'status>=500 and level=error'."),
]
Levels = Annotated[
    list[str] | None,
    typer.Option(
        "--level",
        help="Only these levels (repeatable): error, --level warn --level error, or warn+ for "
        "warn and everything more severe; none selects records without a level.",
    ),
]
Output = Annotated[
    str | None,
    typer.Option(
        "-o",
        "--output",
        help="text, raw, json, logfmt or a template like '{ts} {host} {line}' "
        "(default: text on a terminal, raw when piped).",
    ),
]
HttpUrl = Annotated[
    str | None,
    typer.Option(
        "--http", help="Collector API URL (default: $WHARF_HTTP, then http://127.0.0.1:7080)."
    ),
]

_TEMPLATE_FIELD: Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def output_format(choice: str | None) -> str:
    """The format to print in: a name from ``FORMATS`` or a template."""
    if choice is None:
        return "text" if stdout_is_terminal() else "raw"
    if choice in FORMATS or "{" in choice:
        return choice
    raise InvalidArgument(
        f"unknown output format {choice!r}: use text, raw, json, logfmt or a template like "
        "'{ts} {host} {line}'"
    )


def filter_params(
    topics: list[str] | None,
    hosts: list[str] | None,
    sources: list[str] | None,
    where: str | None,
    levels: list[str] | None = None,
) -> list[tuple[str, str | int]]:
    """Query parameters common to search and tail."""
    params: list[tuple[str, str | int]] = [("topic", t) for t in topics or ()]
    params += [("host", h) for h in hosts or ()]
    params += [("source", s) for s in sources or ()]
    params += [("level", v) for v in levels or ()]
    if where:
        params.append(("where", where))
    return params


# -- values ---------------------------------------------------------------------------------


def rfc3339(ns: object, local: bool = False) -> str:
    """A record time as RFC 3339 with milliseconds (UTC with ``Z``, or the local zone)."""
    if not isinstance(ns, int):
        return ""
    seconds, rest = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(seconds, UTC)
    if local:
        dt = dt.astimezone()
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1_000_000:03d}"
    return text + ("Z" if not local else dt.strftime("%z")[:3] + ":" + dt.strftime("%z")[3:])


def _field(fields: object, name: str) -> object:
    if not isinstance(fields, dict):
        return None
    if name in fields:
        return fields[name]
    head, _, rest = name.partition(".")
    return _field(fields.get(head), rest) if rest else None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def template_value(rec: dict[str, Any], name: str) -> str:
    """The text of ``{name}`` for a record (see the module docstring)."""
    if name == "ts":
        return rfc3339(rec.get("ts"))
    if name == "local":
        return rfc3339(rec.get("ts"), local=True)
    if name == "ts_ns":
        return _text(rec.get("ts"))
    if name in ("host", "source", "line", "level", "topic", "partition", "offset", "fields"):
        return _text(rec.get(name))
    return _text(_field(rec.get("fields"), name.removeprefix("fields.")))


def render_template(template: str, rec: dict[str, Any]) -> str:
    """``template`` with every ``{name}`` replaced."""

    def one(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole in ("{{", "}}"):
            return whole[0]
        return template_value(rec, m.group(1))

    return _TEMPLATE_FIELD.sub(one, template)


_LOGFMT_BARE: Final = re.compile(r"[^\s=\"\\]+")


def _logfmt_value(value: object) -> str:
    text = _text(value)
    if text and _LOGFMT_BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _flatten(prefix: str, value: object, out: list[tuple[str, object]]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append((prefix, value))


def render_logfmt(rec: dict[str, Any]) -> str:
    """One logfmt line: the record's own attributes, its fields (flattened with dots), the line."""
    pairs: list[tuple[str, object]] = [
        ("ts", rfc3339(rec.get("ts"))),
        ("host", rec.get("host")),
        ("source", rec.get("source")),
    ]
    if rec.get("level"):
        pairs.append(("level", rec["level"]))
    fields: list[tuple[str, object]] = []
    _flatten("", rec.get("fields") or {}, fields)
    pairs += [(k if k not in ("ts", "host", "source", "level", "line") else f"fields.{k}", v)
              for k, v in fields]  # fmt: skip
    pairs.append(("line", rec.get("line", "")))
    return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs if k)


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
        import re2  # noqa: PLC0415 (lazy: rich/re2/the HTTP client only when used (CLI start-up))

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


class Printer:
    """Prints records in one format; coloured text goes through rich, the rest straight out."""

    def __init__(
        self, fmt: str, out: TextIO | None = None, highlight: Highlighter | None = None
    ) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        colour = fmt == "text" and stdout_is_terminal() and "NO_COLOR" not in os.environ
        self._console = console() if fmt == "text" and stdout_is_terminal() else None
        self._colour = colour
        self._highlight = highlight

    def record(self, rec: dict[str, Any]) -> None:
        """Print one record as the API sent it."""
        fmt = self.fmt
        if fmt == "json":
            self.out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        elif fmt == "raw":
            self.out.write(f"{rec.get('line', '')}\n")
        elif fmt == "logfmt":
            self.out.write(render_logfmt(rec) + "\n")
        elif fmt != "text":
            self.out.write(render_template(fmt, rec) + "\n")
        elif self._console is not None:
            self._console.print(self._styled(rec), soft_wrap=True)
        else:
            mark = ":" if rec.get("match", True) else "-"
            self.out.write(
                f"{rec.get('host', '')} {rec.get('source', '')}{mark} {rec.get('line', '')}\n"
            )

    def _styled(self, rec: dict[str, Any]) -> Text:
        from rich.text import Text  # noqa: PLC0415 (lazy: rich/re2/the HTTP client only when used (CLI start-up))

        host = str(rec.get("host", ""))
        line = str(rec.get("line", ""))
        match = rec.get("match", True)
        text = Text()
        colour = self._colour
        text.append(host, style=host_style(host) if colour else None)
        text.append(" ")
        text.append(str(rec.get("source", "")), style="dim" if colour else None)
        text.append(": " if match else "- ", style="dim" if colour else None)
        body = Text(line, style=(_LEVEL_STYLE.get(rec.get("level") or "", "") if colour else ""))
        if colour and match and self._highlight is not None:
            for start, end in self._highlight.spans(line):
                body.stylize(_MATCH_STYLE, start, end)
        text.append_text(body)
        return text

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


def warn(message: str) -> None:
    """One ``wharf: warning: ...`` line on stderr."""
    print(f"wharf: warning: {message}", file=sys.stderr)


@contextmanager
def quiet_broken_pipe() -> Iterator[None]:
    """``wharf grep ... | head`` closes the pipe early: stop quietly, as grep does."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
        raise typer.Exit(EXIT_MATCH) from None
