"""``wharf topics ...``: over the collector's HTTP API, or offline with ``--data-dir``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.markup import escape
from rich.table import Table

from cli._common import console, stdout_is_terminal, user_errors
from cli._records import HttpUrl, complete_topic
from cli.http_client import Client
from cli.timeparse import parse_duration
from wharf.api import CreateTopic, TopicSizes
from wharf.errors import InvalidArgument
from wharf.topics import TopicConfig

app = typer.Typer(help="List, describe, create, compact and delete topics.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Read this data directory directly instead of asking the collector (offline use).",
    ),
]
Output = Annotated[str, typer.Option("-o", "--output", help="table or json.")]
TopicArg = Annotated[str, typer.Argument(help="Topic name.", autocompletion=complete_topic)]


# -- human-readable values (shared with ``wharf status``) ----------------------------------


def human_bytes(n: object) -> str:
    """``1.5 MiB``; ``-`` when unknown."""
    if not isinstance(n, int | float):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_ms(ms: object) -> str:
    """A retention or age in ms as ``7d``, ``12h``, ``90m``; ``forever`` when negative."""
    if not isinstance(ms, int):
        return "-"
    if ms < 0:
        return "forever"
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms / 1000:g}s"


def human_time(ns: object) -> str:
    """A record time in the local zone, to the second; ``-`` when there is none."""
    if not isinstance(ns, int):
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def human_span(lo: object, hi: object) -> str:
    """``2024-05-01 10:00:00 .. 2024-05-02 09:59:59 (24h)``."""
    if not isinstance(lo, int) or not isinstance(hi, int):
        return "-"
    seconds = max(0, (hi - lo) // 1_000_000_000)
    if seconds >= 172_800:
        length = f"{seconds / 86400:.1f}d"
    elif seconds >= 7200:
        length = f"{seconds / 3600:.1f}h"
    elif seconds >= 120:
        length = f"{seconds / 60:.0f}m"
    else:
        length = f"{seconds}s"
    return f"{human_time(lo)} .. {human_time(hi)} ({length})"


def ratio(raw: object, stored: object) -> str:
    """``8.2x``: raw line bytes over stored bytes."""
    if not isinstance(raw, int) or not isinstance(stored, int) or not stored:
        return "-"
    return f"{raw / stored:.1f}x"


def _retention(config: TopicConfig) -> str:
    by_age = human_ms(config.retention_ms)
    size = config.retention_bytes
    by_size = human_bytes(size) + "/partition" if size >= 0 else ""
    return ", ".join(x for x in (by_age, by_size) if x)


def _print_json(answer: msgspec.Struct) -> None:
    print(msgspec.json.encode(answer).decode())


# -- commands -------------------------------------------------------------------------------


def _offline(data_dir: Path, topic: str | None) -> list[TopicSizes]:
    """What the collector would answer, read from its data directory (the same code)."""
    from collector.query.describe import all_topics, topic_sizes  # noqa: PLC0415 (lazy: only --data-dir opens the store)
    from collector.storage import Store  # noqa: PLC0415 (lazy: only --data-dir opens the store)

    if not (data_dir / "topics").is_dir():
        raise InvalidArgument(f"{data_dir} is not a Wharf data directory (no topics/ inside)")
    with Store(data_dir) as store:
        return [topic_sizes(store, topic)] if topic is not None else all_topics(store)


def _as_json(output: str) -> bool:
    if output not in ("", "table", "json"):
        raise InvalidArgument(f"unknown output format {output!r}: use table or json")
    return output == "json" or (output == "" and not stdout_is_terminal())


@app.command("list")
def list_topics(data_dir: DataDir = None, output: Output = "", http: HttpUrl = None) -> None:
    """List topics: partitions, records, size on disk, raw size and compression ratio, time span and retention. Piped, one JSON object per topic.

    Examples:

      [bold]wharf topics list[/bold]

      [bold]wharf topics list -o json | jq -r .name[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        topics = _offline(data_dir, None) if data_dir else Client(http).topics().topics
    if as_json:
        for t in topics:
            _print_json(t)
        return
    table = Table(
        "topic", "partitions", "records", "on disk", "raw", "ratio", "time span", "retention"
    )
    for t in topics:
        table.add_row(
            escape(t.name),
            str(len(t.partitions)),
            f"{t.records:,}",
            human_bytes(t.bytes),
            human_bytes(t.line_bytes),
            ratio(t.line_bytes, t.bytes),
            human_span(t.min_ts, t.max_ts),
            _retention(t.config),
        )
    console().print(table)


@app.command("describe")
def describe(
    topic: TopicArg, data_dir: DataDir = None, output: Output = "", http: HttpUrl = None
) -> None:
    """Partitions of a topic (offsets, size on disk, raw size, compression ratio, time span) and its settings (retention, segment size).

    Examples:

      [bold]wharf topics describe nginx[/bold]

      [bold]wharf topics describe nginx -o json | jq '.partitions[].end_offset'[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        info = _offline(data_dir, topic)[0] if data_dir else Client(http).topic(topic)
    if as_json:
        _print_json(info)
        return
    config = info.config
    out = console()
    out.print(f"[bold]{escape(info.name)}[/bold]")
    summary = [
        ("records", f"{info.records:,}"),
        ("on disk", human_bytes(info.bytes)),
        ("raw lines", human_bytes(info.line_bytes)),
        ("compression", ratio(info.line_bytes, info.bytes)),
        ("time span", human_span(info.min_ts, info.max_ts)),
        ("retention", _retention(config)),
        ("segments roll at", f"{human_bytes(config.segment_bytes)} or "
                             f"{human_ms(config.segment_ms)}"),
    ]  # fmt: skip
    for key, value in summary:
        out.print(f"  {key:<17}{value}")
    compacting = any(p.compaction is not None for p in info.partitions)
    columns = ["partition", "start", "end", "records", "on disk", "raw", "ratio", "segments"]
    if compacting:
        columns += ["compacted", "before", "after", "filters"]
    table = Table(*columns, "time span")
    for p in info.partitions:
        row = [
            str(p.partition),
            str(p.start_offset),
            str(p.end_offset),
            f"{p.end_offset - p.start_offset:,}",
            human_bytes(p.bytes),
            human_bytes(p.line_bytes),
            ratio(p.line_bytes, p.bytes),
            str(p.segments),
        ]
        if compacting:
            c = p.compaction
            row += (
                ["-"] * 4
                if c is None
                else [
                    str(c.segments),
                    human_bytes(c.bytes_before),
                    human_bytes(c.bytes_after),
                    human_bytes(c.filter_bytes),
                ]
            )
        table.add_row(*row, human_span(p.min_ts, p.max_ts))
    out.print(table)


@app.command("create")
def create(
    topic: Annotated[
        str, typer.Argument(help=f"Topic name: {escape('[a-z0-9][a-z0-9._-]{0,63}')}.")
    ],
    partitions: Annotated[
        int | None, typer.Option("--partitions", help="Number of partitions (fixed for life).")
    ] = None,
    retention: Annotated[
        str | None,
        typer.Option("--retention", help="Keep records this long: 7d, 12h, or 'forever'."),
    ] = None,
    retention_bytes: Annotated[
        int | None, typer.Option("--retention-bytes", help="Per-partition size limit.")
    ] = None,
    segment_bytes: Annotated[
        int | None,
        typer.Option(
            "--segment-bytes",
            help="Roll a partition's active segment at this size (bytes); sealed segments are "
            "what retention deletes and compaction rewrites.",
        ),
    ] = None,
    segment_age: Annotated[
        str | None,
        typer.Option("--segment-age", help="Roll a partition's active segment this old: 1h, 1d."),
    ] = None,
    output: Output = "",
    http: HttpUrl = None,
) -> None:
    """Create a topic on the collector (settings not given use the collector's defaults).

    Examples:

      [bold]wharf topics create nginx --partitions 4 --retention 7d[/bold]

      [bold]wharf topics create audit --retention forever[/bold]

      [bold]wharf topics create access --segment-bytes 268435456 --segment-age 1d[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        retention_ms = None
        if retention is not None:
            forever = retention.strip().lower() in ("forever", "-1", "infinite")
            retention_ms = -1 if forever else parse_duration(retention) // 1_000_000
        segment_ms = None if segment_age is None else parse_duration(segment_age) // 1_000_000
        req = CreateTopic(
            topic,
            partitions=partitions,
            retention_ms=retention_ms,
            retention_bytes=retention_bytes,
            segment_bytes=segment_bytes,
            segment_ms=segment_ms,
        )
        info = Client(http).create_topic(req)
    if as_json:
        _print_json(info)
    else:
        console().print(
            f"created topic [bold]{escape(info.name)}[/bold] "
            f"with {len(info.partitions)} partition(s)"
        )


@app.command("compact")
def compact(topic: TopicArg, output: Output = "", http: HttpUrl = None) -> None:
    """Compact a topic now: roll its active segments, then rewrite every sealed segment not compacted yet (compressed harder, with token filters that let a grep for a needle skip what cannot hold it). Returns when done. The collector also does this in the background (the compaction section of collector.toml).

    Examples:

      [bold]wharf topics compact nginx[/bold]

      [bold]wharf topics compact nginx -o json[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        result = Client(http).compact_topic(topic)
    if as_json:
        _print_json(result)
        return
    out = console()
    out.print(
        f"compacted [bold]{escape(result.topic)}[/bold]: {result.segments} segment(s), "
        f"{result.batches:,} batches in {result.seconds:.1f} s"
    )
    if result.segments:
        out.print(
            f"  {human_bytes(result.bytes_before)} -> {human_bytes(result.bytes_after)} "
            f"({ratio(result.bytes_before, result.bytes_after)} smaller), token filters "
            f"{human_bytes(result.filter_bytes)}, raw text {human_bytes(result.line_bytes)}"
        )
    for error in result.errors:
        out.print(f"  [red]{escape(error)}[/red]")
    if result.errors:
        raise typer.Exit(1)


@app.command("delete")
def delete(
    topic: TopicArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    http: HttpUrl = None,
) -> None:
    """Delete a topic and every record in it, for good. Asks first unless --yes is given (and refuses without --yes when there is no terminal to ask on).

    Examples:

      [bold]wharf topics delete scratch[/bold]

      [bold]wharf topics delete scratch --yes[/bold]
    """
    with user_errors():
        client = Client(http)
        if not yes:
            info = client.topic(topic)  # an unknown topic fails here, before asking
            if not sys.stdin.isatty():
                raise InvalidArgument(
                    f"refusing to delete topic {topic!r} without --yes (no terminal to ask on)"
                )
            question = (
                f"Delete topic {topic!r} and its {info.records:,} records "
                f"({human_bytes(info.bytes)})? This cannot be undone"
            )
            if not typer.confirm(question, default=False, err=True):
                print("wharf: nothing deleted", file=sys.stderr)
                raise typer.Exit(1)
        client.delete_topic(topic)
    print(f"deleted topic {topic}")
