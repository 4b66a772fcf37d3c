"""``wharf grep``: search stored logs through the collector's HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from wharf.cli._common import EXIT_MATCH, EXIT_NO_MATCH, user_errors
from wharf.cli._records import (
    Hosts,
    HttpUrl,
    Output,
    Printer,
    Sources,
    Topics,
    Where,
    filter_params,
    output_format,
    quiet_broken_pipe,
    warn,
)
from wharf.cli.http_client import Client
from wharf.cli.timeparse import time_range
from wharf.errors import InvalidArgument


def grep(
    pattern: Annotated[str, typer.Argument(help="RE2 regular expression (a literal with -F).")],
    topic: Topics = None,
    fixed: Annotated[
        bool, typer.Option("-F", "--fixed-strings", help="PATTERN is a literal.")
    ] = False,
    ignore_case: Annotated[bool, typer.Option("-i", "--ignore-case", help="Ignore case.")] = False,
    invert: Annotated[
        bool, typer.Option("-v", "--invert-match", help="Select non-matching lines.")
    ] = False,
    count: Annotated[
        bool, typer.Option("-c", "--count", help="Print only the number of matching records.")
    ] = False,
    output: Output = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Stop after N records.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only the last DUR: 15m, 2h, 7d.")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="From this time (RFC 3339, a date, or 2h ago).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to this time (exclusive).")] = None,
    host: Hosts = None,
    source: Sources = None,
    where: Where = None,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Newest records first.")
    ] = False,
    http: HttpUrl = None,
) -> None:
    """Print stored records whose line matches PATTERN, oldest first, merged across hosts.

    Exit status as grep: 0 when something matched, 1 when nothing did, 2 on error.

    Examples:
      [bold]wharf grep -t nginx ' 50[0-9] ' --since 1h[/bold]
      [bold]wharf grep -F -c 'Failed password' -t auth[/bold]
      [bold]wharf grep '' -t nginx --where 'status>=500 and path~"^/api"' -o json[/bold]
    """
    with user_errors():
        fmt = output_format(output)
        if limit is not None and limit < 1:
            raise InvalidArgument(f"--limit must be at least 1, got {limit}")
        lo, hi = time_range(since, start, end)
        params = filter_params(topic, host, source, where)
        params.append(("q", pattern))
        params += [
            (name, 1)
            for name, on in (("fixed", fixed), ("icase", ignore_case), ("invert", invert))
            if on
        ]
        if lo is not None:
            params.append(("since", lo))
        if hi is not None:
            params.append(("until", hi))
        client = Client(http)
        if count:
            params.append(("count", 1))
            matched = _print_count(client, params, fmt)
        else:
            if limit is not None:
                params.append(("limit", limit))
            if newest_first:
                params.append(("order", "desc"))
            matched = _print_records(client, params, fmt)
    raise typer.Exit(EXIT_MATCH if matched else EXIT_NO_MATCH)


def _print_records(client: Client, params: list[tuple[str, str | int]], fmt: str) -> int:
    printer = Printer(fmt)
    matched = 0
    with quiet_broken_pipe():
        for item in client.stream("/v1/search", params):
            if "done" in item:
                _report(item)
                break
            printer.record(item)
            matched += 1
        printer.flush()
    return matched


def _print_count(client: Client, params: list[tuple[str, str | int]], fmt: str) -> int:
    total = 0
    for item in client.stream("/v1/search", params):
        if "done" in item:
            total = int(item.get("count", 0))
            _report(item)
    with quiet_broken_pipe():
        print(f'{{"count": {total}}}' if fmt == "json" else total, flush=True)
    return total


def _report(done: dict[str, object]) -> None:
    stats = done.get("stats")
    if isinstance(stats, dict) and stats.get("errors"):
        messages = stats.get("error_messages") or []
        first = f": {messages[0]}" if isinstance(messages, list) and messages else ""
        warn(f"{stats['errors']} damaged batch(es) were skipped{first}")
