"""``wharf status``: one look at a collector (health, topics, ingest rate, shippers, and in
cluster mode the NATS cluster)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli._common import (
    EXIT_MATCH,
    EXIT_NO_MATCH,
    console,
    stdout_is_terminal,
    user_errors,
)
from cli._records import HttpUrl
from cli.http_client import Client
from cli.topics_cmd import human_bytes, human_span, ratio
from wharf.errors import InvalidArgument


def status(
    output: Annotated[
        str, typer.Option("-o", "--output", help="text or json (default: json when piped).")
    ] = "",
    http: HttpUrl = None,
) -> None:
    """Collector health, topics (records, size, compression), the ingest rate over the last minute, the connected shippers and the network inputs.

    Exit status: 0 healthy, 1 reachable but unhealthy (the store does not take writes), 2 when the collector cannot be reached.

    Examples:

      [bold]wharf status[/bold]

      [bold]wharf status -o json | jq .ingest.records_per_s[/bold]

      [bold]WHARF_HTTP=http://logs-1:7080 wharf status[/bold]
    """
    with user_errors():
        if output not in ("", "text", "json"):
            raise InvalidArgument(f"unknown output format {output!r}: use text or json")
        client = Client(http)
        info = client.status()
    healthy = info.get("status") == "ok"
    if output == "json" or (output == "" and not stdout_is_terminal()):
        print(json.dumps(info))
    else:
        _show(info, client.base_url if http is None else http)
    raise typer.Exit(EXIT_MATCH if healthy else EXIT_NO_MATCH)


def _show(info: dict[str, Any], url: str) -> None:
    """Everything the collector answers (names, addresses, errors) is data, not markup: it is
    escaped wherever it meets our own markup or a table cell."""
    out = console()
    ok = info.get("status") == "ok"
    error, version = (escape(str(info.get(k))) for k in ("error", "version"))
    state = "[green]healthy[/green]" if ok else f"[red]unavailable[/red]: {error}"
    out.print(
        f"[bold]collector[/bold] {escape(url)}  {state}  version {version}  "
        f"up {_uptime(info.get('uptime_s'))}"
    )
    ingest = info.get("ingest") or {}
    out.print(
        f"[bold]ingest[/bold]    {float(ingest.get('records_per_s', 0)):,.1f} records/s "
        f"over the last {float(ingest.get('window_s', 0)):.0f}s "
        f"({int(ingest.get('records', 0)):,} records)"
    )
    shippers = info.get("shippers")
    if shippers is None:
        out.print("[bold]shippers[/bold]  (this collector does not report its connections)")
    else:
        out.print(f"[bold]shippers[/bold]  {len(shippers)} connected")
        if shippers:
            table = Table("peer", "client", "producer id", "connected for", "in flight")
            for s in shippers:
                table.add_row(
                    escape(str(s.get("peer", "-"))),
                    escape(str(s.get("client") or "-")),
                    escape(str(s.get("producer_id", "-"))[:12]),
                    _uptime(s.get("connected_s")),
                    str(s.get("in_flight", "-")),
                )
            out.print(table)
    rates = ingest.get("topics") or {}
    table = Table("topic", "partitions", "records", "on disk", "ratio", "records/s", "time span")
    for t in info.get("topics", []):
        table.add_row(
            escape(str(t["name"])),
            str(t.get("partitions", "-")),
            f"{t.get('records', 0):,}",
            human_bytes(t.get("bytes")),
            ratio(t.get("line_bytes"), t.get("bytes")),
            f"{float(rates.get(t['name'], 0)):,.1f}",
            human_span(t.get("min_ts"), t.get("max_ts")),
        )
    out.print(table)
    _show_inputs(info.get("inputs") or [])
    _show_cluster(info.get("storage") or {})


def _show_inputs(inputs: list[dict[str, Any]]) -> None:
    """The network inputs ([[inputs]] of collector.toml) with what each received and stored."""
    if not inputs:
        return
    out = console()
    out.print(f"[bold]inputs[/bold]    {len(inputs)} listening")
    table = Table(
        "input", "listen", "topic", "received", "stored", "malformed", "dropped", "refused",
        "connections",
    )  # fmt: skip
    for i in inputs:
        table.add_row(
            escape(str(i.get("name"))),
            escape(
                f"{i.get('protocol')} {str(i.get('listen')).rpartition(':')[0]}:{i.get('port')}"
            ),
            escape(str(i.get("topic"))),
            *(f"{int(i.get(k) or 0):,}" for k in ("received", "stored", "malformed", "dropped")),
            f"{int(i.get('refused') or 0):,}",
            str(i.get("connections", "-")),
        )
    out.print(table)


def _show_cluster(storage: dict[str, Any]) -> None:
    """The NATS JetStream cluster behind a collector in cluster mode: servers, and per
    partition its stream's leader, replicas and how far this collector's index lags."""
    if storage.get("backend") != "jetstream":
        return
    out = console()
    connected = storage.get("connected")
    where = f"connected to {escape(str(connected))}" if connected else "[red]not connected[/red]"
    servers = storage.get("servers") or []
    copies, name = escape(str(storage.get("replicas"))), escape(repr(storage.get("name")))
    out.print(
        f"[bold]cluster[/bold]   NATS JetStream, {len(servers)} servers, {where}, "
        f"replicas {copies}, name {name}"
    )
    table = Table("topic", "partition", "stream", "leader", "replicas", "messages", "index lag")
    for row in storage.get("streams") or []:
        if "error" in row:
            table.add_row(
                escape(str(row.get("topic"))), escape(str(row.get("partition"))),
                escape(str(row.get("stream"))), f"[red]{escape(str(row['error']))}[/red]",
                "-", "-", "-",
            )  # fmt: skip
            continue
        replicas = ", ".join(
            escape(str(r.get("name"))) + ("" if r.get("current") else " [yellow](behind)[/yellow]")
            for r in row.get("replicas") or []
        )
        leader = row.get("leader")
        table.add_row(
            escape(str(row.get("topic"))),
            escape(str(row.get("partition"))),
            escape(str(row.get("stream"))),
            escape(str(leader)) if leader else "[red]none[/red]",
            replicas or "-",
            f"{row.get('messages', 0):,}",
            f"{row.get('index_lag', 0):,}",
        )
    out.print(table)


def _uptime(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172_800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
