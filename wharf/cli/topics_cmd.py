"""``wharf topics ...``: over the collector's HTTP API, or offline with ``--data-dir``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from wharf.cli._common import console, stdout_is_terminal, user_errors
from wharf.cli._records import HttpUrl
from wharf.cli.http_client import Client
from wharf.cli.timeparse import parse_duration
from wharf.errors import InvalidArgument

app = typer.Typer(help="List, describe and create topics.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Read this data directory directly instead of asking the collector (offline use).",
    ),
]
Output = Annotated[str, typer.Option("-o", "--output", help="table or json.")]


def _offline(data_dir: Path, topic: str | None) -> list[dict[str, Any]]:
    from collector.storage import Store

    if not (data_dir / "topics").is_dir():
        raise InvalidArgument(f"{data_dir} is not a Wharf data directory (no topics/ inside)")
    with Store(data_dir) as store:
        infos = [store.describe(topic)] if topic is not None else list(store.iter_topics())
    out = []
    for info in infos:
        data = msgspec.to_builtins(info)
        assert isinstance(data, dict)
        out.append(data)
    return out


def _as_json(output: str) -> bool:
    if output not in ("", "table", "json"):
        raise InvalidArgument(f"unknown output format {output!r}: use table or json")
    return output == "json" or (output == "" and not stdout_is_terminal())


@app.command("list")
def list_topics(data_dir: DataDir = None, output: Output = "", http: HttpUrl = None) -> None:
    """List topics with their partition count, records and size.

    Example: [bold]wharf topics list[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        if data_dir is not None:
            topics = _offline(data_dir, None)
        else:
            topics = list(Client(http).get_json("/v1/topics")["topics"])
    if as_json:
        for t in topics:
            print(json.dumps(t))
        return
    table = Table("topic", "partitions", "records", "bytes")
    for t in topics:
        parts = t["partitions"]
        table.add_row(
            t["name"],
            str(len(parts)),
            str(sum(p["end_offset"] - p["start_offset"] for p in parts)),
            str(sum(p["bytes"] for p in parts)),
        )
    console().print(table)


@app.command("describe")
def describe(
    topic: str, data_dir: DataDir = None, output: Output = "", http: HttpUrl = None
) -> None:
    """Partitions of a topic (offsets, bytes, time span) and its settings.

    Example: [bold]wharf topics describe nginx[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        if data_dir is not None:
            info = _offline(data_dir, topic)[0]
        else:
            info = Client(http).get_json(f"/v1/topics/{_path_safe(topic)}")
    if as_json:
        print(json.dumps(info))
        return
    settings = ", ".join(f"{k} = {v}" for k, v in info.get("config", {}).items())
    table = Table(
        "partition", "start", "end", "bytes", "segments", "min_ts", "max_ts",
        title=f"{info['name']}  {settings}",
    )  # fmt: skip
    columns = ("partition", "start_offset", "end_offset", "bytes", "segments", "min_ts", "max_ts")
    for p in info["partitions"]:
        table.add_row(*(str(p.get(k)) for k in columns))
    console().print(table)


@app.command("create")
def create(
    topic: str,
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
    output: Output = "",
    http: HttpUrl = None,
) -> None:
    """Create a topic on the collector (settings not given use the collector's defaults).

    Example: [bold]wharf topics create nginx --partitions 4 --retention 7d[/bold]
    """
    with user_errors():
        as_json = _as_json(output)
        body: dict[str, Any] = {"name": topic}
        if partitions is not None:
            body["partitions"] = partitions
        if retention is not None:
            forever = retention.strip().lower() in ("forever", "-1", "infinite")
            body["retention_ms"] = -1 if forever else parse_duration(retention) // 1_000_000
        if retention_bytes is not None:
            body["retention_bytes"] = retention_bytes
        info = Client(http).post_json("/v1/topics", body)
    if as_json:
        print(json.dumps(info))
    else:
        console().print(
            f"created topic [bold]{info['name']}[/bold] with {len(info['partitions'])} partition(s)"
        )


def _path_safe(topic: str) -> str:
    from urllib.parse import quote

    return quote(topic, safe="")
