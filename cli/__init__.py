"""The ``wharf`` command line. Thin: each command calls library code; only CLI code uses rich.

Commands are registered lazily: ``wharf grep ...`` imports the grep command's module only, not
the collector's, the replay sinks' or the shipper's (together ~80 ms of start-up that a
one-second query would otherwise pay). ``--help``, completion and ``cli.app`` build the
whole tree.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from typing import Annotated, Any, Final

import typer

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


def build_app(only: str | None = None) -> typer.Typer:
    """The typer app with every command, or with just ``only`` (what one invocation needs)."""
    app = typer.Typer(
        name="wharf",
        help="Wharf: ship, store, tail, grep and replay logs.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    @app.callback()
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                help="Print the version and exit.",
                is_eager=True,
                callback=_print_version,
            ),
        ] = False,
    ) -> None:
        """Wharf: ship, store, tail, grep and replay logs."""

    for name, (module, attr, kind) in _COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attr)
        if kind == "group":
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def _print_version(value: bool) -> None:
    # The installed distribution's version (the Debian package installs the same one), not a
    # constant that could drift from pyproject.toml.
    if value:
        typer.echo(f"wharf {importlib.metadata.version('wharf')}")
        raise typer.Exit()


def __getattr__(name: str) -> Any:
    if name == "app":  # the full tree, built on first use (tests, documentation tools)
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    only = args[0] if args and args[0] in _COMMANDS and not completing else None
    if args == ["--version"]:
        only = ""  # no command needed: skip importing them all
    build_app(only)()
