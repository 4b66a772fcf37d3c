"""The Fluent forward input (``type = "forward"``): what Fluent Bit, Fluentd, Docker's fluentd
log driver and the fluent-logger libraries send, over TCP or TLS. The protocol, its limits and
what becomes of an event (``line``, ``host``, ``source``, ``fields``, ``level``, ``ts``) are in
``collector.inputs.fluent_wire``, the pure core this module drives.

Per connection, messages are handled in order: decoded (on a worker thread when large or
gzipped), then handed to the sink. A message whose option has ``chunk`` is appended at once
and ``{"ack": chunk}`` is written only once its records are durable; a sender that asks for no
ack gets its records appended after ``linger_ms`` with the others (what was received and not
yet durable when the collector dies is lost, as with syslog over TCP: ask for acks where that
matters — Fluent Bit's ``Require_ack_response``, fluentd's ``require_ack_response``).
While the sink has no room the connection reads nothing more (TCP backpressure); senders do
not pipeline acked chunks on one connection, so one in flight per connection is what they use.
Each connection buffers its unfinished message (at most ``max_message_bytes``); together they
may hold ``max_pending_bytes``, past which the connection whose message grows is closed.

With ``protocol = "tls"`` each connection's TLS handshake runs once it holds one of the
``max_connections`` slots; a failed one is counted as ``refused``. With ``shared_key`` each
connection then starts with the forward handshake (HELO, PING, PONG) and must finish it within
``HANDSHAKE_TIMEOUT_S``; a wrong key gets a PONG saying so and the connection
is closed (counted as ``refused``). The client's hostname from PING is the records' host when
they name none. A message that breaks the protocol or a limit closes its connection (counted:
``dropped`` when too large, else ``malformed``) and is logged with its sender, rate-limited.
Fluentd's UDP heartbeat and its JSON form of messages are not served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Final

from collector.config import split_host_port
from collector.inputs.base import ConnectionSlots, InputContext, peer_ip, start_tls
from collector.inputs.fluent_wire import (
    Decoded,
    Decoder,
    Events,
    Handshake,
    Ping,
    ack,
    decode_events,
)
from wharf.errors import (
    FrameTimeout,
    FrameTooLarge,
    HandshakeTimeout,
    IdleTimeout,
    ProtocolError,
    Unavailable,
    WharfError,
)
from wharf.record import Record

__all__ = ["ForwardInput"]

log = logging.getLogger(__name__)

READ_BYTES: Final = 256 << 10
# A TLS handshake, and a shared-key client's PING after our HELO, take a round trip or two.
HANDSHAKE_TIMEOUT_S: Final = 10.0
# A message that has begun must end this soon (slowloris): 16 MiB needs 280 KiB/s.
MESSAGE_TIMEOUT_S: Final = 60.0
# A connection that sends nothing at all for this long is closed; senders reconnect (Fluent
# Bit drops its own idle keepalive connections after 30 s, Docker's driver reconnects).
IDLE_TIMEOUT_S: Final = 600.0
# An ack, HELO or PONG the sender does not read within this long ends the connection.
SEND_TIMEOUT_S: Final = 30.0
# At close: how long connections may take to finish the message they are handling.
CLOSE_TIMEOUT_S: Final = 30.0
# A closed connection's TLS goodbye (or flush) waited for at most this long.
CLOSE_WAIT_S: Final = 5.0
# Messages past this size (and all gzipped ones) are decoded on a worker thread, not on the
# event loop the other connections share: decoding and mapping take ~10 µs per event
# (measured, access-log lines), so 64 KiB (~250 events) holds the loop ~2.5 ms at most.
INLINE_DECODE_BYTES: Final = 64 << 10
NONCE_BYTES: Final = 16


class ForwardInput:
    """A listener for the Fluent forward protocol (see the module docstring)."""

    def __init__(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.slots = ConnectionSlots(ctx.settings, ctx.counters)
        self.limit = ctx.settings.message_limit
        self.shared_key = ctx.settings.shared_key
        self.hostname = ctx.settings.self_hostname or socket.gethostname()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._closing = False
        # Bytes of messages begun and not ended, across connections (each buffers its own):
        # past max_pending_bytes the connection whose message grows is closed (see run()).
        self.unfinished = 0

    def __repr__(self) -> str:
        return f"<ForwardInput {self.ctx.label} connections={len(self._connections)}>"

    async def start(self) -> int:
        """Listen; the bound port."""
        host, port = split_host_port(self.ctx.settings.listen_address, "listen")
        # TLS is started per connection once it holds a slot (``_Connection.run``): handshakes
        # count against max_connections and a failed one is counted as refused.
        self._server = await asyncio.start_server(self._accept, host, port, limit=READ_BYTES)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting; connections finish the message in hand (its ack included), then
        close; one still busy after ``CLOSE_TIMEOUT_S`` is cut off."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections.values()):
            conn.stop()
        tasks = set(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or not self.slots.take():  # counted as refused
            writer.transport.abort()
            return
        conn = _Connection(self, reader, writer)
        # Our own task (not the one asyncio would make of a coroutine callback), so that
        # close() can cancel it without asyncio logging the cancellation as an error.
        conn.task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._connections[conn.task] = conn

    async def _serve(self, conn: _Connection) -> None:
        try:
            await conn.run()
        except Exception:  # a bug: this connection ends, the input goes on
            log.exception("input %s: connection from %s failed", self.ctx.label, conn.peer)
        finally:
            if conn.task is not None:
                del self._connections[conn.task]
            self.slots.give_back()
            conn.writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(conn.writer.wait_closed(), CLOSE_WAIT_S)


class _Crowded(Unavailable):
    """Messages begun and not ended on one input hold more than its max_pending_bytes."""


class _Connection:
    """One sender's connection: read, decode, store, ack."""

    def __init__(
        self,
        owner: ForwardInput,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.owner = owner
        self.ctx = owner.ctx
        self.reader = reader
        self.writer = writer
        self.task: asyncio.Task[None] | None = None  # set once it runs
        self.peer = peer_ip(writer.get_extra_info("peername"))
        self.host = self.peer  # records' host when they name none (PING's hostname once given)
        self.reading = False
        self.stopping = False
        self.held = 0  # this connection's share of ``owner.unfinished``

    def stop(self) -> None:
        """The input is closing: end now if waiting for bytes, else after this message."""
        self.stopping = True
        if self.reading and self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        counters = self.ctx.counters
        handshake = (
            Handshake(self.owner.shared_key, self.owner.hostname, os.urandom(NONCE_BYTES))
            if self.owner.shared_key
            else None
        )
        decoder = Decoder(self.owner.limit, handshake=handshake is not None)
        if self.ctx.ssl_context is not None and not await start_tls(
            self.ctx, self.writer, self.peer, HANDSHAKE_TIMEOUT_S
        ):
            return
        try:
            if handshake is not None:
                await self._send(handshake.helo())
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
            started: float | None = None  # when the unfinished message began
            late: type[ProtocolError]
            while not self.stopping:
                now = time.monotonic()
                if decoder.handshaking:
                    wait, late = deadline - now, HandshakeTimeout
                    what = f"no PING within {HANDSHAKE_TIMEOUT_S:g} s of HELO"
                elif decoder.pending:
                    started = now if started is None else started
                    wait, late = started + MESSAGE_TIMEOUT_S - now, FrameTimeout
                    what = f"a message begun and not ended within {MESSAGE_TIMEOUT_S:g} s"
                else:
                    started = None
                    wait, late = IDLE_TIMEOUT_S, IdleTimeout
                    what = f"nothing sent for {IDLE_TIMEOUT_S:g} s"
                data = await self._read(wait, late, what)
                if not data:
                    if decoder.pending:
                        counters.add("malformed")
                        self.ctx.complain(
                            self.peer,
                            f"connection closed inside a message ({decoder.pending} bytes)",
                        )
                    return
                counters.add("bytes", len(data))
                decoder.feed(data)
                if not await self._drain(decoder, handshake):
                    return
                self._hold(decoder.pending)
        except IdleTimeout:
            log.debug("input %s: %s idle, closed", self.ctx.label, self.peer)
        except _Crowded as exc:  # too much unfinished at once: the sender sends it again
            counters.add("refused")
            self.ctx.complain(self.peer, f"{exc} (connection closed)")
        except ProtocolError as exc:
            if decoder.handshaking and handshake is not None:  # not authenticated
                counters.add("refused")
                self.ctx.complain(self.peer, f"handshake refused: {exc}")
                await self._refuse(handshake, str(exc))
            else:
                counters.add("dropped" if isinstance(exc, FrameTooLarge) else "malformed")
                self.ctx.complain(self.peer, f"{exc} (connection closed)")
        except WharfError as exc:  # the sink could not store: no ack, the sender sends again
            log.warning(
                "input %s: closing %s's connection: its records were not stored: %s",
                self.ctx.label,
                self.peer,
                exc,
            )
        except (OSError, TimeoutError) as exc:  # reset, or an answer it does not read
            log.debug("input %s: %s's connection ended: %r", self.ctx.label, self.peer, exc)
        finally:
            self._hold(0)

    def _hold(self, pending: int) -> None:
        """Account this connection's unfinished message (``pending`` bytes buffered); raise
        ``_Crowded`` when the input's unfinished messages pass ``max_pending_bytes``:
        closing one sender (it sends again) bounds the memory where waiting could not (the
        messages do not say their size, so each waiting for room to grow could wait forever)."""
        owner = self.owner
        owner.unfinished += pending - self.held
        self.held = pending
        limit = self.ctx.settings.max_pending_bytes
        if pending and owner.unfinished > limit:
            raise _Crowded(
                f"messages begun and not ended on this input hold {owner.unfinished} bytes, "
                f"past max_pending_bytes ({limit})"
            )

    async def _read(self, wait: float, late: type[ProtocolError], what: str) -> bytes:
        self.reading = True
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                return await self.reader.read(READ_BYTES)
        except TimeoutError:
            raise late(what) from None
        finally:
            self.reading = False

    async def _drain(self, decoder: Decoder, handshake: Handshake | None) -> bool:
        """Handle every complete message fed so far; ``False``: the connection is done."""
        plain: list[Record] = []  # records of messages without chunk, handed over together
        try:
            while (message := decoder.next_message()) is not None:
                if isinstance(message, Ping):
                    assert handshake is not None
                    pong, refused = handshake.check(message)
                    await self._send(pong)
                    if refused is not None:
                        self.ctx.counters.add("refused")
                        self.ctx.complain(
                            self.peer, f"handshake refused: {refused} (client {message.client!r})"
                        )
                        return False
                    self.host = message.client or self.host
                    continue
                decoded = await self._decode(message)
                if decoded is None:
                    continue
                if message.chunk is None:
                    plain.extend(decoded.records)
                    continue
                if plain:
                    earlier, plain = plain, []
                    await self.ctx.sink.put(earlier)
                await self.ctx.sink.put(decoded.records, durable=True)
                await self._send(ack(message.chunk))
        finally:  # what came before a broken message is kept too
            if plain:
                earlier, plain = plain, []
                await self.ctx.sink.put(earlier)
        return True

    async def _decode(self, message: Events) -> Decoded | None:
        """The message's records, counted (``None``: it carries no logs)."""
        counters = self.ctx.counters
        if message.signal != 0:
            counters.add("dropped")
            self.ctx.complain(
                self.peer,
                f"fluent_signal {message.signal} (metrics or traces, tag {message.tag!r}) "
                "dropped: this input stores logs",
            )
            if message.chunk is not None:
                await self._send(ack(message.chunk))
            return None
        now = time.time_ns()
        if message.size > INLINE_DECODE_BYTES or message.mode == "CompressedPackedForward":
            decoded = await asyncio.get_running_loop().run_in_executor(
                None, _decode_events, message, now, self.host, self.owner.limit
            )
        else:
            decoded = decode_events(message, now_ns=now, host=self.host, max_bytes=self.owner.limit)
        counters.add("received", len(decoded.records))
        if decoded.malformed:
            counters.add("malformed", decoded.malformed)
            self.ctx.complain(self.peer, f"{decoded.malformed} events skipped: {decoded.problem}")
        return decoded

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await self.writer.drain()

    async def _refuse(self, handshake: Handshake, reason: str) -> None:
        """Tell a client that broke the handshake why, as fluentd does (best effort)."""
        with contextlib.suppress(OSError, TimeoutError):
            await self._send(handshake.refusal(reason))


def _decode_events(message: Events, now: int, host: str, limit: int) -> Decoded:
    return decode_events(message, now_ns=now, host=host, max_bytes=limit)
