"""The ``wharf`` command line. Thin: each command calls library code; only CLI code uses rich.

Commands are registered lazily: ``wharf grep ...`` imports the grep command's module only, not
the collector's, the replay sinks' or the shipper's (together ~80 ms of start-up that a
one-second query would otherwise pay). ``--help``, completion and ``cli.app`` build the
whole tree (``cli._app``).

``wharf shipper run`` with nothing but its own options skips typer altogether
(``cli.shipper_run``): the daemon lives for months with every module it imported.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Final

# name -> (module, attribute, kind): "command" is a function, "group" a typer app.
_COMMANDS: Final[dict[str, tuple[str, str, str]]] = {
    "collector": ("cli.collector_cmd", "app", "group"),
    "topics": ("cli.topics_cmd", "app", "group"),
    "groups": ("cli.groups_cmd", "app", "group"),
    "shipper": ("cli.shipper_cmd", "app", "group"),
    "parse": ("cli.parse_cmd", "parse", "command"),
    "ship": ("cli.ship_cmd", "ship", "command"),
    "grep": ("cli.grep_cmd", "grep", "command"),
    "tail": ("cli.tail_cmd", "tail", "command"),
    "replay": ("cli.replay_cmd", "replay", "command"),
    "status": ("cli.status_cmd", "status", "command"),
    "config": ("cli.config_cmd", "app", "group"),
}


def __getattr__(name: str) -> Any:
    if name == "build_app":
        from cli._app import build_app  # noqa: PLC0415 (typer: see the module docstring)

        return build_app
    if name == "app":  # the full tree, built on first use (tests, documentation tools)
        from cli._app import build_app  # noqa: PLC0415 (typer: see the module docstring)

        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    if not completing and args[:2] == ["shipper", "run"]:
        from cli import shipper_run  # noqa: PLC0415 (no typer: see the module docstring)

        status = shipper_run.main(args[2:])
        if status is not None:
            sys.exit(status)
    only = args[0] if args and args[0] in _COMMANDS and not completing else None
    if args == ["--version"]:
        only = ""  # no command needed: skip importing them all
    from cli._app import build_app  # noqa: PLC0415 (typer: see the module docstring)

    build_app(only)()
