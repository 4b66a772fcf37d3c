"""``wharf config check``: validate a shipper or collector config before a daemon reads it."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from cli._common import EXIT_ERROR, fail
from wharf.errors import InvalidArgument

app = typer.Typer(help="Check configuration files.", no_args_is_help=True)


class KindChoice(enum.StrEnum):
    """``--kind``: which schema to check the file against."""

    shipper = "shipper"
    collector = "collector"


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="shipper.toml or collector.toml.")],
    kind: Annotated[
        KindChoice | None,
        typer.Option("--kind", help="Check as this kind (default: told by the file's keys)."),
    ] = None,
) -> None:
    """Check a config file: print [bold]ok[/bold] (exit 0), or every error, one per line, as
    FILE:LINE: KEY.PATH: message (exit 2). The kind (shipper or collector) is told by the
    file's keys unless --kind gives it.

    Examples:

      [bold]wharf config check /etc/wharf/shipper.toml[/bold]

      [bold]wharf config check --kind collector collector.toml[/bold]
    """
    from cli.config_check import check_config  # noqa: PLC0415 (lazy: it imports both the shipper's and the collector's config, which other commands must not pay for)

    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror or exc}")
    try:
        found = check_config(data, None if kind is None else kind.value)
    except InvalidArgument as exc:
        fail(f"{file}: {exc}")
    if not found:
        typer.echo("ok")
        return
    for diagnostic in found:
        typer.echo(diagnostic.render(str(file)))
    raise typer.Exit(EXIT_ERROR)
