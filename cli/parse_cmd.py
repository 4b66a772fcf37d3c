"""``wharf parse``: try a parser on sample lines, locally, and see the records it makes."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO, Final

import msgspec
import typer

from parsers import PARSER_NAMES, Record, UnknownParser, get_parser

# Rows per rich table: the table is printed in chunks so a large input streams instead of
# being held in memory until the end.
_TABLE_CHUNK: Final = 500
# Characters of the fields column shown in a table row (the JSON output has everything).
_TABLE_FIELDS_MAX: Final = 200


class ParseResult(Record, kw_only=True, gc=False):
    """A record as ``wharf parse -o json`` prints it: the record, plus the parser's error."""

    error: str | None = None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"wharf parse: {message}", err=True)
    return typer.Exit(code=2)


def _option_value(text: str) -> Any:
    """``true``/``false``/numbers/``null`` as JSON scalars; anything else as the text itself."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    if value is None or isinstance(value, bool | int | float):
        return value
    return text


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--option expects key=value, got {pair!r}")
        options[key.replace("-", "_")] = _option_value(value)
    return options


def _lines(stream: BinaryIO) -> Iterator[tuple[int, str]]:
    """(byte offset, text) of each line: split on LF, a CR before it dropped, invalid UTF-8
    replaced; a last line without LF is a line too."""
    offset = 0
    for raw in stream:
        start = offset
        offset += len(raw)
        end = len(raw)
        if raw.endswith(b"\n"):
            end -= 2 if raw.endswith(b"\r\n") else 1
        yield start, raw[:end].decode("utf-8", "replace")


def _ts_text(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


def _print_table(rows: list[ParseResult]) -> None:
    from rich.console import Console  # noqa: PLC0415 (rich costs ~40 ms of start-up; only the table needs it)
    from rich.markup import escape  # noqa: PLC0415 (rich costs ~40 ms of start-up; only the table needs it)
    from rich.table import Table  # noqa: PLC0415 (rich costs ~40 ms of start-up; only the table needs it)

    table = Table(show_lines=False)
    for name in ("offset", "ts", "level", "fields", "error"):
        table.add_column(name, overflow="fold")
    for row in rows:
        fields = msgspec.json.encode(row.fields).decode()
        if len(fields) > _TABLE_FIELDS_MAX:
            fields = fields[: _TABLE_FIELDS_MAX - 1] + "…"
        table.add_row(
            str(row.offset),
            _ts_text(row.ts),
            escape(row.level or ""),
            escape(fields),
            escape(row.error or ""),
        )
    Console().print(table)


def parse(
    file: Annotated[str, typer.Argument(help="File to read; - for standard input.")] = "-",
    parser: Annotated[
        str,
        typer.Option("--parser", "-p", help=f"Parser: {', '.join(PARSER_NAMES)}."),
    ] = "auto",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="json (one object per line) or table. Default: table on a terminal, else json.",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="A parser option as key=value (repeatable), e.g. mode=rfc5424, tz=Europe/Paris.",
        ),
    ] = None,
) -> None:
    """Parse each line of FILE (or stdin) and print the record it becomes.

    Exit status: 0 if all lines parsed, 1 if some did not (see "error"), 2 on bad usage or input.
    """
    if output is None:
        output = "table" if sys.stdout.isatty() else "json"
    if output not in {"json", "table"}:
        raise _fail(f"unknown output format {output!r}: expected json or table")
    options = _options(option or [])
    try:
        p = get_parser(parser, **options)
    except UnknownParser as exc:
        raise _fail(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise _fail(f"cannot build parser {parser!r}: {exc}") from None

    host = socket.gethostname()
    source = "-" if file == "-" else file
    try:
        stream: BinaryIO = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None

    encoder = msgspec.json.Encoder()
    write = sys.stdout.buffer.write
    rows: list[ParseResult] = []
    failed = False
    try:
        with stream:
            for offset, line in _lines(stream):
                got = p.parse(line)
                failed = failed or got.error is not None
                result = ParseResult(
                    ts=got.ts if got.ts is not None else time.time_ns(),
                    line=line,
                    host=host,
                    source=source,
                    fields=got.fields,
                    level=got.level,
                    offset=offset,
                    error=got.error,
                )
                if output == "json":
                    write(encoder.encode(result) + b"\n")
                else:
                    rows.append(result)
                    if len(rows) >= _TABLE_CHUNK:
                        _print_table(rows)
                        rows.clear()
        if rows:
            _print_table(rows)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(code=0) from None
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None
    if failed:
        raise typer.Exit(code=1)
