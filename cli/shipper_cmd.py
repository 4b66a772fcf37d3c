"""``wharf shipper run`` and ``wharf shipper status``."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from cli import shipper_run
from cli._common import console, fail, stdout_is_terminal, user_errors
from cli.shipper_run import DEFAULT_CONFIG, DEFAULT_LOG_LEVEL

app = typer.Typer(help="Run the shipper daemon and look at what it is doing.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="shipper.toml (see config/shipper.toml).")
]


@app.command("run")
def run(
    config: ConfigOpt = DEFAULT_CONFIG,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning.")
    ] = DEFAULT_LOG_LEVEL,
) -> None:
    """Tail the configured files and ship them until SIGTERM (which flushes and exits 0).

    SIGHUP re-reads the config and keeps every file position.

    Example:

      [bold]wharf shipper run --config /etc/wharf/shipper.toml[/bold]
    """
    raise typer.Exit(shipper_run.run(config, log_level))


def _age(ts: float) -> str:
    if not ts:
        return "never"
    secs = max(0.0, time.time() - ts)
    if secs < 120:
        return f"{secs:.0f}s ago"
    if secs < 7200:
        return f"{secs / 60:.0f}m ago"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@app.command("status")
def status(
    config: ConfigOpt = DEFAULT_CONFIG,
    output: Annotated[
        str, typer.Option("--output", "-o", help="table (default on a terminal) or json.")
    ] = "",
) -> None:
    """Per file: path, identity, acknowledged offset, size, lag, last read, rotations; plus
    spool, drops and the connection. Reads the status file the daemon rewrites every second.

    Example:

      [bold]wharf shipper status --config /etc/wharf/shipper.toml -o json[/bold]
    """
    from shipper.config import load_config  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))
    from shipper.status import daemon_alive, read_status  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))

    with user_errors():
        cfg = load_config(config)
        state_dir = Path(cfg.state_dir)
        try:
            report = read_status(state_dir)
        except FileNotFoundError:
            fail(f"no status in {state_dir}: the shipper has not run with this config")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            fail(f"{state_dir}/status.json is unreadable: {exc}")
        alive = daemon_alive(report.pid)
        mode = output or ("table" if stdout_is_terminal() else "json")
        if mode == "json":
            data: dict[str, Any] = msgspec.to_builtins(report)
            data["running"] = alive
            sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
            return
        if mode != "table":
            fail(f"unknown output {mode!r}: table or json")
        _print_table(report, alive)


def _print_table(report: Any, alive: bool) -> None:
    from rich.markup import escape  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))
    from rich.table import Table  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))

    out = console()
    state = "running" if alive else "NOT RUNNING (last status shown)"
    # What the status file says (ids, hosts, paths, topics, error texts) is data, not markup:
    # "/var/log/[x]/a.log" must print as it is.
    out.print(
        f"[bold]shipper[/bold] {escape(report.shipper_id)} on {escape(report.host)}: {state}, "
        f"pid {report.pid}, updated {_age(report.updated_at)}"
    )
    out.print(
        f"connection: {escape(report.connection)}"
        + (f" (last error: {escape(report.last_error)})" if report.last_error else "")
    )
    out.print(
        f"files: {report.followed_files} followed, {report.open_files} open; "
        f"inotify {'on' if report.inotify else 'off (polling)'}"
    )
    out.print(
        f"spool: {_size(report.spool_bytes)} in {report.spool_batches} batches"
        f"{' (spooling)' if report.spooling else ''}; queued {report.queued_batches}, "
        f"in flight {report.inflight_batches}"
    )
    drops = {k: v for k, v in report.drops.items() if v}
    out.print(
        "drops: " + (escape(", ".join(f"{k}={v}" for k, v in drops.items())) if drops else "none")
    )
    for w in report.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(w)}")
    table = Table(show_header=True, header_style="bold")
    for col in ("path", "topic", "identity", "offset", "size", "lag", "last read", "rot", "state"):
        table.add_column(
            col, justify="right" if col in ("offset", "size", "lag", "rot") else "left"
        )
    for f in report.files:
        table.add_row(
            escape(f.path),
            escape(f.topic),
            escape(f"{f.dev}:{f.ino} {f.file_id.rsplit('.', 1)[-1]}"),
            str(f.offset),
            str(f.size),
            _size(f.lag_bytes),
            _age(f.last_read),
            str(f.rotations),
            escape(f.state),
        )
    out.print(table)
