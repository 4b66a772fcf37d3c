"""``wharf collector ...``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from cli._common import user_errors

app = typer.Typer(help="Run the collector.", no_args_is_help=True)

DEFAULT_DATA_DIR = Path("./wharf-data")


@app.command("run")
def run(
    config: Annotated[
        Path | None, typer.Option("--config", help="collector.toml (every key has a default).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where topics are stored.")
    ] = None,
    listen: Annotated[
        str | None, typer.Option("--listen", help="Native ingest address (127.0.0.1:7070).")
    ] = None,
    http: Annotated[
        str | None, typer.Option("--http", help="HTTP API address (127.0.0.1:7080).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning.")] = "info",
) -> None:
    """Run a collector on the embedded store until SIGTERM or Ctrl-C (in-flight appends are
    drained and fsynced, then it exits 0). SIGHUP re-reads --config: auth tokens and the TLS
    certificate change at once; the log names every other changed key, which waits for a
    restart.

    Examples:

      [bold]wharf collector run --data-dir /var/lib/wharf[/bold]

      [bold]wharf collector run --config /etc/wharf/collector.toml --listen 0.0.0.0:7070[/bold]
    """
    from collector.config import CollectorConfig, load_config  # noqa: PLC0415 (lazy: the server imports aiohttp; other commands must not pay for it)
    from collector.server import run_collector  # noqa: PLC0415 (lazy: the server imports aiohttp; other commands must not pay for it)

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {
        k: v
        for k, v in (
            ("data_dir", str(data_dir) if data_dir else None),
            ("listen", listen),
            ("http", http),
        )
        if v is not None
    }

    def read_config() -> CollectorConfig:
        return msgspec.structs.replace(load_config(config), **overrides)

    with user_errors():
        cfg = read_config()
        cfg.check()
        # SIGHUP re-reads the file (with the same flags on top); without one it has nothing
        # to re-read, and keeps its default meaning.
        asyncio.run(run_collector(cfg, reload=read_config if config is not None else None))
