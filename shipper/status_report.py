"""The status report and its optional ``/metrics`` listener (loopback by default), built from
the snapshots the daemon's parts give (``FileTable.snapshot``, ``delivery_snapshot``): plain
values, so nothing here knows the daemon.

``StatusFile`` keeps ``state_dir/status.json`` fresh: rewritten within ``status_interval_s``
of a change, and every ``_STATUS_MAX_AGE_S`` even when nothing changes (``updated_at`` then
says the daemon is alive). ``due`` is its row in the daemon's timer table.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from shipper.config import ShipperConfig
from shipper.outbox import Outbox
from shipper.problems import Problems
from shipper.status import (
    DeliverySnapshot,
    FilesSnapshot,
    Stats,
    StatusReport,
    metrics_text,
    write_status,
)
from shipper.transport import Producer
from wharf import sdnotify
from wharf.address import split_host_port

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

_STATUS_MAX_AGE_S: Final = 30.0  # rewrite the status file at least this often, even when idle


def delivery_snapshot(outbox: Outbox, producer: Producer | None) -> DeliverySnapshot:
    """The way out as the status shows it: the connection, the outbox and its spool."""
    spool = outbox.spool
    return DeliverySnapshot(
        connection=producer.state if producer is not None else "not started",
        connected=producer is not None and producer.connected.is_set(),
        last_error=producer.last_error if producer is not None else "",
        spool_bytes=spool.bytes if spool is not None else 0,
        spool_batches=spool.count if spool is not None else 0,
        spooling=outbox.spooling,
        queued_batches=outbox.queued,
        inflight_batches=len(outbox) - outbox.queued,
        memory_queue_bytes=outbox.mem,
    )


def build_report(
    *,
    started_at: float,
    shipper_id: bytes,
    host: str,
    collectors: list[str],
    inotify: bool,
    files: FilesSnapshot,
    delivery: DeliverySnapshot,
    checkpoint_writes: int,
    problems: Problems,
    stats: Stats,
) -> StatusReport:
    """Everything ``wharf shipper status`` shows."""
    return StatusReport(
        pid=os.getpid(),
        started_at=started_at,
        updated_at=time.time(),
        shipper_id=str(uuid.UUID(bytes=shipper_id)),
        host=host,
        connection=delivery.connection,
        last_error=delivery.last_error,
        collectors=list(collectors),
        inotify=inotify,
        open_files=files.open_files,
        followed_files=files.followed_files,
        spool_bytes=delivery.spool_bytes,
        spool_batches=delivery.spool_batches,
        spooling=delivery.spooling,
        queued_batches=delivery.queued_batches,
        inflight_batches=delivery.inflight_batches,
        memory_queue_bytes=delivery.memory_queue_bytes,
        checkpoint_writes=checkpoint_writes,
        # What is wrong now first (it goes away when it is over), then the last warnings.
        warnings=problems.lines(files.unreadable),
        counters={k: v for k, v in vars(stats).items() if not k.startswith("dropped")},
        drops=stats.drops,
        files=files.files,
    )


def gauges(files: FilesSnapshot, delivery: DeliverySnapshot) -> dict[str, float]:
    """Point-in-time values for ``/metrics``."""
    return {
        "open_files": files.open_files,
        "followed_files": files.followed_files,
        "spool_bytes": delivery.spool_bytes,
        "spool_batches": delivery.spool_batches,
        "memory_queue_bytes": delivery.memory_queue_bytes,
        "inflight_batches": delivery.inflight_batches,
        "connected": 1.0 if delivery.connected else 0.0,
        "lag_bytes": files.lag_bytes,
        "unreadable_paths": len(files.unreadable),
    }


class StatusFile:
    """``status.json``, kept fresh (see the module docstring)."""

    def __init__(self, cfg: ShipperConfig, problems: Problems) -> None:
        self.cfg = cfg
        self.problems = problems
        self.started_at = time.time()
        self.dirty = True
        self.last = 0.0  # monotonic time of the last write

    def mark(self) -> None:
        """Something the status shows changed: rewrite it within ``status_interval_s``."""
        self.dirty = True

    def due(self) -> float:
        """When the file is next rewritten (the timer table's row)."""
        due = self.last + _STATUS_MAX_AGE_S
        if self.dirty:
            due = min(due, self.last + self.cfg.status_interval_s)
        return due

    def write(self, report: StatusReport) -> None:
        """Replace ``status.json`` with ``report`` and tell systemd the gist."""
        try:
            write_status(Path(self.cfg.state_dir), report)
        except OSError as exc:
            if self.problems.may_log("status"):
                log.warning("cannot write the status file: %s", exc)
        self.dirty = False
        self.last = time.monotonic()
        sdnotify.notify(
            f"STATUS={report.followed_files} files, {report.connection}, "
            f"spool {report.spool_bytes} bytes"
        )


async def serve_metrics(listen: str, text: Callable[[], str]) -> web.AppRunner:
    """Serve ``GET /metrics`` (Prometheus text from ``text()``) on ``listen``."""
    from aiohttp import web  # noqa: PLC0415 (only with metrics_listen set: ~15 MB the daemon otherwise skips)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=text(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    host, port = split_host_port(listen, "metrics_listen")
    await web.TCPSite(runner, host, port).start()
    return runner


def metrics_of(stats: Stats, files: FilesSnapshot, delivery: DeliverySnapshot) -> str:
    """The ``/metrics`` page: the counters and the gauges."""
    return metrics_text(stats, gauges(files, delivery))
