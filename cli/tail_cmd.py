"""``wharf tail``: the newest records, then new ones live, through the collector's HTTP API."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, Final

import typer

from cli._common import EXIT_MATCH, user_errors
from cli._records import (
    Highlighter,
    Hosts,
    HttpUrl,
    Levels,
    Output,
    Printer,
    Sources,
    Topics,
    Where,
    filter_params,
    output_format,
    quiet_broken_pipe,
)
from cli.http_client import Client, Unreachable
from wharf.errors import InvalidArgument

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
        if lines < 0:
            raise InvalidArgument(f"-n must be 0 or more, got {lines}")
        params = filter_params(topic, host, source, where, level)
        if regex:
            params.append(("q", regex))
        params += [(name, 1) for name, on in (("fixed", fixed), ("icase", ignore_case)) if on]
        client = Client(http)
        highlight = (
            Highlighter(regex, fixed=fixed, ignore_case=ignore_case)
            if regex and fmt == "text"
            else None
        )
        printer = Printer(fmt, highlight=highlight)
        with quiet_broken_pipe():
            if no_follow:
                _last(client, params, lines, printer)
            else:
                try:
                    _follow(client, params, lines, printer)
                except KeyboardInterrupt:
                    printer.flush()
                    raise typer.Exit(130) from None
    raise typer.Exit(EXIT_MATCH)


def _last(client: Client, params: list[tuple[str, str | int]], n: int, printer: Printer) -> None:
    if n == 0:
        return
    newest: list[dict[str, Any]] = []
    for item in client.stream("/v1/search", [*params, ("order", "desc"), ("limit", n)]):
        if "done" not in item:
            newest.append(item)
    for rec in reversed(newest):
        printer.record(rec)
    printer.flush()


def _follow(client: Client, params: list[tuple[str, str | int]], n: int, printer: Printer) -> None:
    positions: dict[tuple[str, int], int] = {}
    first = True
    delay = _RETRY_MIN_S
    while True:
        query = [*params]
        if first:
            query.append(("n", n))
        elif positions:
            query.append(
                ("from", ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(positions.items())))
            )
        try:
            for item in client.stream("/v1/tail", query, timeout=_STALL_S):
                first = False
                delay = _RETRY_MIN_S
                if item.get("heartbeat"):
                    positions.update(_cursor(str(item.get("cursor", ""))))
                    printer.flush()
                    continue
                printer.record(item)
                printer.flush()  # live: a pipe reader sees each record as it arrives
                positions[(str(item["topic"]), int(item["partition"]))] = int(item["offset"]) + 1
            if first:
                return  # the stream ended before it began: nothing to resume
            print("wharf: the collector closed the stream; reconnecting", file=sys.stderr)
        except Unreachable as exc:
            if first:
                raise
            printer.flush()
            print(f"wharf: {exc}; reconnecting", file=sys.stderr)
        time.sleep(delay)
        delay = min(delay * 2, _RETRY_MAX_S)


def _cursor(text: str) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for item in filter(None, text.split(",")):
        t, p, o = item.rsplit(":", 2)
        out[(t, int(p))] = int(o)
    return out
