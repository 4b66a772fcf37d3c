"""The native ingest listener: asyncio around ``wharf.protocol``, appends into the store.

Per connection, frames are handled in order: a PRODUCE is validated (off the event loop:
decompressing is CPU work), submitted to the store's committer, and the connection goes on
reading while the append becomes durable; the ACK is written when it is. The committer
resolves appends in submission order, so ACKs leave in the order the batches came. At most
``max_inflight_per_connection`` batches wait per connection; past that the connection stops
reading (TCP backpressure) instead of buffering.

What a connection may hold before it proves itself is small and bounded (``collector.
admission``, the ``[limits]`` of collector.toml): connections that have not sent HELLO yet have
their own cap, and the oldest of them is closed to make room for a new one, so idle sockets
cannot lock shippers out; an address that keeps presenting wrong tokens is refused for a
while; frames being received hold their size from one budget shared by all connections. A
connection that ends, however it ends, gives back its buffers at once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import ssl
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

from collector.admission import FrameBudget, FrameMeter, LoginFailures
from collector.config import CollectorConfig
from collector.metrics import Metrics
from collector.storage import AppendResult
from collector.storage.interface import Storage
from wharf import batch as wb
from wharf import protocol as wp
from wharf.errors import (
    ConnectionClosed,
    CorruptBatch,
    FrameTimeout,
    HandshakeTimeout,
    IdleTimeout,
    ProtocolError,
    StoreError,
    TooManyConnections,
    Unauthorized,
    Unavailable,
    UnexpectedFrame,
    UnsupportedVersion,
    WharfError,
)
from wharf.topics import partition_for, validate_topic

log = logging.getLogger(__name__)

SERVER_NAME = "wharf-collector/0.1"
HEARTBEAT_S = 15.0
_READ_CHUNK = 256 * 1024
# The error for each read deadline (see ``_Session._read_more``); each has its own code so the
# peer, the logs and the metrics say which phase stalled.
_TIMEOUTS: Final[dict[str, type[ProtocolError]]] = {
    "handshake": HandshakeTimeout,
    "frame": FrameTimeout,
    "idle": IdleTimeout,
}
# States in which a connection still takes replies.
_OPEN: Final = frozenset({wp.State.HANDSHAKE, wp.State.READY})


def _validate(data: bytes, versions: tuple[int, ...] = wb.VERSIONS) -> wb.Batch:
    """Full structural check of an incoming batch (runs in a worker thread): everything a
    reader later trusts, without materializing a record (``wharf.batch.Batch.validate``), in
    one of the ``versions`` this collector takes (whatever a HELLO announced: a client that
    sends a version it did not announce gets it stored all the same)."""
    batch = wb.Batch(data)
    if batch.version not in versions:
        raise CorruptBatch(
            f"batch version {batch.version} is not supported (this collector reads "
            f"{', '.join(map(str, versions))})"
        )
    batch.validate()
    return batch


class IngestServer:
    """Accepts native-protocol connections and appends their batches to ``store``."""

    def __init__(
        self,
        store: Storage,
        config: CollectorConfig,
        metrics: Metrics,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.ssl_context = ssl_context
        self.clock = clock
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: set[_Session] = set()
        # Sessions still in their handshake, oldest first (a dict keeps insertion order).
        self._preauth: dict[_Session, None] = {}
        self._draining = False
        self._validators = ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate")
        # Batch versions taken from shippers (HELLO narrows it to what each one can send).
        self.batch_versions: tuple[int, ...] = wb.VERSIONS
        self._tokens: list[bytes] = []
        self.set_write_tokens(config.auth.write_tokens)
        limits = config.limits
        self.frame_budget = FrameBudget(limits.max_buffered_frame_bytes)
        self.login_failures = LoginFailures(limits.max_auth_failures_per_minute, clock)

    def set_write_tokens(self, tokens: list[str]) -> None:
        """The tokens a HELLO must present from now on (kept encoded for the constant-time
        compare); connections already logged in stay."""
        self._tokens = [t.encode() for t in tokens]

    async def start(self, host: str, port: int) -> int:
        """Listen; return the bound port (useful with port 0)."""
        tls: dict[str, Any] = {}
        if self.ssl_context is not None:
            # A TLS handshake happens before the connection is ours to count: bound it too.
            tls["ssl_handshake_timeout"] = self.config.limits.handshake_timeout_s
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=self.ssl_context, limit=_READ_CHUNK, **tls
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, let in-flight appends finish and their ACKs go out, then close."""
        self._draining = True
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.stop_reading()
        if self._server is not None:
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        for task in list(self._tasks):
            task.cancel()
        self._validators.shutdown(wait=True)

    def sessions(self) -> list[dict[str, object]]:
        """The connected producers (for ``/v1/status``); call on the event loop."""
        out: list[dict[str, object]] = []
        for s in list(self._sessions):
            peer = s.writer.get_extra_info("peername")
            out.append(
                {
                    "peer": f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
                    "producer_id": s.producer_id.hex(),
                    "client": s.client,
                    "connected_s": round(max(0.0, s.loop.time() - s.started), 3),
                    "in_flight": s.inflight.qsize(),
                }
            )
        return out

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _token_ok(self, token: str) -> bool:
        if not self._tokens:
            return True
        given = token.encode()
        # Compare with every token, always: how long this takes says nothing about which
        # token came close.
        ok = False
        for t in self._tokens:
            ok |= hmac.compare_digest(given, t)
        return ok

    def _make_room(self) -> bool:
        """Whether a new connection may be served: at the pre-auth cap, or at the connection
        limit while some connections have not logged in, the oldest of those is closed to make
        room; at the limit with every connection logged in, the new one is refused."""
        limits = self.config.limits
        if len(self._preauth) >= limits.max_preauth_connections or (
            len(self._sessions) >= limits.max_connections and self._preauth
        ):
            oldest = next(iter(self._preauth))
            self._forget(oldest)
            oldest.evict(
                TooManyConnections(
                    "closed to make room: too many connections have not logged in "
                    f"(limits.max_preauth_connections = {limits.max_preauth_connections})"
                )
            )
            return True
        return len(self._sessions) < limits.max_connections

    def _forget(self, session: _Session) -> None:
        self._sessions.discard(session)
        self._preauth.pop(session, None)

    def logged_in(self, session: _Session) -> None:
        """``session`` completed its handshake: it no longer counts as waiting to log in."""
        self._preauth.pop(session, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        m = self.metrics
        if not self._make_room():
            full = TooManyConnections(
                f"connection limit reached (limits.max_connections = "
                f"{self.config.limits.max_connections})"
            )
            m.protocol_errors.labels(full.code).inc()
            writer.write(wp.Connection(wp.Role.SERVER).send(wp.Error.from_error(full)))
            await _close(writer)
            return
        m.connections.inc()
        m.connections_total.inc()
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        self._preauth[session] = None
        try:
            await session.run()
        except ProtocolError as exc:
            if not isinstance(exc, ConnectionClosed):
                m.protocol_errors.labels(exc.code).inc()
                log.info("closing %s: %s", peer, exc)
                session.send_error(exc)
            _untrace(exc)
        except Unavailable as exc:  # evicted, or no room for its frame in time
            m.protocol_errors.labels(exc.code).inc()  # counted, not logged: a flood is no log
            log.debug("closing %s: %s", peer, exc)
            session.send_error(exc)
            _untrace(exc)
        except wp.LocalProtocolError as exc:  # a bug on this side: say so, and tell the peer
            log.exception("closing %s: protocol misuse", peer)
            session.send_error(exc)
            _untrace(exc)
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as exc:
            log.info("connection %s ended: %s", peer, exc)
            _untrace(exc)
        finally:
            self._forget(session)
            await session.finish()
            session.discard()
            m.connections.dec()
            await _close(writer)


def _untrace(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and the errors it chains (see ``_Session.discard``): the
    protocol state keeps the error that failed it, and its traceback's frames keep the protocol
    state, buffer included."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        cur.__traceback__ = None
        cur = cur.__cause__ or cur.__context__


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        async with asyncio.timeout(5):
            await writer.wait_closed()
    except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
        pass


class _Stop(Exception):
    """The server is shutting down: stop reading this connection."""


class _Session:
    """One connection's protocol state and its in-flight appends."""

    def __init__(
        self, server: IngestServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.conn = wp.Connection(wp.Role.SERVER)
        self.producer_id = bytes(16)
        self.client = ""
        self.inflight: asyncio.Queue[asyncio.Future[wp.Ack | wp.Nack]] = asyncio.Queue(
            server.config.limits.max_inflight_per_connection
        )
        self.loop = asyncio.get_running_loop()
        self.acker: asyncio.Task[None] | None = self.loop.create_task(self._ack_in_order())
        self._read: asyncio.Task[bytes] | None = None
        self._stopping = False
        self._evicted: Unavailable | None = None
        self.started = self.loop.time()
        self.frame_started: float | None = None
        self.meter = FrameMeter()
        self.held = 0  # bytes of the frame budget this connection holds
        peer = writer.get_extra_info("peername")
        self.peer_host = str(peer[0]) if isinstance(peer, tuple) else ""

    def stop_reading(self) -> None:
        """Take no more frames (shutdown): in-flight appends still get their replies."""
        self._stopping = True
        if self._read is not None:
            self._read.cancel()

    def evict(self, why: Unavailable) -> None:
        """Close this connection (not logged in yet) to make room; the peer is told ``why``."""
        self._evicted = why
        if self._read is not None:
            self._read.cancel()

    def discard(self) -> None:
        """Give back the frame budget and drop every buffer now, when the connection ends.

        A protocol error keeps its traceback, whose frames hold the session and the protocol
        state with its buffer (up to a whole frame): a reference cycle that only a full GC
        frees. Memory of closed connections then piles up (RSS grew by GBs after clients that
        sent huge partial frames had gone). So ``_serve`` drops the traceback of the error
        that ended the connection (``_untrace``), and the buffers go here.
        """
        if self.held:
            self.server.frame_budget.release(self.held)
            self.held = 0
        self.conn = wp.Connection(wp.Role.SERVER)
        self.conn.close()
        # The tasks end with errors whose tracebacks hold this session (the acker is being
        # cancelled): let go of them, or they and the session keep each other alive.
        self._read = None
        self.acker = None

    def send(self, event: wp.Event) -> None:
        # Once the connection failed or said goodbye, replies still owed have nowhere to go:
        # the shipper resends those batches on its next connection and dedupe drops what is
        # already stored.
        if self.conn.state in _OPEN and not self.writer.is_closing():
            self.writer.write(self.conn.send(event))

    def send_error(self, exc: WharfError) -> None:
        """Tell the peer why the connection ends (an ERROR frame with ``exc``'s code) and
        close the protocol side."""
        if self.conn.state is not wp.State.CLOSED and not self.writer.is_closing():
            self.writer.write(self.conn.send(wp.Error.from_error(exc)))
        self.conn.close()

    async def _read_more(self) -> None:
        """Read once, within the deadline of the current phase.

        Deadlines are absolute, not per read: a peer dribbling one byte at a time (slowloris)
        still has to finish its handshake, or a started frame, in time.
        """
        if self._evicted is not None:
            raise self._evicted
        limits = self.server.config.limits
        now = self.loop.time()
        if self.conn.state is wp.State.HANDSHAKE:
            what, deadline = "handshake", self.started + limits.handshake_timeout_s
        elif self.conn.mid_frame:
            if self.frame_started is None:
                self.frame_started = now
            what, deadline = "frame", self.frame_started + limits.frame_timeout_s
        else:
            self.frame_started = None
            what, deadline = "idle", now + limits.idle_timeout_s
        self._read = self.loop.create_task(self.reader.read(_READ_CHUNK))
        try:
            async with asyncio.timeout(max(0.0, deadline - now)):
                data = await self._read
        except asyncio.CancelledError:
            if self._stopping:
                raise _Stop from None
            if self._evicted is not None:
                raise self._evicted from None
            raise
        except TimeoutError:
            raise _TIMEOUTS[what](f"{what} not completed in time") from None
        self.meter.feed(data)
        await self._hold(self.meter.pending, self.frame_started or now)
        self.conn.receive_data(data)

    async def _hold(self, size: int, frame_started: float) -> None:
        """Hold ``size`` bytes of the frame budget for the frame in progress (0: none), waiting
        for room until the frame's deadline (then the peer is told to come back later)."""
        limit = wp.HANDSHAKE_MAX_FRAME if self.conn.state is wp.State.HANDSHAKE else wp.MAX_FRAME
        if size > limit:
            size = 0  # the protocol refuses that frame before buffering it
        budget = self.server.frame_budget
        if size <= self.held:
            budget.release(self.held - size)
            self.held = size
            return
        timeout = frame_started + self.server.config.limits.frame_timeout_s - self.loop.time()
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await budget.acquire(size - self.held)
        except TimeoutError:
            raise Unavailable(
                f"no room for a frame of {size} bytes in time: the collector's memory for "
                "frames being received is in use (limits.max_buffered_frame_bytes = "
                f"{budget.capacity}); send it again later"
            ) from None
        self.held = size

    async def run(self) -> None:
        try:
            await self._run()
        except _Stop:
            return

    async def _run(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is wp.NEED_DATA:
                if self._stopping:
                    return
                await self._read_more()
                continue
            self.frame_started = None
            match event:
                case wp.Hello():
                    if not self._hello(event):
                        return
                case wp.Produce():
                    await self._produce(event)
                case wp.Ping():
                    self.send(wp.Pong())
                case wp.Pong():
                    pass
                case wp.Error():
                    log.info("peer error %s: %s", event.code, event.message)
                    return
                case _:
                    raise UnexpectedFrame(f"unexpected {type(event).__name__}")

    def _hello(self, hello: wp.Hello) -> bool:
        server = self.server
        refusal: WharfError | None = None
        wait_s = server.login_failures.wait_s(self.peer_host)
        versions = tuple(v for v in hello.batch_versions if v in server.batch_versions)
        if hello.version != wp.PROTOCOL_VERSION:
            refusal = UnsupportedVersion(
                f"protocol version {hello.version} is not "
                f"supported (this collector speaks {wp.PROTOCOL_VERSION})"
            )
        elif not versions:
            refusal = UnsupportedVersion(
                f"batch versions {', '.join(map(str, hello.batch_versions))} are not supported "
                f"(this collector reads {', '.join(map(str, server.batch_versions))})"
            )
        elif wait_s > 0:
            # The token is not even compared: while an address is held back, guessing from it
            # tells nothing. Retriable, so a shipper with the right token gets in later.
            refusal = Unavailable(
                f"too many failed logins from {self.peer_host} (limits."
                f"max_auth_failures_per_minute = {server.login_failures.per_minute}): try "
                f"again in {math.ceil(wait_s)} s"
            )
        elif not server._token_ok(hello.token):
            server.login_failures.failed(self.peer_host)
            refusal = Unauthorized("invalid or missing write token")
        if refusal is not None:
            server.metrics.protocol_errors.labels(refusal.code).inc()
            self.send_error(refusal)
            return False
        server.logged_in(self)
        self.producer_id = hello.producer_id
        self.client = hello.client
        cfg = server.config.limits
        self.send(
            wp.Welcome(
                wp.PROTOCOL_VERSION,
                SERVER_NAME,
                wp.MAX_FRAME,
                cfg.max_inflight_per_connection,
                HEARTBEAT_S,
                versions,
            )
        )
        return True

    async def _produce(self, p: wp.Produce) -> None:
        started = time.perf_counter()
        fut: asyncio.Future[wp.Ack | wp.Nack] = self.loop.create_future()
        await self.inflight.put(fut)  # blocks reading when the window is full
        server = self.server
        try:
            validate_topic(p.topic)
            batch = await self.loop.run_in_executor(
                server._validators, _validate, p.batch, server.batch_versions
            )
            if batch.header.producer_id != self.producer_id:
                raise CorruptBatch("batch producer id differs from the connection's HELLO")
            config = server.store.ensure_topic(p.topic)
            key = p.key or (batch.hosts[0] if batch.hosts else "")
            partition = partition_for(key, config.partitions)
            stored = server.store.submit(p.topic, partition, p.batch)
        except WharfError as exc:  # the table gives the NACK its code and retriable flag
            self._nack(fut, p, exc)
            return
        except OSError as exc:  # the storage failed under us (creating the topic, say)
            log.error("produce to %s failed: %s", p.topic, exc)
            err = StoreError(f"cannot store in topic {p.topic!r}: {exc.strerror or exc}")
            err.__cause__ = exc
            self._nack(fut, p, err)
            return

        def done(result: Future[AppendResult]) -> None:
            self.loop.call_soon_threadsafe(self._stored, fut, p, result, started)

        stored.add_done_callback(done)

    def _nack(self, fut: asyncio.Future[wp.Ack | wp.Nack], p: wp.Produce, exc: WharfError) -> None:
        self.server.metrics.nacks.labels(exc.code).inc()
        fut.set_result(wp.Nack.from_error(p.correlation_id, exc))

    def _stored(
        self,
        fut: asyncio.Future[wp.Ack | wp.Nack],
        p: wp.Produce,
        result: Future[AppendResult],
        started: float,
    ) -> None:
        m = self.server.metrics
        exc = result.exception()
        if exc is not None:
            log.error("append to %s failed: %s", p.topic, exc)
            if not isinstance(exc, WharfError):
                # An unforeseen failure of the store (an OSError...) is a store error: the
                # shipper keeps the batch and resends it later.
                err = StoreError(str(exc) or type(exc).__name__)
                err.__cause__ = exc
                exc = err
            self._nack(fut, p, exc)
            return
        r = result.result()
        m.append_seconds.observe(time.perf_counter() - started)
        m.batches.labels(p.topic).inc()
        if r.duplicate:
            m.duplicates.labels(p.topic).inc()
        else:
            m.records.labels(p.topic).inc(r.record_count)
            m.bytes.labels(p.topic).inc(len(p.batch))
        fut.set_result(
            wp.Ack(p.correlation_id, r.partition, r.base_offset, r.record_count, r.duplicate)
        )

    async def _ack_in_order(self) -> None:
        broken = False
        while True:
            fut = await self.inflight.get()
            try:
                reply = await fut
                self.send(reply)
                if not broken:
                    await self.writer.drain()  # a peer that does not read its ACKs stalls here
            except (ConnectionError, OSError):
                broken = True
            finally:
                self.inflight.task_done()

    async def finish(self) -> None:
        """Wait for in-flight appends (they are durable or failed) and send their replies."""
        try:
            async with asyncio.timeout(30):
                await self.inflight.join()
            if not self.writer.is_closing():
                await self.writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            if self.acker is not None:
                self.acker.cancel()
