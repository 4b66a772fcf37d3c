"""Printing records for ``wharf grep`` and ``wharf tail``, and the options they share.

Formats: ``text`` (``host source: line``, coloured on a terminal), ``raw`` (the line only) and
``json`` (one object per record, as the API sends it). The default is ``text`` on a terminal and
``raw`` when piped, so ``wharf grep ... | wc -l`` and a diff against GNU grep just work.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final, TextIO

import typer
from rich.text import Text

from wharf.cli._common import EXIT_MATCH, console, stdout_is_terminal
from wharf.errors import InvalidArgument

FORMATS: Final = ("text", "raw", "json")

Topics = Annotated[
    list[str] | None,
    typer.Option("-t", "--topic", help="Topic to read (repeatable; default: all topics)."),
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
Output = Annotated[
    str | None,
    typer.Option(
        "-o", "--output", help="text, raw or json (default: text on a terminal, raw piped)."
    ),
]
HttpUrl = Annotated[
    str | None,
    typer.Option(
        "--http", help="Collector API URL (default: $WHARF_HTTP, then http://127.0.0.1:7080)."
    ),
]


def output_format(choice: str | None) -> str:
    """The format to print in."""
    if choice is None:
        return "text" if stdout_is_terminal() else "raw"
    if choice not in FORMATS:
        raise InvalidArgument(f"unknown output format {choice!r}: use text, raw or json")
    return choice


def filter_params(
    topics: list[str] | None,
    hosts: list[str] | None,
    sources: list[str] | None,
    where: str | None,
) -> list[tuple[str, str | int]]:
    """Query parameters common to search and tail."""
    params: list[tuple[str, str | int]] = [("topic", t) for t in topics or ()]
    params += [("host", h) for h in hosts or ()]
    params += [("source", s) for s in sources or ()]
    if where:
        params.append(("where", where))
    return params


class Printer:
    """Prints records in one format; coloured text goes through rich, the rest straight out."""

    def __init__(self, fmt: str, out: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        self._console = console() if fmt == "text" and stdout_is_terminal() else None

    def record(self, rec: dict[str, Any]) -> None:
        """Print one record as the API sent it."""
        if self.fmt == "json":
            self.out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        elif self.fmt == "raw":
            self.out.write(f"{rec.get('line', '')}\n")
        elif self._console is not None:
            text = Text()
            text.append(str(rec.get("host", "")), style="cyan")
            text.append(" ")
            text.append(str(rec.get("source", "")), style="magenta")
            text.append(": ", style="dim")
            text.append(str(rec.get("line", "")), style=_LEVEL_STYLE.get(rec.get("level") or ""))
            self._console.print(text, soft_wrap=True)
        else:
            self.out.write(
                f"{rec.get('host', '')} {rec.get('source', '')}: {rec.get('line', '')}\n"
            )

    def flush(self) -> None:
        """Flush buffered output (streams flush after every record batch)."""
        self.out.flush()


_LEVEL_STYLE: Final = {"error": "red", "fatal": "bold red", "warn": "yellow"}


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
