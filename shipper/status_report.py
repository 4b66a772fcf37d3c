"""The daemon's status report and its optional ``/metrics`` listener (loopback by default)."""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING

from shipper.follower import Follower
from shipper.status import FileStatus, StatusReport, metrics_text
from wharf.address import split_host_port

if TYPE_CHECKING:
    from aiohttp import web

    from shipper.daemon import Daemon


def _file_state(d: Daemon, f: object) -> str:
    assert isinstance(f, Follower)
    if f in d.waiting_fd:
        return "waiting"
    if f.finished:
        return "finishing"
    if f.detached:
        return "detached"
    return "open" if f.fd is not None else "closed"


def build_report(d: Daemon) -> StatusReport:
    """A snapshot of everything ``wharf shipper status`` shows."""
    files = [
        FileStatus(
            path=f.path,
            input=f.input.label,
            topic=f.input.topic,
            file_id=f.file_id,
            dev=f.key[0],
            ino=f.key[1],
            offset=f.track.acked,
            read_offset=f.pos,
            size=f.size,
            lag_bytes=max(0, f.size - f.track.acked),
            last_read=f.last_read,
            rotations=f.rotations,
            state=_file_state(d, f),
        )
        for f in d.files.followers.values()
    ]
    files.sort(key=lambda s: s.path)
    producer = d.delivery.producer
    spool = d.spool
    return StatusReport(
        pid=os.getpid(),
        started_at=d.started_at,
        updated_at=time.time(),
        shipper_id=str(uuid.UUID(bytes=d.delivery.producer_id)),
        host=d.host,
        connection=producer.state if producer is not None else "not started",
        last_error=producer.last_error if producer is not None else "",
        collectors=list(d.cfg.collectors),
        inotify=d.watcher is not None and d.watcher.active,
        open_files=len(d.files.open),
        followed_files=len(d.files.followers),
        spool_bytes=spool.bytes if spool is not None else 0,
        spool_batches=spool.count if spool is not None else 0,
        spooling=d.outbox.spooling,
        queued_batches=d.outbox.queued,
        inflight_batches=len(d.outbox) - d.outbox.queued,
        memory_queue_bytes=d.outbox.mem,
        checkpoint_writes=d.checkpoints.writes,
        # What is wrong now first (it goes away when it is over), then the last warnings.
        warnings=[*d.problems.lines(d.files.unreadable), *d.warnings[-20:]],
        counters={k: v for k, v in vars(d.stats).items() if not k.startswith("dropped")},
        drops=d.stats.drops,
        files=files,
    )


def gauges(d: Daemon) -> dict[str, float]:
    """Point-in-time values for ``/metrics``."""
    spool = d.spool
    return {
        "open_files": len(d.files.open),
        "followed_files": len(d.files.followers),
        "spool_bytes": spool.bytes if spool is not None else 0,
        "spool_batches": spool.count if spool is not None else 0,
        "memory_queue_bytes": d.outbox.mem,
        "inflight_batches": len(d.outbox) - d.outbox.queued,
        "connected": 1.0
        if d.delivery.producer is not None and d.delivery.producer.connected.is_set()
        else 0.0,
        "lag_bytes": sum(max(0, f.size - f.track.acked) for f in d.files.followers.values()),
        "unreadable_paths": len(d.files.unreadable),
    }


async def serve_metrics(d: Daemon, listen: str) -> web.AppRunner:
    """Serve ``GET /metrics`` (Prometheus text) on ``listen``."""
    from aiohttp import web  # noqa: PLC0415 (only with metrics_listen set: ~15 MB the daemon otherwise skips)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(
            text=metrics_text(d.stats, gauges(d)), content_type="text/plain", charset="utf-8"
        )

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    host, port = split_host_port(listen, "metrics_listen")
    await web.TCPSite(runner, host, port).start()
    return runner
