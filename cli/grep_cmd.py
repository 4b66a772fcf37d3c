"""``wharf grep``: search stored logs through the collector's HTTP API."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from cli._common import EXIT_ERROR, EXIT_MATCH, EXIT_NO_MATCH, user_errors
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
    warn,
)
from cli.http_client import Client, Unreachable
from cli.timeparse import time_range
from wharf.errors import InvalidArgument

Params = list[tuple[str, str | int]]


def grep(
    pattern: Annotated[
        str, typer.Argument(help="RE2 regular expression (ERE-like syntax; a literal with -F).")
    ],
    topic: Topics = None,
    fixed: Annotated[
        bool, typer.Option("-F", "--fixed-strings", help="PATTERN is a literal string.")
    ] = False,
    extended: Annotated[
        bool,
        typer.Option(
            "-E", "--extended-regexp", help="Accepted for grep habits: patterns are always RE2."
        ),
    ] = False,
    ignore_case: Annotated[bool, typer.Option("-i", "--ignore-case", help="Ignore case.")] = False,
    invert: Annotated[
        bool, typer.Option("-v", "--invert-match", help="Select non-matching lines.")
    ] = False,
    count: Annotated[
        bool, typer.Option("-c", "--count", help="Print only the number of matching records.")
    ] = False,
    files: Annotated[
        bool,
        typer.Option(
            "-l", "--files-with-matches", help="Print only the host:source pairs with a match."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Print nothing; the exit status says it all.")
    ] = False,
    after: Annotated[
        int | None,
        typer.Option("-A", "--after-context", help="Print N records after each match.", min=0),
    ] = None,
    before: Annotated[
        int | None,
        typer.Option("-B", "--before-context", help="Print N records before each match.", min=0),
    ] = None,
    context: Annotated[
        int | None,
        typer.Option("-C", "--context", help="Print N records before and after.", min=0),
    ] = None,
    output: Output = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-m", help="Stop after N matching records.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only the last DUR: 15m, 2h, 7d.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="From this time: RFC 3339, a date, a time of day (local zone unless given), "
            "or 2h (ago).",
        ),
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to this time (exclusive).")] = None,
    host: Hosts = None,
    source: Sources = None,
    level: Levels = None,
    where: Where = None,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Newest records first.")
    ] = False,
    http: HttpUrl = None,
) -> None:
    """Print stored records whose line matches PATTERN, oldest first, merged across hosts.

    Exit status as grep: 0 when something matched, 1 when nothing did, 2 on error, and 2 when damaged batches had to be skipped (what matched elsewhere is still printed). Context lines (-A/-B/-C) come from the same host and file as their match, in file order, with -- between groups, as grep prints them per file. Times without a zone are local.

    Examples:

      [bold]wharf grep -i timeout --since 15m --host 'web-*'[/bold]

      [bold]wharf grep -t nginx ' 50[0-9] ' --from 09:00 --to 09:30 -C 3[/bold]

      [bold]wharf grep -F -c 'Failed password' -t auth --since 7d[/bold]

      [bold]wharf grep -t app --level warn+ -l ''[/bold]

      [bold]wharf grep '' -t nginx --where 'status>=500 and path~"^/api"' -o json[/bold]

      [bold]wharf grep -t nginx GET -o '{local} {host} {status} {line}'[/bold]
    """
    del extended  # RE2 syntax is ERE-like already: -E changes nothing
    try:
        with user_errors():
            fmt = output_format(output)
            if limit is not None and limit < 1:
                raise InvalidArgument(f"--limit must be at least 1, got {limit}")
            if count and files:
                raise InvalidArgument("give -c or -l, not both")
            lo, hi = time_range(since, start, end)
            params = filter_params(topic, host, source, where, level)
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
            progress = _Progress.wanted()
            if progress:
                params.append(("progress", 1))
            if quiet:
                params.append(("limit", 1))
                matched, damaged = _run(client, params, None, None)
            elif count:
                params.append(("count", 1))
                matched, damaged = _print_count(client, params, fmt, progress)
            elif files:
                params.append(("files", 1))
                one_topic = topic is not None and len(set(topic)) == 1
                matched, damaged = _print_files(client, params, fmt, progress, one_topic)
            else:
                b = before if before is not None else context
                a = after if after is not None else context
                if b is not None or a is not None:
                    if newest_first:
                        raise InvalidArgument("context lines (-A/-B/-C) read oldest first")
                    params += [("before", b or 0), ("after", a or 0)]
                if limit is not None:
                    params.append(("limit", limit))
                if newest_first:
                    params.append(("order", "desc"))
                highlight = None
                if not invert and fmt == "text":
                    highlight = Highlighter(pattern, fixed=fixed, ignore_case=ignore_case)
                printer = Printer(fmt, highlight=highlight)
                matched, damaged = _run(client, params, printer, _Progress() if progress else None)
    except KeyboardInterrupt:  # Ctrl-C: stop quietly, with the status a shell expects
        raise typer.Exit(130) from None
    if damaged:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_MATCH if matched else EXIT_NO_MATCH)


class _Progress:
    """One line on stderr, rewritten in place: bytes scanned, matches, elapsed time. Only when
    stderr is a terminal; cleared before anything else is printed to that terminal."""

    def __init__(self) -> None:
        self.shown = False

    @staticmethod
    def wanted() -> bool:
        return sys.stderr.isatty()

    def update(self, p: dict[str, Any]) -> None:
        # The server sends the first one only once a scan has run for a while (half a second).
        read, total = int(p.get("bytes_read", 0)), int(p.get("bytes_total", 0))
        share = f" of {_mb(total)} ({min(100, 100 * read // total)}%)" if total else ""
        text = (
            f"wharf: scanned {_mb(read)}{share}, {int(p.get('matched', 0)):,} matches, "
            f"{float(p.get('elapsed_ms', 0)) / 1000:.1f}s"
        )
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _run(
    client: Client, params: Params, printer: Printer | None, progress: _Progress | None
) -> tuple[int, bool]:
    """Stream a search, printing records (and ``--`` between context groups); returns the
    number of matches and whether damaged batches were skipped."""
    matched = 0
    damaged = False
    finished = False
    group: object = None
    try:
        with quiet_broken_pipe():
            for item in client.stream("/v1/search", params):
                if "progress" in item:
                    if progress is not None:
                        progress.update(item["progress"])
                    continue
                if "done" in item:
                    if progress is not None:
                        progress.clear()
                    damaged = _report(item)
                    finished = True
                    break
                if item.get("match", True):
                    matched += 1
                if printer is None:
                    continue
                if progress is not None:
                    progress.clear()
                if "group" in item:
                    if group is not None and item["group"] != group:
                        printer.separator()
                    group = item["group"]
                printer.record(item)
            if printer is not None:
                printer.flush()
    finally:
        if progress is not None:
            progress.clear()
    if not finished:
        raise Unreachable(f"{client.base_url}: the search answer ended before the search did")
    return matched, damaged


def _summary(
    client: Client, params: Params, progress: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    bar = _Progress() if progress else None
    items: list[dict[str, Any]] = []
    done: dict[str, Any] = {}
    try:
        for item in client.stream("/v1/search", params):
            if "progress" in item:
                if bar is not None:
                    bar.update(item["progress"])
            elif "done" in item:
                done = item
            else:
                items.append(item)
    finally:
        if bar is not None:
            bar.clear()
    if not done:
        raise Unreachable(f"{client.base_url}: the search answer ended before the search did")
    return items, done


def _print_count(client: Client, params: Params, fmt: str, progress: bool) -> tuple[int, bool]:
    _, done = _summary(client, params, progress)
    total = int(done.get("count", 0))
    damaged = _report(done)
    with quiet_broken_pipe():
        print(f'{{"count": {total}}}' if fmt == "json" else total, flush=True)
    return total, damaged


def _print_files(
    client: Client, params: Params, fmt: str, progress: bool, one_topic: bool
) -> tuple[int, bool]:
    """``host:source`` per source with a match (``topic/host:source`` unless one -t was given,
    so the same query always prints the same shape)."""
    found, done = _summary(client, params, progress)
    damaged = _report(done)
    with quiet_broken_pipe():
        for f in found:
            if fmt == "json":
                print(json.dumps(f, ensure_ascii=False))
            else:
                prefix = "" if one_topic else f"{f['topic']}/"
                print(f"{prefix}{f['host']}:{f['source']}")
        sys.stdout.flush()
    return len(found), damaged


def _report(done: dict[str, Any]) -> bool:
    """Warn about damaged batches; whether there were any."""
    stats = done.get("stats")
    if isinstance(stats, dict) and stats.get("errors"):
        messages = stats.get("error_messages") or []
        first = f": {messages[0]}" if isinstance(messages, list) and messages else ""
        warn(f"{stats['errors']} damaged batch(es) were skipped{first}")
        return True
    return False
