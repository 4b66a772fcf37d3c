"""``wharf shipper run`` without typer: the daemon's process holds what the daemon runs.

The daemon lives for months with every module it imported. typer, click and
``importlib.metadata`` (``wharf --version``) are ~3 MB of its 60 MB budget (bench/shipper.py;
bench/shipper_memory.py has the breakdown), so ``cli.main`` hands the command here when its
arguments are the command's own options and nothing else (``parse``). Anything else
(``--help``, a typo, a value that looks like an option, shell completion) goes through typer
exactly as before, and typer says what is wrong. The command's body, ``run``, is the same
either way (``cli.shipper_cmd.run`` calls it), and so are its output and exit status.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Final

from cli._common import EXIT_ERROR, USER_ERRORS, error_line

DEFAULT_CONFIG: Final = Path("/etc/wharf/shipper.toml")
DEFAULT_LOG_LEVEL: Final = "info"

# The command's options as typer declares them (``cli.shipper_cmd.run``): name -> parameter.
_OPTIONS: Final = {"--config": "config", "-c": "config", "--log-level": "log_level"}

# mallopt(3)'s M_ARENA_MAX (glibc's malloc.h). glibc gives threads that allocate their own
# arenas, up to 8 per core; the daemon's worker threads (batch builds, checkpoint and spool
# writes) then each keep freed multi-MiB batch buffers mapped in theirs. One arena: peak RSS
# 7-9 MB lower at the same lines/s (bench/shipper_memory.py). The GIL serializes most of our
# allocations anyway; zstd allocates its contexts once per thread.
_M_ARENA_MAX: Final = -8
_ARENAS: Final = 1


def parse(args: list[str]) -> tuple[Path, str] | None:
    """``(config, log_level)`` from the arguments after ``shipper run``, or ``None`` for
    anything that is not plainly the command's options (typer then handles it). Options are
    read as click reads them: ``--config X``, ``--config=X``, ``-c X``, ``-cX``; the last one
    given wins."""
    values = {"config": str(DEFAULT_CONFIG), "log_level": DEFAULT_LOG_LEVEL}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if eq and name.startswith("--") and name in _OPTIONS:
            pass
        elif arg in _OPTIONS:
            if not rest:
                return None
            name, value = arg, rest.pop(0)
        elif arg.startswith("-c") and not arg.startswith("--"):
            name, value = "-c", arg[2:]
        else:
            return None
        if not value or value.startswith("-"):
            return None
        values[_OPTIONS[name]] = value
    return Path(values["config"]), values["log_level"]


def run(config: Path, log_level: str) -> int:
    """Run the daemon until SIGTERM; its exit status. A user error (a bad config, a state
    directory we cannot write) is one ``wharf: ...`` line on stderr and status 2."""
    _one_malloc_arena()
    from shipper.daemon import run as run_daemon  # noqa: PLC0415 (after the arena limit: the daemon's imports allocate)

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return run_daemon(config)
    except USER_ERRORS as exc:
        print(f"wharf: {error_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def main(args: list[str]) -> int | None:
    """The exit status of ``wharf shipper run ARGS`` run here, or ``None`` when typer must
    handle ``args``. Ctrl-C before the daemon's own handler is in place ends it as click
    would: a blank line, ``Aborted!``, status 1."""
    options = parse(args)
    if options is None:
        return None
    try:
        return run(*options)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        print("Aborted!", file=sys.stderr)
        return 1


def _one_malloc_arena() -> None:
    """Limit glibc's malloc to one arena (see ``_M_ARENA_MAX``), unless ``MALLOC_ARENA_MAX``
    in the environment says otherwise (glibc read it at start-up)."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes  # noqa: PLC0415 (the daemon's process only; watchdog imports it anyway)

    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's C library
    except (OSError, AttributeError):
        return  # a C library without mallopt: nothing to tune
    mallopt(_M_ARENA_MAX, _ARENAS)  # musl accepts and ignores it
