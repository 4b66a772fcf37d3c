"""Helpers shared by CLI commands: one-line errors with exit code 2, output mode detection.

typer is imported only to exit with an error (``fail``): ``wharf shipper run`` uses
``error_line`` without it (``cli.shipper_run``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn, TypeVar

from wharf.errors import WharfError

if TYPE_CHECKING:  # rich is imported when a console is made: piped output never pays for it
    from rich.console import Console

T = TypeVar("T")

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR = 0, 1, 2


def stdout_is_terminal() -> bool:
    """Whether to print for a human (colour, tables) rather than for a pipe."""
    return sys.stdout.isatty()


def console(stderr: bool = False) -> Console:
    """A rich console that honours ``NO_COLOR`` and plain pipes."""
    from rich.console import Console  # noqa: PLC0415 (rich costs ~40 ms of start-up; only a terminal needs it)

    return Console(stderr=stderr, no_color="NO_COLOR" in os.environ, highlight=False)


def fail(message: str) -> NoReturn:
    """Print ``wharf: <message>`` on stderr and exit 2.

    Plain ``print``, never a rich console: messages hold user and server text (a pattern like
    ``[abc``, a key like ``inputs[0].parser``, a path) that rich would take for markup."""
    import typer  # noqa: PLC0415 (see the module docstring)

    print(f"wharf: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_ERROR)


# What ``user_errors`` turns into one line; anything else is a bug and keeps its traceback.
USER_ERRORS = (WharfError, OSError, UnicodeDecodeError)


def error_line(exc: WharfError | OSError | UnicodeDecodeError) -> str:
    """The one line that says what went wrong (after ``wharf: ``)."""
    if isinstance(exc, WharfError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{':' if where else ''}{where}"
    # A file read as text that is not UTF-8 (a config saved in Latin-1). Readers that know the
    # file name say it (wharf.fsutil.read_config_text); this is the net under the rest.
    bad = exc.object[exc.start : exc.start + 1].hex()
    return f"not UTF-8 text: byte 0x{bad} at offset {exc.start} ({exc.reason})"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn Wharf and OS errors into one clear line and exit code 2, never a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        fail(error_line(exc))


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn`` under ``user_errors``."""
    with user_errors():
        return fn()
    raise AssertionError("unreachable")
