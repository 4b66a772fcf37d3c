"""The collector process: the store, the ingest listener, the HTTP API, retention, signals."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from pathlib import Path

from aiohttp import web

from collector.config import CollectorConfig, split_host_port
from collector.http import ingest_sessions, make_app
from collector.ingest import IngestServer
from collector.metrics import Metrics
from collector.storage import Fsync, Store
from collector.storage.interface import GroupOffsets, Storage
from collector.storage.workers import ScanWorkers
from wharf.errors import InvalidArgument

log = logging.getLogger(__name__)


def server_ssl_context(config: CollectorConfig) -> ssl.SSLContext | None:
    """TLS context for both listeners, or ``None`` when no certificate is configured."""
    tls = config.tls
    if not tls.enabled:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert, tls.key)
    if tls.client_ca:
        ctx.load_verify_locations(tls.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Collector:
    """Everything one collector runs, started and stopped together."""

    def __init__(self, config: CollectorConfig) -> None:
        config.check()
        self.config = config
        self.metrics = Metrics()
        self.store: Storage
        self.groups: GroupOffsets | None = None
        self.embedded: Store | None = None
        if config.cluster is not None:
            c = config.cluster
            try:  # nats-py comes with the optional ``cluster`` extra
                from collector.storage.jetstream import JetStreamStore  # noqa: PLC0415 (optional extra)
            except ImportError as exc:
                raise InvalidArgument(
                    f"[cluster] needs nats-py: pip install 'wharf[cluster]' ({exc})"
                ) from None
            cluster = JetStreamStore(
                c.nats,
                name=c.name,
                replicas=c.replicas,
                default_config=config.topic_defaults,
                max_batch_bytes=c.max_batch_bytes,
            )
            self.store, self.groups = cluster, cluster.group_offsets()
        else:
            self.embedded = Store(
                Path(config.data_dir),
                fsync=Fsync(config.storage.fsync),
                fsync_interval_ms=config.storage.fsync_interval_ms,
                default_config=config.topic_defaults,
            )
            self.store = self.embedded
        self.ssl_context = server_ssl_context(config)
        self.ingest = IngestServer(self.store, config, self.metrics, ssl_context=self.ssl_context)
        self.ingest_port = 0
        self.http_port = 0
        self._runner: web.AppRunner | None = None
        self._retention: asyncio.Task[None] | None = None
        workers = config.search.worker_count()
        self.scan_workers = (
            ScanWorkers(workers) if workers > 1 and self.embedded is not None else None
        )

    async def start(self) -> None:
        """Open both listeners (ports in ``ingest_port`` and ``http_port``)."""
        host, port = split_host_port(self.config.listen, "listen")
        self.ingest_port = await self.ingest.start(host, port)
        if self.embedded is not None and self.scan_workers is not None:
            # Worker processes read segment files: the embedded store's alone.
            self.scan_workers.warm()
            self.embedded.use_workers(self.scan_workers)
        app = make_app(
            self.store,
            self.config,
            self.metrics,
            data_dir=Path(self.config.data_dir),
            groups_offsets=self.groups,
            sessions=ingest_sessions(self.ingest),
        )
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        hhost, hport = split_host_port(self.config.http, "http")
        site = web.TCPSite(self._runner, hhost, hport, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        self.http_port = int(server.sockets[0].getsockname()[1])
        self._retention = asyncio.get_running_loop().create_task(self._apply_retention())
        log.info(
            "collector ready: ingest %s:%d, http %s:%d, data %s",
            host,
            self.ingest_port,
            hhost,
            self.http_port,
            self.config.data_dir if self.embedded is not None else "in the NATS cluster",
        )

    async def _apply_retention(self) -> None:
        while True:
            await asyncio.sleep(self.config.storage.retention_check_s)
            try:
                deleted = await asyncio.to_thread(self.store.enforce_retention)
                if deleted:
                    log.info("retention deleted %d segments (batches in cluster mode)", deleted)
            except Exception:
                log.exception("retention failed")

    async def stop(self) -> None:
        """Drain in-flight appends, close listeners, fsync and close the store."""
        if self._retention is not None:
            self._retention.cancel()
        await self.ingest.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.scan_workers is not None:
            await asyncio.to_thread(self.scan_workers.close)
        await asyncio.to_thread(self.store.close)


async def run_collector(config: CollectorConfig, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    collector = Collector(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await collector.start()
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down: draining in-flight appends")
    finally:
        await collector.stop()
    log.info("collector stopped")
