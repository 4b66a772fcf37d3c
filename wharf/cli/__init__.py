"""The ``wharf`` command line. Thin: each command calls library code; only CLI code uses rich."""

from __future__ import annotations

import typer

from wharf.cli import (
    collector_cmd,
    grep_cmd,
    groups_cmd,
    parse_cmd,
    replay_cmd,
    ship_cmd,
    shipper_cmd,
    status_cmd,
    tail_cmd,
    topics_cmd,
)

app = typer.Typer(
    name="wharf",
    help="Wharf: ship, store, tail, grep and replay logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(collector_cmd.app, name="collector")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(groups_cmd.app, name="groups")
app.add_typer(shipper_cmd.app, name="shipper")
app.command("parse")(parse_cmd.parse)
app.command("ship")(ship_cmd.ship)
app.command("grep")(grep_cmd.grep)
app.command("tail")(tail_cmd.tail)
app.command("replay")(replay_cmd.replay)
app.command("status")(status_cmd.status)


def main() -> None:
    """Console-script entry point."""
    app()
