"""``wharf grep``: search stored logs through the collector's HTTP API."""

from __future__ import annotations

import sys
from typing import Annotated, Final

import msgspec
import typer
from msgspec.structs import replace

from cli._common import EXIT_ERROR, EXIT_MATCH, EXIT_NO_MATCH, user_errors
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
    warn,
)
from cli.http_client import Client, Unreachable
from cli.render import Highlighter, Printer, is_match
from cli.timeparse import time_range
from wharf.api import (
    ContextHit,
    Done,
    FileCount,
    Hit,
    Progress,
    ProgressInfo,
    Row,
    SearchRequest,
)
from wharf.errors import RemoteError


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
            lo, hi = time_range(since, start, end)
            b = before if before is not None else context
            a = after if after is not None else context
            options = {
                "limit": "--limit",
                "before": "-B" if before is not None else "-C",
                "after": "-A" if after is not None else "-C",
            }
            # Everything the command line asked, checked as the collector checks it; each mode
            # then sends the part it needs.
            asked = build(
                SearchRequest,
                options,
                rephrase=_REPHRASE,
                topics=tuple(topic or ()),
                q=pattern,
                fixed=fixed,
                icase=ignore_case,
                invert=invert,
                hosts=tuple(host or ()),
                sources=tuple(source or ()),
                levels=tuple(level or ()),
                where=where or "",
                since=lo,
                until=hi,
                limit=limit,
                order="desc" if newest_first else "asc",
                count=count,
                files=files,
                before=None if a is None and b is None else b or 0,
                after=None if a is None and b is None else a or 0,
                progress=_Progress.wanted(),
            )
            summary = replace(asked, limit=None, order="asc", before=None, after=None)
            client = Client(http)
            if quiet:
                req = replace(summary, count=False, files=False, limit=1)
                matched, damaged = _run(client, req, None, None)
            elif count:
                matched, damaged = _print_count(client, summary, fmt)
            elif files:
                one_topic = topic is not None and len(set(topic)) == 1
                matched, damaged = _print_files(client, summary, fmt, one_topic)
            else:
                highlight = None
                if not invert and fmt == "text":
                    highlight = Highlighter(pattern, fixed=fixed, ignore_case=ignore_case)
                printer = Printer(fmt, highlight=highlight)
                bar = _Progress() if asked.progress else None
                matched, damaged = _run(client, asked, printer, bar)
    except KeyboardInterrupt:  # Ctrl-C: stop quietly, with the status a shell expects
        raise typer.Exit(130) from None
    if damaged:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_MATCH if matched else EXIT_NO_MATCH)


# The collector's words for a check, and the command line's.
_REPHRASE: Final = {
    "count=1 and files=1 exclude each other": "give -c or -l, not both",
    "context lines (before/after) need order=asc": (
        "context lines (-A/-B/-C) read oldest first: drop --newest-first"
    ),
}


class _Progress:
    """One line on stderr, rewritten in place: bytes scanned, matches, elapsed time. Only when
    stderr is a terminal; cleared before anything else is printed to that terminal."""

    def __init__(self) -> None:
        self.shown = False

    @staticmethod
    def wanted() -> bool:
        return sys.stderr.isatty()

    def update(self, p: ProgressInfo) -> None:
        # The server sends the first one only once a scan has run for a while (half a second).
        read, total = p.bytes_read, p.bytes_total
        share = f" of {_mb(total)} ({min(100, 100 * read // total)}%)" if total else ""
        text = (
            f"wharf: scanned {_mb(read)}{share}, {p.matched:,} matches, {p.elapsed_ms / 1000:.1f}s"
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
    client: Client, req: SearchRequest, printer: Printer | None, progress: _Progress | None
) -> tuple[int, bool]:
    """Stream a search, printing records (and ``--`` between context groups); returns the
    number of matches and whether damaged batches were skipped."""
    matched = 0
    damaged = False
    finished = False
    group: int | None = None
    try:
        with quiet_broken_pipe():
            for row in client.search(req):
                if isinstance(row, Progress):
                    if progress is not None:
                        progress.update(row.progress)
                    continue
                if isinstance(row, Done):
                    if progress is not None:
                        progress.clear()
                    damaged = _report(row)
                    finished = True
                    break
                if not isinstance(row, Hit):
                    raise RemoteError(f"{client.base_url}: unexpected row in a search: {row!r}")
                if is_match(row):
                    matched += 1
                if printer is None:
                    continue
                if progress is not None:
                    progress.clear()
                if isinstance(row, ContextHit):
                    if group is not None and row.group != group:
                        printer.separator()
                    group = row.group
                printer.record(row)
            if printer is not None:
                printer.flush()
    finally:
        if progress is not None:
            progress.clear()
    if not finished:
        raise Unreachable(f"{client.base_url}: the search answer ended before the search did")
    return matched, damaged


def _summary(client: Client, req: SearchRequest) -> tuple[list[Row], Done]:
    bar = _Progress() if req.progress else None
    items: list[Row] = []
    done: Done | None = None
    try:
        for row in client.search(req):
            if isinstance(row, Progress):
                if bar is not None:
                    bar.update(row.progress)
            elif isinstance(row, Done):
                done = row
            else:
                items.append(row)
    finally:
        if bar is not None:
            bar.clear()
    if done is None:
        raise Unreachable(f"{client.base_url}: the search answer ended before the search did")
    return items, done


def _print_count(client: Client, req: SearchRequest, fmt: str) -> tuple[int, bool]:
    _, done = _summary(client, req)
    total = done.count or 0
    damaged = _report(done)
    with quiet_broken_pipe():
        print(f'{{"count": {total}}}' if fmt == "json" else total, flush=True)
    return total, damaged


def _print_files(client: Client, req: SearchRequest, fmt: str, one_topic: bool) -> tuple[int, bool]:
    """``host:source`` per source with a match (``topic/host:source`` unless one -t was given,
    so the same query always prints the same shape)."""
    rows, done = _summary(client, req)
    found = [r for r in rows if isinstance(r, FileCount)]
    damaged = _report(done)
    with quiet_broken_pipe():
        for f in found:
            if fmt == "json":
                print(msgspec.json.encode(f).decode())
            else:
                prefix = "" if one_topic else f"{f.topic}/"
                print(f"{prefix}{f.host}:{f.source}")
        sys.stdout.flush()
    return len(found), damaged


def _report(done: Done) -> bool:
    """Warn about damaged batches; whether there were any."""
    stats = done.stats
    if stats.errors:
        first = f": {stats.error_messages[0]}" if stats.error_messages else ""
        warn(f"{stats.errors} damaged batch(es) were skipped{first}")
        return True
    return False
