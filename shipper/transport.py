"""The producer side of the native protocol: a window of batches in flight, acks matched by
correlation id, reconnects with backoff and jitter, failover across collectors, and resending of
everything unacknowledged, in order, on the new connection (the collector drops what it already
has, by the batch's spans, so a resend never duplicates).

Like aiokafka's connection: every ``send`` returns when its batch is acknowledged; on a lost
connection the pending sends do not fail, they wait for the resend. Only a non-retriable NACK,
or ``close()``, or ``deadline_s`` without a single acknowledgement fails them.

Every failed attempt (no connection, a connection that broke, a batch refused for now: a
collector with a full disk) waits before the next one, exponentially longer with full jitter,
until a batch is acknowledged again: a refusing collector sees a few attempts a second at first
and one every ``backoff_s[1]`` later, never a tight loop.

Batch versions: HELLO offers every version this side can build (``wharf.batch.VERSIONS``) and
WELCOME says which the collector takes (an old collector says nothing, meaning version 1).
``batch_version`` is the newest the current (or last) collector takes, for the caller to build
in; a batch in a version the collector does not take is converted before it is written
(``wharf.batch.convert``, in a worker thread): after a failover to an older collector, or for
spooled batches built before one.

Whether a NACK or a refused handshake is worth retrying is decided by the typed error rebuilt
from its code (``wharf.errors.TABLE``), never by matching strings; the typed error is the
``__cause__`` of the ``DeliveryError`` a caller sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from wharf import batch as wb
from wharf import protocol as wp
from wharf.address import split_host_port
from wharf.errors import RemoteError, Unavailable, UnexpectedFrame, WharfError

log = logging.getLogger(__name__)

_READ_CHUNK = 256 * 1024


class DeliveryError(WharfError):
    """A batch was refused for good (NACK not retriable) or could not be delivered in time."""


class CollectorUnavailable(DeliveryError, Unavailable):
    """No collector acknowledged a batch before the deadline: none answered, or the one that
    did kept refusing the batches for now (``Unavailable``, so retriable, with that code)."""


class _Reconnect(Exception):
    """End this connection and resend everything unacknowledged on the next one; ``__cause__``
    is the typed error that asked for it."""


@dataclass(eq=False)
class _Pending:
    correlation_id: int
    topic: str
    key: str
    batch: bytes
    future: asyncio.Future[wp.Ack]
    generation: int = -1  # connection generation it was last written on
    sent_at: float = field(default=0.0)


class Producer:
    """Deliver batches to the first collector of ``addresses`` that answers.

    ``window`` bounds the batches sent but not acknowledged; ``send`` waits for room.
    ``deadline_s`` (``None``: wait for ever, as the daemon does, its spool holding the rest)
    gives up when no batch has been acknowledged for that long while some are owed, whatever
    the reason: then every pending and later ``send`` raises ``CollectorUnavailable`` naming
    the last error. A bad address raises ``InvalidArgument`` here, not in a task.
    """

    def __init__(
        self,
        addresses: list[str],
        *,
        producer_id: bytes,
        token: str = "",
        ssl_context: ssl.SSLContext | None = None,
        window: int = 8,
        client_name: str = "wharf",
        connect_timeout_s: float = 5.0,
        ack_timeout_s: float = 60.0,
        deadline_s: float | None = None,
        backoff_s: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        if not addresses:
            raise ValueError("at least one collector address is needed")
        self.addresses = [split_host_port(a, "collector address") for a in addresses]
        self.producer_id = producer_id
        self.token = token
        self.ssl_context = ssl_context
        self.window = window
        self.client_name = client_name
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.deadline_s = deadline_s
        self.backoff_s = backoff_s
        self.connected = asyncio.Event()
        self.state = "disconnected"
        self.last_error = ""
        self.reconnects = 0
        self._room = asyncio.Semaphore(window)
        self._unacked: OrderedDict[int, _Pending] = OrderedDict()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._next_id = 1
        self._generation = 0
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._deadline_task: asyncio.Task[None] | None = None
        # Failed attempts since the last acknowledgement: the exponent of the backoff. Reset by
        # an ack, not by a connection (a collector that accepts connections and refuses every
        # batch must not be retried at the first step's pace).
        self._failures = 0
        self._progress_at = time.monotonic()  # the last ack, or when batches became owed
        self._fatal: DeliveryError | None = None
        # Batch versions the current (or last) collector takes, from its WELCOME.
        self.batch_versions: tuple[int, ...] = wb.VERSIONS

    def __repr__(self) -> str:
        return f"<Producer {self.state} unacked={len(self._unacked)}>"

    @property
    def failure(self) -> DeliveryError | None:
        """Why this producer gave up for good (its deadline passed, or a collector refused
        this client); ``None`` while it keeps trying."""
        return self._fatal

    @property
    def batch_version(self) -> int:
        """The batch version to build in: the newest the collector takes."""
        return max(self.batch_versions)

    async def start(self) -> None:
        """Start the connection task (``send`` starts it too)."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run())
            if self.deadline_s is not None:
                self._deadline_task = loop.create_task(self._watch_deadline(self.deadline_s))

    async def send(self, topic: str, batch: bytes, key: str = "") -> wp.Ack:
        """Deliver one batch; return its ACK once durable on the collector."""
        if self._fatal is not None:
            raise self._fatal
        await self.start()
        await self._room.acquire()
        try:
            if self._fatal is not None:  # given up while this send waited for room
                raise self._fatal
            fut: asyncio.Future[wp.Ack] = asyncio.get_running_loop().create_future()
            p = _Pending(self._next_id, topic, key, batch, fut)
            self._next_id += 1
            if not self._unacked:
                self._progress_at = time.monotonic()  # the deadline runs from now
            self._unacked[p.correlation_id] = p
            self._queue.put_nowait(p)
            return await fut
        finally:
            self._room.release()

    async def flush(self) -> None:
        """Wait until nothing is in flight."""
        while self._unacked:
            await asyncio.gather(
                *(p.future for p in list(self._unacked.values())), return_exceptions=True
            )

    async def close(self) -> None:
        """Stop; sends still pending fail with ``DeliveryError``."""
        self._closed = True
        for task in (self._task, self._deadline_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for p in self._unacked.values():
            if not p.future.done():
                p.future.set_exception(DeliveryError("producer closed before the ack"))
        self._unacked.clear()

    # -- connection management ----------------------------------------------------------

    async def _run(self) -> None:
        index = 0
        while not self._closed and self._fatal is None:
            host, port = self.addresses[index % len(self.addresses)]
            try:
                reader, writer, conn = await self._connect(host, port)
            except DeliveryError as exc:
                self._note_failure(f"{host}:{port}: {exc}")
                if not exc.retriable:
                    self._fatal = exc
                    self._fail_all(exc)
                    return
                index += 1
                await self._pause()
                continue
            except (OSError, TimeoutError, RemoteError, ssl.SSLError) as exc:
                silent = isinstance(exc, TimeoutError)  # asyncio.timeout's has no text
                why = f"no answer within {self.connect_timeout_s:g} s" if silent else exc
                self._note_failure(f"{host}:{port}: {why}")
                index += 1
                await self._pause()
                continue
            except Exception as exc:  # whatever it is, this task must live on
                # Not one of the failures above (a bug, or a platform refusal they miss): the
                # connection task must not die, or every send would wait for ever, silently.
                log.warning("collector connection to %s:%d failed", host, port, exc_info=True)
                self._note_failure(f"{host}:{port}: {type(exc).__name__}: {exc}")
                index += 1
                await self._pause()
                continue
            self._generation += 1
            self.state = f"connected {host}:{port}"
            self.connected.set()
            try:
                await self._serve(reader, writer, conn)
            except (OSError, TimeoutError, RemoteError, ssl.SSLError, _Reconnect) as exc:
                self._note_failure(f"{host}:{port}: {exc}")
            except Exception as exc:  # as above: reconnect, never die
                log.warning("collector connection to %s:%d failed", host, port, exc_info=True)
                self._note_failure(f"{host}:{port}: {type(exc).__name__}: {exc}")
            finally:
                self.connected.clear()
                self.state = "disconnected"
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if not self._closed:
                self.reconnects += 1
                await self._pause()

    def _note_failure(self, message: str) -> None:
        self.last_error = message
        self._failures += 1

    async def _pause(self) -> None:
        """Wait before the next attempt: longer after each failure since the last ack."""
        delay = self._backoff(self._failures)
        log.warning("collector connection: %s (next attempt in %.2f s)", self.last_error, delay)
        await asyncio.sleep(delay)

    async def _watch_deadline(self, deadline_s: float) -> None:
        """Give up once batches have been owed for ``deadline_s`` without an ack."""
        while self._fatal is None:
            now = time.monotonic()
            due = self._progress_at + deadline_s
            if self._unacked and now >= due:
                last = " ".join((self.last_error or "no answer yet").split())
                exc = CollectorUnavailable(
                    f"no collector accepted the batches for {deadline_s:g} s (last error: {last})"
                )
                self._fatal = exc
                self._fail_all(exc)
                return
            await asyncio.sleep(max(0.05, due - now) if self._unacked else deadline_s)

    def _fail_all(self, exc: WharfError) -> None:
        for p in list(self._unacked.values()):
            if not p.future.done():
                p.future.set_exception(exc)
        self._unacked.clear()

    def _backoff(self, attempt: int) -> float:
        low, high = self.backoff_s
        return random.uniform(0, min(high, low * 2 ** min(attempt, 16)))  # full jitter

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, wp.Connection]:
        async with asyncio.timeout(self.connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self.ssl_context, limit=_READ_CHUNK
            )
        conn = wp.Connection(wp.Role.CLIENT)
        try:
            writer.write(
                conn.send(
                    wp.Hello(
                        wp.PROTOCOL_VERSION,
                        self.producer_id,
                        self.token,
                        self.client_name,
                        wb.VERSIONS,
                    )
                )
            )
            while True:
                event = conn.next_event()
                if event is wp.NEED_DATA:
                    async with asyncio.timeout(self.connect_timeout_s):
                        data = await reader.read(_READ_CHUNK)
                    conn.receive_data(data)
                    continue
                if isinstance(event, wp.Error):
                    cause = event.to_error()
                    err = DeliveryError(
                        f"collector refused the connection: {event.code}: {event.message}"
                    )
                    err.retriable = cause.retriable  # a bad token is fatal; a full collector is not
                    raise err from cause
                assert isinstance(event, wp.Welcome)
                versions = tuple(v for v in event.batch_versions if v in wb.VERSIONS)
                if not versions:
                    err = DeliveryError(
                        "the collector takes batch versions "
                        f"{', '.join(map(str, event.batch_versions))}, this shipper builds "
                        f"{', '.join(map(str, wb.VERSIONS))}"
                    )
                    err.retriable = True  # another collector of the list may take them
                    raise err
                self.batch_versions = versions
                self.window = min(self.window, event.max_inflight)
                return reader, writer, conn
        except BaseException:
            writer.close()
            raise

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: wp.Connection
    ) -> None:
        gen = self._generation
        # Everything unacknowledged goes again, first and in order.
        for p in list(self._unacked.values()):
            if await self._fit(p):
                self._write(writer, conn, p, gen)
        loop = asyncio.get_running_loop()
        # Whichever loop ends first ends the connection, and its error says why: a read error,
        # a NACK asking for a resend, or a batch the protocol refused to frame.
        tasks = {
            loop.create_task(self._read_loop(reader, writer, conn)),
            loop.create_task(self._send_loop(writer, conn, gen)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _write(
        self, writer: asyncio.StreamWriter, conn: wp.Connection, p: _Pending, gen: int
    ) -> None:
        p.generation = gen
        p.sent_at = time.monotonic()
        try:
            data = conn.send(wp.Produce(p.correlation_id, p.topic, p.batch, p.key))
        except wp.LocalProtocolError as exc:
            # The batch cannot be framed for this collector (past the frame limit it announced):
            # resending cannot help, so it fails alone. The failed send left the connection in
            # ERROR, so the others go again on a new one.
            self._unacked.pop(p.correlation_id, None)
            if not p.future.done():
                err = DeliveryError(f"batch {p.correlation_id} cannot be sent: {exc}")
                err.__cause__ = exc
                p.future.set_exception(err)
            raise _Reconnect(f"connection unusable after a refused send: {exc}") from exc
        writer.write(data)

    async def _send_loop(self, writer: asyncio.StreamWriter, conn: wp.Connection, gen: int) -> None:
        while True:
            p = await self._queue.get()
            if p.correlation_id not in self._unacked or p.generation == gen:
                continue  # acked already, or resent on this connection at connect time
            if await self._fit(p):
                self._write(writer, conn, p, gen)
                await writer.drain()

    async def _fit(self, p: _Pending) -> bool:
        """Make ``p``'s batch one of the versions the collector takes (a conversion in a worker
        thread when it is not); ``False`` if it cannot be, its send then failed for good."""
        if wb.version_of(p.batch) in self.batch_versions:
            return True
        version = self.batch_version
        try:
            p.batch = await asyncio.to_thread(wb.convert, p.batch, version)
        except WharfError as exc:
            self._unacked.pop(p.correlation_id, None)
            if not p.future.done():
                err = DeliveryError(
                    f"batch {p.correlation_id} cannot be converted to version {version} "
                    f"for this collector: {exc}"
                )
                err.__cause__ = exc
                p.future.set_exception(err)
            return False
        return True

    async def _read_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: wp.Connection
    ) -> None:
        heartbeat = 10.0
        while True:
            event = conn.next_event()
            if event is wp.NEED_DATA:
                try:
                    async with asyncio.timeout(heartbeat):
                        data = await reader.read(_READ_CHUNK)
                except TimeoutError:
                    oldest = next(iter(self._unacked.values()), None)
                    if oldest and time.monotonic() - oldest.sent_at > self.ack_timeout_s:
                        raise TimeoutError(f"no ack for {self.ack_timeout_s:g} s") from None
                    writer.write(conn.send(wp.Ping()))
                    continue
                conn.receive_data(data)
                continue
            match event:
                case wp.Ack():
                    p = self._unacked.pop(event.correlation_id, None)
                    if p is not None and not p.future.done():
                        p.future.set_result(event)
                        self._failures = 0
                        self._progress_at = time.monotonic()
                case wp.Nack():
                    self._nacked(event)
                case wp.Ping():
                    writer.write(conn.send(wp.Pong()))
                case wp.Pong():
                    pass
                case wp.Error():
                    # Whatever the code, it ends this connection, not the batches: they are
                    # still owed and go again on the next one.
                    raise _Reconnect(
                        f"collector error {event.code}: {event.message}"
                    ) from event.to_error()
                case _:
                    raise UnexpectedFrame(f"unexpected {type(event).__name__}")

    def _nacked(self, nack: wp.Nack) -> None:
        p = self._unacked.get(nack.correlation_id)
        if p is None:
            return
        cause = nack.to_error()
        if cause.retriable:
            # Resend it and everything after it, in order, on a fresh connection: sending it
            # alone, later, could put it behind a newer batch of the same file, and the
            # collector would then take it for a duplicate.
            raise _Reconnect(
                f"batch {p.correlation_id} refused for now ({nack.code}: {nack.message})"
            ) from cause
        del self._unacked[nack.correlation_id]
        if not p.future.done():
            err = DeliveryError(f"collector refused batch: {nack.code}: {nack.message}")
            err.__cause__ = cause
            p.future.set_exception(err)
