"""The syslog input (``[[inputs]] type = "syslog"``): RFC 5424 and RFC 3164 messages over UDP,
TCP and TLS, as rsyslog, syslog-ng, journald's forwarders, network devices and ``logger``
send them.

The protocol's work is pure and lives next door: ``syslog_framing`` splits a stream into
messages (RFC 6587 octet counting or LF/NUL/CRLF trailers, detected per connection, every
message bounded by ``max_message_bytes``) and ``syslog_records`` maps a message to a record
(the mapping is documented there: host, source, level, fields). This module is the thin I/O
around them:

- TCP and TLS: one task per connection (at most ``max_connections``; past it a connection is
  closed at once and counted as ``refused``) reads, frames, maps and ``Sink.put``s. ``put``
  waits while ``max_pending_bytes`` are taken, and the connection reads nothing meanwhile: the
  sender's socket fills up and it slows down (backpressure, bounded memory). Syslog has no
  acknowledgements: a record is durable ``linger_ms`` or so after it arrived, and what a crash
  catches in between is lost (forward and OTLP acknowledge; use them where that matters). A
  connection that stops inside a message for ``STALLED_S`` is closed (a connection idle
  between messages stays open, as senders keep theirs for days).
- UDP: a datagram is one message or several, one per line (``split_datagram``); the records
  are ``Sink.offer``ed, which never waits: when the store is behind they are dropped and
  counted (UDP senders cannot be slowed down).
- What is not syslog (no valid ``<PRI>`` and no RFC 3164 header) is counted as ``malformed``,
  logged with its sender (rate-limited) and skipped; an over-long message is counted as
  ``dropped``; an octet-counted stream that breaks its framing is counted as ``malformed`` and
  its connection closed (it cannot be resynchronized). Nothing a sender does ends the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any, Final

from collector.config import split_host_port
from collector.inputs.base import ConnectionSlots, InputContext, peer_ip, start_tls
from collector.inputs.syslog_framing import Dropped, Framer, FramingError, split_datagram
from collector.inputs.syslog_records import RecordMaker
from wharf.errors import WharfError
from wharf.record import Record

__all__ = ["SyslogInput"]

log = logging.getLogger(__name__)

# One read of a connection: a few hundred messages of a busy sender at a time. The stream
# reader holds at most twice this before it stops reading the socket, so max_connections
# connections hold at most 3 * READ_BYTES each, records not counted.
READ_BYTES: Final = 64 << 10
# Records are made and queued this many messages at a time: what a connection holds before
# the sink's budget (max_pending_bytes) has room for it stays small (a read of tiny messages
# makes thousands of records, each far larger in memory than on the wire).
PUT_MESSAGES: Final = 512
# A connection silent this long inside a message is closed: it holds a slot and up to
# max_message_bytes of buffer for a sender that is gone or hostile.
STALLED_S: Final = 60.0
# A TLS handshake must be done this soon after connecting.
TLS_HANDSHAKE_S: Final = 10.0
# Connections still reading when the input closes get this long to hand over what they read.
CLOSE_TIMEOUT_S: Final = 30.0
# The UDP socket's receive buffer: bursts wait there while the loop parses (the kernel caps it
# at net.core.rmem_max; what overflows it is lost before we see it).
UDP_RECEIVE_BUFFER: Final = 4 << 20
# How much of a bad message goes into the log line about it.
_SHOWN: Final = 60


class SyslogInput:
    """A syslog listener (UDP, TCP or TLS by ``protocol``), see the module docstring."""

    def __init__(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.counters = ctx.counters
        self.sink = ctx.sink
        self.limit = ctx.settings.message_limit
        self.maker = RecordMaker(ctx.label)
        self.slots = ConnectionSlots(ctx.settings, ctx.counters)
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> int:
        """Listen on ``listen`` (port 0: any free port); the bound port."""
        host, port = split_host_port(self.ctx.settings.listen_address, "listen")
        loop = asyncio.get_running_loop()
        if self.ctx.settings.transport == "udp":
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, port)
            )
            self._udp = transport
            sock = transport.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            return int(sock.getsockname()[1])
        # TLS starts inside each connection's task (not at the server): the handshake then
        # holds a connection slot, and one that fails is counted and logged with its sender.
        self._server = await asyncio.start_server(self._accept, host, port, limit=READ_BYTES)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, end every connection (what it read is handed to the sink)."""
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections.values()):
            writer.transport.close()  # its reader sees the end of the stream after its data
        tasks = set(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._server is not None:
            await self._server.wait_closed()

    # -- TCP and TLS ---------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.slots.take():  # counted as refused
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(lambda t: self._connections.pop(t, None))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_ip(writer.get_extra_info("peername"))
        framer = Framer(self.limit)
        try:
            if self.ctx.ssl_context is not None and not await start_tls(
                self.ctx, writer, peer, TLS_HANDSHAKE_S
            ):
                return
            while True:
                if framer.mid_message:
                    try:
                        async with asyncio.timeout(STALLED_S):
                            data = await reader.read(READ_BYTES)
                    except TimeoutError:
                        self.counters.add("malformed")
                        self.ctx.complain(
                            peer, f"no byte for {STALLED_S:g} s inside a message: closed"
                        )
                        return
                else:
                    data = await reader.read(READ_BYTES)
                if not data:
                    await self._store(framer.end(), peer)
                    return
                self.counters.add("bytes", len(data))
                messages = framer.feed(data)
                if messages:
                    await self._store(messages, peer)
                if framer.error is not None:
                    raise FramingError(framer.error)
        except FramingError as exc:
            self.counters.add("malformed")
            self.ctx.complain(peer, f"broken octet-counted framing: {exc}; connection closed")
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as exc:
            log.debug("input %s: connection from %s ended: %s", self.ctx.label, peer, exc)
        except WharfError as exc:  # the sink is closing: nothing more can be queued
            log.info("input %s: connection from %s ended: %s", self.ctx.label, peer, exc)
        finally:
            self.slots.give_back()
            writer.transport.abort()

    async def _store(self, messages: list[bytes | Dropped], peer: str) -> None:
        """Queue the records of ``messages``, waiting for room (the connection reads nothing
        meanwhile)."""
        for i in range(0, len(messages), PUT_MESSAGES):
            records = self._records(messages[i : i + PUT_MESSAGES], peer)
            if not records:
                continue
            try:
                await self.sink.put(records)
            except asyncio.CancelledError:  # close() gave up waiting for room
                self.counters.add("dropped", len(records))
                raise

    def _records(self, messages: Sequence[bytes | Dropped], peer: str) -> list[Record]:
        """The records of ``messages`` (counted as received); what is not syslog is counted
        as malformed, what was too long as dropped, each logged with ``peer``."""
        now = time.time_ns()
        make = self.maker.make
        records: list[Record] = []
        for message in messages:
            if isinstance(message, Dropped):
                self.counters.add("dropped")
                what = (
                    f"a message longer than max_message_bytes = {self.limit}"
                    if message.size is None
                    else f"a message of {message.size} bytes, over max_message_bytes = {self.limit}"
                )
                self.ctx.complain(peer, f"{what}: dropped")
                continue
            record = make(message, peer, now)
            if record is None:
                self.counters.add("malformed")
                self.ctx.complain(
                    peer, f"not a syslog message (no <PRI>): {message[:_SHOWN]!r}: skipped"
                )
                continue
            records.append(record)
        self.counters.add("received", len(records))
        return records

    # -- UDP -----------------------------------------------------------------------------------

    def datagram(self, data: bytes, address: Any) -> None:
        """One datagram from ``address``: its records offered to the sink (never waits)."""
        self.counters.add("bytes", len(data))
        peer = peer_ip(address)
        if len(data) > self.limit:
            self._records([Dropped(len(data))], peer)
            return
        records = self._records(split_datagram(data), peer)
        if records and not self.sink.offer(records):
            self.counters.add("dropped", len(records))
            self.ctx.complain(
                peer,
                f"{len(records)} records dropped: max_pending_bytes = "
                f"{self.ctx.settings.max_pending_bytes} are waiting for the store",
            )


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: SyslogInput) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("input %s: %s", self.owner.ctx.label, exc)
