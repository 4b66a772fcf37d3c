"""The typer tree of ``wharf``: every command, or just the one an invocation names
(``cli.main``). Apart from ``cli`` so that ``wharf shipper run`` can start the daemon without
importing typer at all (``cli.shipper_run``)."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Annotated

import typer

from cli import _COMMANDS


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
