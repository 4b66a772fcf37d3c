"""What ``wharf grep`` and ``wharf tail`` share: their options, the output format, and building
their requests.

Requests are ``wharf.api`` Structs: building one runs every check the collector runs (a limit,
a context size, "count and files exclude each other"), so a bad command line fails before it is
sent, with no second copy of the rules here. The messages of those checks name the API's
parameters; ``build`` says them in the command's own options (``-n``, not ``parameter n``).
How records are printed is ``cli.render``'s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from cli._common import EXIT_MATCH, stdout_is_terminal
from cli.render import FORMAT_HELP, parse_format
from wharf.api import OutOfBounds, Params
from wharf.errors import InvalidArgument

P = TypeVar("P", bound=Params)


def complete_topic(incomplete: str) -> list[str]:
    """Shell completion for ``-t``: the collector's topics (nothing if it cannot be reached
    within a second: completion must never hang a shell)."""
    from cli.http_client import Client  # noqa: PLC0415 (lazy: the HTTP client only when completing (CLI start-up))

    try:
        topics = Client(None, timeout=1.0).topics().topics
        return [t.name for t in topics if t.name.startswith(incomplete)]
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
        "-o", "--output", help=f"{FORMAT_HELP} (default: text on a terminal, raw when piped)."
    ),
]
HttpUrl = Annotated[
    str | None,
    typer.Option(
        "--http", help="Collector API URL (default: $WHARF_HTTP, then http://127.0.0.1:7080)."
    ),
]


def output_format(choice: str | None) -> str:
    """The format to print in (see ``cli.render``): ``text`` on a terminal and ``raw`` when
    piped unless ``-o`` says otherwise."""
    if choice is None:
        return "text" if stdout_is_terminal() else "raw"
    return parse_format(choice)


# -- requests -------------------------------------------------------------------------------


def build(
    cls: type[P],
    options: Mapping[str, str],
    *,
    rephrase: Mapping[str, str] | None = None,
    **values: Any,
) -> P:
    """``cls(**values)``; a failed check is re-raised in the command line's words: ``options``
    maps API parameters to the options that set them (``{"n": "-n"}``), ``rephrase`` whole
    messages to the command's own (``count=1 and files=1 ...`` -> ``give -c or -l ...``)."""
    try:
        return cls(**values)
    except OutOfBounds as exc:
        option = options.get(exc.parameter)
        if option is None:
            raise
        if exc.minimum:
            raise InvalidArgument(
                f"{option} must be {exc.bound} or more, got {exc.value}"
            ) from None
        raise InvalidArgument(f"{option} {exc.value} exceeds {exc.bound}") from None
    except InvalidArgument as exc:
        message = str(exc)
        if rephrase and message in rephrase:
            raise InvalidArgument(rephrase[message]) from None
        raise


# -- output ---------------------------------------------------------------------------------


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
