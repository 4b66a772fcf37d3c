"""``wharf collector ...``."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from wharf.cli._common import user_errors

app = typer.Typer(help="Run the collector.", no_args_is_help=True)

DEFAULT_DATA_DIR = Path("./wharf-data")
_RETENTION_EVERY_S = 60.0


@app.command("run")
def run(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where topics are stored.")
    ] = DEFAULT_DATA_DIR,
) -> None:
    """Open (and after a crash, recover) the store, then keep applying retention until
    SIGTERM or Ctrl-C.

    Example: [bold]wharf collector run --data-dir /var/lib/wharf[/bold]
    """
    from collector.storage import Store

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with user_errors(), Store(data_dir) as store:
        for info in store.iter_topics():
            for p in info.partitions:
                logging.info(
                    "topic %s partition %d: offsets [%d, %d), %d bytes",
                    info.name,
                    p.partition,
                    p.start_offset,
                    p.end_offset,
                    p.bytes,
                )
        logging.info("store open at %s", data_dir)
        while not stop.wait(_RETENTION_EVERY_S):
            store.enforce_retention()
