"""``wharf groups ...``: consumer groups over the collector's HTTP API (list, describe with lag
per partition, reset). A table on a terminal, one JSON object per line when piped or with
``-o json``."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import msgspec
import typer
from rich.markup import escape
from rich.table import Table

from cli._common import console, stdout_is_terminal, user_errors
from cli._records import HttpUrl
from cli.http_client import Client, is_error
from cli.timeparse import parse_time
from wharf.api import GroupInfo, ResetRequest
from wharf.errors import InvalidArgument, UnknownGroup, WharfError

app = typer.Typer(
    help="Consumer groups: committed offsets and lag; move them.", no_args_is_help=True
)

Output = Annotated[
    str, typer.Option("-o", "--output", help="table or json (default: table on a terminal).")
]


def _as_json(output: str) -> bool:
    choice = output.strip().lower()
    if choice not in ("", "table", "json"):
        raise InvalidArgument(f"unknown output format {output!r}: use table or json")
    return choice == "json" or (choice == "" and not stdout_is_terminal())


def _table(info: GroupInfo, title: str | None = None) -> Table:
    # Names come from the user or the collector: data, not markup (escape every cell and title).
    table = Table(
        "topic", "partition", "committed", "start", "end", "lag", title=escape(title or info.group)
    )
    for row in info.offsets:
        table.add_row(
            escape(row.topic),
            str(row.partition),
            "-" if row.committed is None else str(row.committed),
            str(row.start_offset),
            str(row.end_offset),
            str(row.lag),
        )
    return table


def _topics(info: GroupInfo) -> list[str]:
    return sorted({row.topic for row in info.offsets})


@app.command("list")
def list_groups(output: Output = "", http: HttpUrl = None) -> None:
    """Every consumer group with its topics and total lag (records not yet consumed).

    Examples:

      [bold]wharf groups list[/bold]

      [bold]wharf groups list -o json | jq -r 'select(.lag > 1000) | .group'[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        client = Client(http)
        groups = [client.group(name) for name in client.groups().groups]
    if as_json:
        for g in groups:
            print(json.dumps({"group": g.group, "topics": _topics(g), "lag": g.lag}))
        return
    table = Table("group", "topics", "lag")
    for g in groups:
        table.add_row(escape(g.group), escape(", ".join(_topics(g))), str(g.lag))
    console().print(table)


@app.command("describe")
def describe(
    group: Annotated[str, typer.Argument(help="Group name.")],
    output: Output = "",
    http: HttpUrl = None,
) -> None:
    """A group's committed offset, the partition's bounds and the lag, per topic partition
    (committed "-": nothing committed yet, the whole partition is lag).

    Examples:

      [bold]wharf groups describe etl[/bold]

      [bold]wharf groups describe etl -o json[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        info = Client(http).group(group)
    if as_json:
        print(msgspec.json.encode(info).decode())
        return
    console().print(_table(info, f"{info.group}  (lag {info.lag})"))


@app.command("reset")
def reset(
    group: Annotated[str, typer.Argument(help="Group name (created if it does not exist).")],
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "-t",
            "--topic",
            help="Topic whose offsets move (repeatable; default: every topic of the group).",
        ),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option("--to-time", help="The first record stamped at or after TS."),
    ] = None,
    to_offset: Annotated[
        int | None, typer.Option("--to-offset", help="This offset (clamped into each partition).")
    ] = None,
    to_earliest: Annotated[
        bool, typer.Option("--to-earliest", help="The oldest record still kept.")
    ] = False,
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="The end: skip everything stored so far.")
    ] = False,
    partition: Annotated[
        int | None, typer.Option("--partition", help="Only this partition (default: all).")
    ] = None,
    output: Output = "",
    http: HttpUrl = None,
) -> None:
    """Move a group's committed offsets; the next `wharf replay --group` starts
    there. Offsets are clamped into each partition's kept range. Do not run it
    while a replay of that group runs: its next commit moves them again.

    Examples:

      [bold]wharf groups reset etl --to-time 2024-05-01T00:00:00Z[/bold]

      [bold]wharf groups reset etl -t orders --to-earliest[/bold]

      [bold]wharf groups reset etl -t orders --partition 2 --to-offset 1500[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        given = [
            name
            for name, on in (
                ("--to-time", to_time is not None),
                ("--to-offset", to_offset is not None),
                ("--to-earliest", to_earliest),
                ("--to-latest", to_latest),
            )
            if on
        ]
        if len(given) != 1:
            raise InvalidArgument(
                "give exactly one of --to-time, --to-offset, --to-earliest, --to-latest"
                + (f" (got {' and '.join(given)})" if given else "")
            )
        if to_offset is not None and to_offset < 0:
            raise InvalidArgument(f"--to-offset must be 0 or more, got {to_offset}")
        if partition is not None and partition < 0:
            raise InvalidArgument(f"--partition must be 0 or more, got {partition}")
        to_ns = parse_time(to_time) if to_time is not None else None
        to: Literal["earliest", "latest"] | None = None
        if to_earliest or to_latest:
            to = "earliest" if to_earliest else "latest"
        client = Client(http)
        try:
            before = client.group(group)
        except WharfError as exc:
            if not is_error(exc, UnknownGroup):
                raise
            before = GroupInfo(group, [], 0)  # a new group: the reset creates it
        topics = sorted(set(topic or _topics(before)))
        if not topics:
            raise InvalidArgument(f"group {group!r} has no offsets yet: name the topic with -t")
        after = before
        for t in topics:
            req = ResetRequest(t, partition=partition, to_offset=to_offset, to_time=to_ns, to=to)
            after = client.reset(group, req)
    if as_json:
        print(msgspec.json.encode(after).decode())
        return
    was = {(r.topic, r.partition): r.committed for r in before.offsets}
    table = Table("topic", "partition", "was", "now", "end", "lag", title=f"{escape(group)}: reset")
    for row in after.offsets:
        if row.topic not in topics or (partition is not None and row.partition != partition):
            continue
        old = was.get((row.topic, row.partition))
        table.add_row(
            escape(row.topic),
            str(row.partition),
            "-" if old is None else str(old),
            str(row.committed),
            str(row.end_offset),
            str(row.lag),
        )
    console().print(table)
