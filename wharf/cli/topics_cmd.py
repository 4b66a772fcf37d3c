"""``wharf topics ...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.table import Table

from wharf.cli._common import console, stdout_is_terminal, user_errors
from wharf.cli.collector_cmd import DEFAULT_DATA_DIR

app = typer.Typer(help="List, describe and create topics.", no_args_is_help=True)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Read this data directory directly.")]
Output = Annotated[str, typer.Option("-o", "--output", help="table or json.")]


def _store(data_dir: Path):  # type: ignore[no-untyped-def]
    from collector.storage import Store

    if not (data_dir / "topics").is_dir():
        raise typer.BadParameter(
            f"{data_dir} is not a Wharf data directory", param_hint="--data-dir"
        )
    return Store(data_dir)


@app.command("list")
def list_topics(data_dir: DataDir = DEFAULT_DATA_DIR, output: Output = "") -> None:
    """List topics with their partition count and size.

    Example: [bold]wharf topics list --data-dir ./wharf-data[/bold]
    """
    with user_errors(), _store(data_dir) as store:
        infos = list(store.iter_topics())
    if output == "json" or not stdout_is_terminal():
        for info in infos:
            print(json.dumps(_topic_json(info)))
        return
    table = Table("topic", "partitions", "records", "bytes")
    for info in infos:
        records = sum(p.end_offset - p.start_offset for p in info.partitions)
        table.add_row(
            info.name,
            str(len(info.partitions)),
            str(records),
            str(sum(p.bytes for p in info.partitions)),
        )
    console().print(table)


@app.command("describe")
def describe(topic: str, data_dir: DataDir = DEFAULT_DATA_DIR, output: Output = "") -> None:
    """Partitions of a topic: offsets, bytes, time span; and its settings.

    Example: [bold]wharf topics describe nginx[/bold]
    """
    with user_errors(), _store(data_dir) as store:
        info = store.describe(topic)
    if output == "json" or not stdout_is_terminal():
        print(json.dumps(_topic_json(info)))
        return
    table = Table(
        "partition",
        "start",
        "end",
        "bytes",
        "segments",
        "min_ts",
        "max_ts",
        title=f"{info.name}  {info.config.to_toml().strip().replace(chr(10), ', ')}",
    )
    for p in info.partitions:
        table.add_row(
            *(
                str(v)
                for v in (
                    p.partition,
                    p.start_offset,
                    p.end_offset,
                    p.bytes,
                    p.segments,
                    p.min_ts,
                    p.max_ts,
                )
            )
        )
    console().print(table)


def _topic_json(info: object) -> dict[str, object]:
    data = msgspec.to_builtins(info)
    assert isinstance(data, dict)
    return data
