"""``wharf tail``: the newest records, then new ones live, through the collector's HTTP API."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, Final

import typer
from msgspec.structs import replace

from cli._common import EXIT_MATCH, user_errors
from cli._records import (
    Hosts,
    HttpUrl,
    Levels,
    Output,
    Sources,
    Topics,
    Where,
    build,
    output_format,
    quiet_broken_pipe,
)
from cli.http_client import Client
from cli.render import Highlighter, Printer
from wharf.api import Heartbeat, Hit, SearchRequest, TailRequest
from wharf.errors import InvalidArgument, WharfError

# Without a line (records or heartbeat) for this long, the connection is taken as dead and
# re-opened from the last position. The collector sends heartbeats every few seconds.
_STALL_S: Final = 30.0
_RETRY_MIN_S: Final = 0.5
_RETRY_MAX_S: Final = 5.0


def tail(
    topic: Topics = None,
    host: Hosts = None,
    source: Sources = None,
    regex: Annotated[
        str | None, typer.Option("-e", "--regexp", help="Only lines matching this RE2 regex.")
    ] = None,
    fixed: Annotated[bool, typer.Option("-F", "--fixed-strings", help="-e is a literal.")] = False,
    ignore_case: Annotated[
        bool, typer.Option("-i", "--ignore-case", help="Ignore case in -e.")
    ] = False,
    level: Levels = None,
    where: Where = None,
    lines: Annotated[
        int, typer.Option("-n", "--lines", help="Show the last N records first.")
    ] = 10,
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Print the last N records and exit.")
    ] = False,
    output: Output = None,
    http: HttpUrl = None,
) -> None:
    """Print the last N records, then follow new ones as the collector acknowledges them.

    Records of all hosts arrive as they are stored; on a terminal each host keeps its own colour, errors and warnings are red and yellow and -e matches are highlighted (no colour when piped or with NO_COLOR set). A dropped connection (a collector restart) is re-opened from the last record received: nothing is missed and nothing repeated. Ctrl-C stops it.

    Examples:

      [bold]wharf tail -t nginx --host 'web-*'[/bold]

      [bold]wharf tail -t app -e 'Traceback|ERROR' -n 0[/bold]

      [bold]wharf tail --level warn+ -o '{local} {host} {level} {line}'[/bold]

      [bold]wharf tail -t nginx --where 'status>=500' -o json | jq .fields.path[/bold]
    """
    with user_errors():
        fmt = output_format(output)
        filters: dict[str, Any] = {
            "topics": tuple(topic or ()),
            "q": regex or "",
            "fixed": fixed,
            "icase": ignore_case,
            "hosts": tuple(host or ()),
            "sources": tuple(source or ()),
            "levels": tuple(level or ()),
            "where": where or "",
        }
        req: SearchRequest | TailRequest
        if no_follow:
            # The newest N by a search: no backfill cap, unlike a live tail's n.
            if lines < 0:
                raise InvalidArgument(f"-n must be 0 or more, got {lines}")
            req = build(SearchRequest, {}, **filters, order="desc", limit=lines or None)
        else:
            req = build(TailRequest, {"n": "-n"}, **filters, n=lines)
        client = Client(http)
        highlight = (
            Highlighter(regex, fixed=fixed, ignore_case=ignore_case)
            if regex and fmt == "text"
            else None
        )
        printer = Printer(fmt, highlight=highlight)
        with quiet_broken_pipe():
            if isinstance(req, SearchRequest):
                if lines:
                    _last(client, req, printer)
            else:
                try:
                    _follow(client, req, printer)
                except KeyboardInterrupt:
                    printer.flush()
                    raise typer.Exit(130) from None
    raise typer.Exit(EXIT_MATCH)


def _last(client: Client, req: SearchRequest, printer: Printer) -> None:
    newest = [row for row in client.search(req) if isinstance(row, Hit)]
    for hit in reversed(newest):
        printer.record(hit)
    printer.flush()


def _follow(client: Client, first: TailRequest, printer: Printer) -> None:
    positions: dict[tuple[str, int], int] = {}
    started = False
    delay = _RETRY_MIN_S
    while True:
        # Reconnecting: from where the last record or heartbeat left off, no backfill again.
        req = first if not started else replace(first, n=0, cursor=_format_cursor(positions))
        try:
            for row in client.tail(req, stall_s=_STALL_S):
                started = True
                delay = _RETRY_MIN_S
                if isinstance(row, Heartbeat):
                    positions.update(_cursor(row.cursor))
                    printer.flush()
                    continue
                if not isinstance(row, Hit):
                    continue  # a tail sends records and heartbeats; nothing else is shown
                printer.record(row)
                printer.flush()  # live: a pipe reader sees each record as it arrives
                positions[(row.topic, row.partition)] = row.offset + 1
            if not started:
                return  # the stream ended before it began: nothing to resume
            print("wharf: the collector closed the stream; reconnecting", file=sys.stderr)
        except WharfError as exc:  # a restart: unreachable, or its store closing under us
            if not started or not exc.retriable:
                raise
            printer.flush()
            print(f"wharf: {exc}; reconnecting", file=sys.stderr)
        time.sleep(delay)
        delay = min(delay * 2, _RETRY_MAX_S)


def _format_cursor(positions: dict[tuple[str, int], int]) -> str:
    return ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(positions.items()))


def _cursor(text: str) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for item in filter(None, text.split(",")):
        t, p, o = item.rsplit(":", 2)
        out[(t, int(p))] = int(o)
    return out
