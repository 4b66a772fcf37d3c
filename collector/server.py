"""The collector process: the store, the ingest listener, the HTTP API, retention, signals."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Final

from collector.config import CollectorConfig, split_host_port
from collector.http import Listening, ingest_sessions, make_app, serve
from collector.ingest import IngestServer
from collector.inputs import Inputs
from collector.metrics import Metrics
from collector.reload import reload_collector
from collector.storage import Fsync, Store
from collector.storage.interface import GroupOffsets, Storage
from collector.storage.workers import ScanWorkers
from wharf import sdnotify
from wharf.errors import InvalidArgument

log = logging.getLogger(__name__)

# Descriptors beyond connections and segment files: scan workers' pipes, group files, logs, the
# listeners.
_FD_HEADROOM: Final = 256
# The soft descriptor limit asked for when the hard one is unlimited (the kernel's usual
# fs.nr_open).
_FD_CEILING: Final = 1 << 20
# The store keeps at least this many segment files open, however low the descriptor limit.
_MIN_OPEN_FILES: Final = 16


def raise_fd_limit(config: CollectorConfig) -> int:
    """Raise the soft limit of open files to the hard one, and return how many segment files
    the store may keep open within it (``limits.max_open_segment_files``, lowered to a quarter
    of the limit when the limit is too low for the settings, with a warning saying what to do).

    The soft limit's usual 1024 is meant for programs that still use ``select()``; asyncio does
    not, and a collector needs a descriptor per connection plus its open segment files.
    """
    limits = config.limits
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = _FD_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            log.info("open files limit raised from %d to %d", soft, want)
            soft = want
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, want, exc)
    files = limits.max_open_segment_files
    need = limits.max_connections + config.api.max_connections + files + _FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < need:
        files = max(_MIN_OPEN_FILES, min(files, soft // 4))
        log.warning(
            "the open files limit (%d) is below what these settings may need (%d: "
            "limits.max_connections = %d, api.max_connections = %d, "
            "limits.max_open_segment_files = %d, and %d for the rest): raise it (LimitNOFILE= "
            "in the systemd unit, ulimit -n in a shell) or lower those limits. Keeping at most "
            "%d segment files open; past the limit, new connections fail",
            soft,
            need,
            limits.max_connections,
            config.api.max_connections,
            limits.max_open_segment_files,
            _FD_HEADROOM,
            files,
        )
    return files


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
        open_files = raise_fd_limit(config)
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
                use_filters=config.compaction.filters,
            )
            self.store, self.groups = cluster, cluster.group_offsets()
        else:
            self.embedded = Store(
                Path(config.data_dir),
                fsync=Fsync(config.storage.fsync),
                fsync_interval_ms=config.storage.fsync_interval_ms,
                default_config=config.topic_defaults,
                max_topics=config.limits.max_topics,
                max_open_files=open_files,
                compaction_settings=config.compaction,
            )
            self.store = self.embedded
        self.ssl_context = server_ssl_context(config)
        self.ingest = IngestServer(self.store, config, self.metrics, ssl_context=self.ssl_context)
        self.inputs = Inputs(config, self.store, self.metrics, self.ssl_context)
        self.ingest_port = 0
        self.http_port = 0
        self._api: Listening | None = None
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
            inputs=self.inputs.status,
        )
        hhost, hport = split_host_port(self.config.http, "http")
        self._api = await serve(
            app,
            self.config.api,
            hhost,
            hport,
            ssl_context=self.ssl_context,
            on_refused=self.metrics.http_refused.inc,
        )
        self.http_port = self._api.port
        await self.inputs.start()  # each logs "input NAME ready: ..." with the port it got
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
        await self.inputs.close()  # what they received is appended before the store closes
        await self.ingest.close()
        if self._api is not None:
            await self._api.close()
        if self.scan_workers is not None:
            await asyncio.to_thread(self.scan_workers.close)
        await asyncio.to_thread(self.store.close)


async def run_collector(
    config: CollectorConfig,
    ready: asyncio.Event | None = None,
    *,
    reload: Callable[[], CollectorConfig] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly. With ``reload`` (how to read the
    config again), SIGHUP reloads it (``collector.reload``). Under systemd (``Type=notify``)
    it reports readiness, feeds the watchdog from the event loop and says when it stops."""
    collector = Collector(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload_collector, collector, reload)
    watchdog: asyncio.Task[None] | None = None
    try:
        await collector.start()
        if ready is not None:
            ready.set()
        sdnotify.notify(
            "READY=1", f"STATUS=ingest :{collector.ingest_port}, http :{collector.http_port}"
        )
        period = sdnotify.watchdog_interval_s()
        if period is not None:
            watchdog = loop.create_task(_watchdog(period))
        await stop.wait()
        log.info("shutting down: draining in-flight appends")
    finally:
        sdnotify.notify("STOPPING=1")
        if watchdog is not None:
            watchdog.cancel()
        await collector.stop()
    log.info("collector stopped")


async def _watchdog(period: float) -> None:
    """``WATCHDOG=1`` from the event loop: a loop wedged for ``WatchdogSec=`` stops the pings,
    and systemd restarts the collector (acknowledged appends are durable; recovery does the
    rest)."""
    while True:
        sdnotify.notify("WATCHDOG=1")
        await asyncio.sleep(period)
