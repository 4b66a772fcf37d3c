"""The native ingest protocol, sans I/O: bytes in, events out; events in, bytes out (like h11).

Frames::

    u32  length   bytes that follow (type + payload), big-endian
    u8   type     one of FrameType
    ...  payload  msgpack of the event, except PRODUCE (binary, so the batch is never copied
                  through a serializer):
                  u64 correlation id, u16 topic length, topic, u16 key length, key, batch bytes

A conversation::

    client                      server
    HELLO(version, token, id, batch versions) →
                              ← WELCOME(version, limits, batch versions)   or ERROR, then close
    PRODUCE(corr 1, batch)    →
    PRODUCE(corr 2, batch)    →                            (several in flight)
                              ← ACK(corr 1, partition, base offset)
                              ← NACK(corr 2, code, retriable)
    PING                      →
                              ← PONG

Batch versions are negotiated without a new protocol version: HELLO and WELCOME each end with
an optional list of the batch versions (``wharf.batch``) the sender can send or take. A peer
from before batch version 2 neither sends the list (it decodes as ``(1,)``) nor reads it (msgpack
arrays may carry more trailing elements than a struct knows; they are ignored), so a new shipper
learns from an old collector's WELCOME to send version 1, and an old shipper is told (1,).

Every frame has a size limit, enforced from its length prefix before its bytes are buffered.
Until the handshake completes the limit is small (``HANDSHAKE_MAX_FRAME``), so a peer that has
not authenticated can make the server hold at most a few KiB.

Errors are checked both ways, as h11 does. A peer that breaks the protocol gets a
``ProtocolError`` subclass (``BadFrame``, ``FrameTooLarge``...), whose ``code`` from
``wharf.errors.TABLE`` goes into the ERROR frame; the I/O layer sends it and closes the
connection. This end's own mistakes (a frame its role may not send in the current state, a frame
past a limit) raise ``LocalProtocolError`` before a byte is produced, so a bug here never
reaches the peer as garbage. NACK and ERROR frames carry a code and a retriable flag from the
same table: ``Nack.from_error`` / ``Error.from_error`` build them from an exception and
``to_error`` rebuilds the typed exception on the other side.

States (``Connection.state``, shown in ``repr``)::

    HANDSHAKE ──WELCOME sent / received──▶ READY
    HANDSHAKE, READY ──any error raised by send or next_event──▶ ERROR
    any but CLOSED ──ERROR frame sent, clean end of stream, close()──▶ CLOSED

In ERROR every call raises ``LocalProtocolError`` (the connection is dead; using it is a bug),
except sending the one ERROR frame that tells the peer why. In CLOSED ``next_event`` raises
``ConnectionClosed`` and ``send`` raises ``LocalProtocolError``. A received ERROR frame is an
event like any other and changes no state: its sender closes, and that end of stream is what
moves this side to CLOSED.
"""

from __future__ import annotations

import struct
from enum import Enum, IntEnum
from typing import Any, Final

import msgspec

from wharf import batch as wb
from wharf.errors import (
    BadFrame,
    ConnectionClosed,
    FrameTooLarge,
    LocalProtocolError,
    ProtocolError,
    TruncatedFrame,
    UnexpectedFrame,
    WharfError,
    error_from,
)

__all__ = [
    "HANDSHAKE_MAX_FRAME",
    "MAX_FRAME",
    "NEED_DATA",
    "PROTOCOL_VERSION",
    "Ack",
    "Connection",
    "Error",
    "Event",
    "FrameType",
    "Hello",
    "LocalProtocolError",
    "Nack",
    "NeedData",
    "Ping",
    "Pong",
    "Produce",
    "ProtocolError",
    "Role",
    "State",
    "Welcome",
]

PROTOCOL_VERSION: Final = 1

# Before authentication: HELLO is a token and an id; 64 KiB leaves room for long tokens.
HANDSHAKE_MAX_FRAME: Final = 64 * 1024
# After it: one batch plus the PRODUCE prefix (topic and key are at most 64 KiB each).
MAX_FRAME: Final = wb.MAX_BATCH_BYTES + 2 * 65_536 + 16

_LEN = struct.Struct(">IB")  # length, type
_PRODUCE = struct.Struct(">QH")  # correlation id, topic length
_KEY = struct.Struct(">H")
_MAX_U16: Final = 2**16 - 1
_MAX_U64: Final = 2**64 - 1


class FrameType(IntEnum):
    """The type byte of a frame."""

    HELLO = 1
    WELCOME = 2
    ERROR = 3
    PRODUCE = 4
    ACK = 5
    NACK = 6
    PING = 7
    PONG = 8


class Hello(msgspec.Struct, frozen=True, array_like=True):
    """Client → server, first frame: who I am, my token, and the batch versions I can send."""

    version: int
    producer_id: bytes  # 16 bytes: the shipper's stable id, also in every batch header
    token: str = ""
    client: str = ""  # free text, e.g. "wharf-shipper/0.1 host=web-1"
    # Batch format versions this client can send (see ``wharf.batch``). A client from before
    # version 2 sends no such field: (1,) is what it means.
    batch_versions: tuple[int, ...] = (1,)


class Welcome(msgspec.Struct, frozen=True, array_like=True):
    """Server → client: accepted, with the limits to respect and the batch versions to use."""

    version: int
    server: str
    max_frame: int
    max_inflight: int
    heartbeat_s: float
    # Batch versions this server takes from this client: those of the HELLO it can read. A
    # server from before version 2 sends no such field: (1,) is what it means.
    batch_versions: tuple[int, ...] = (1,)


class Error(msgspec.Struct, frozen=True, array_like=True):
    """Either way: a fatal error; the sender closes the connection after it. ``code`` is one of
    ``wharf.errors.TABLE``."""

    code: str
    message: str
    retriable: bool = False

    @classmethod
    def from_error(cls, exc: WharfError) -> Error:
        """The ERROR frame reporting ``exc``: its code, message and retriable flag."""
        return cls(exc.code, str(exc), exc.retriable)

    def to_error(self) -> WharfError:
        """The typed exception this frame reports (see ``wharf.errors.error_from``)."""
        return error_from(self.code, self.message, retriable=self.retriable)


class Produce(msgspec.Struct, frozen=True):
    """Client → server: store this batch in ``topic``; ``key`` picks the partition (empty: the
    batch's first host)."""

    correlation_id: int
    topic: str
    batch: bytes
    key: str = ""


class Ack(msgspec.Struct, frozen=True, array_like=True):
    """Server → client: the batch with this correlation id is durable."""

    correlation_id: int
    partition: int
    base_offset: int  # -1 for a duplicate (stored before, not stored again)
    record_count: int
    duplicate: bool = False


class Nack(msgspec.Struct, frozen=True, array_like=True):
    """Server → client: the batch was not stored. ``code`` is one of ``wharf.errors.TABLE``;
    ``retriable`` says if resending can help."""

    correlation_id: int
    code: str
    message: str
    retriable: bool

    @classmethod
    def from_error(cls, correlation_id: int, exc: WharfError) -> Nack:
        """The NACK refusing batch ``correlation_id`` because of ``exc``."""
        return cls(correlation_id, exc.code, str(exc), exc.retriable)

    def to_error(self) -> WharfError:
        """The typed exception this NACK reports (see ``wharf.errors.error_from``)."""
        return error_from(self.code, self.message, retriable=self.retriable)


class Ping(msgspec.Struct, frozen=True, array_like=True):
    """Either way: are you there? (Heartbeat.)"""


class Pong(msgspec.Struct, frozen=True, array_like=True):
    """Answer to a ping."""


Event = Hello | Welcome | Error | Produce | Ack | Nack | Ping | Pong

# Frames whose payload is msgpack (PRODUCE is framed by hand).
_TYPES: Final[dict[type, FrameType]] = {
    Hello: FrameType.HELLO,
    Welcome: FrameType.WELCOME,
    Error: FrameType.ERROR,
    Ack: FrameType.ACK,
    Nack: FrameType.NACK,
    Ping: FrameType.PING,
    Pong: FrameType.PONG,
}
_FRAME_OF: Final[dict[type, FrameType]] = {**_TYPES, Produce: FrameType.PRODUCE}
_DECODERS: Final[dict[FrameType, msgspec.msgpack.Decoder[Any]]] = {
    ft: msgspec.msgpack.Decoder(cls) for cls, ft in _TYPES.items()
}
_ENC = msgspec.msgpack.Encoder()


class Role(Enum):
    """Which end of the connection this object plays."""

    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    """Connection state, visible in ``repr`` (transitions in the module docstring)."""

    HANDSHAKE = "handshake"
    READY = "ready"
    ERROR = "error"
    CLOSED = "closed"


class NeedData(Enum):
    """``next_event`` needs more bytes."""

    NEED_DATA = "need-data"


NEED_DATA: Final = NeedData.NEED_DATA

_F = FrameType
# What each role may send in each state. A frame may be received exactly when the peer's role
# may send it, so this one table drives both the send and the receive checks and they cannot
# disagree. In ERROR only the ERROR frame that reports the failure may still go out.
_SENDS: Final[dict[tuple[Role, State], frozenset[FrameType]]] = {
    (Role.CLIENT, State.HANDSHAKE): frozenset({_F.HELLO, _F.ERROR}),
    (Role.CLIENT, State.READY): frozenset({_F.PRODUCE, _F.PING, _F.PONG, _F.ERROR}),
    (Role.SERVER, State.HANDSHAKE): frozenset({_F.WELCOME, _F.ERROR}),
    (Role.SERVER, State.READY): frozenset({_F.ACK, _F.NACK, _F.PING, _F.PONG, _F.ERROR}),
    (Role.CLIENT, State.ERROR): frozenset({_F.ERROR}),
    (Role.SERVER, State.ERROR): frozenset({_F.ERROR}),
}
_PEER: Final = {Role.CLIENT: Role.SERVER, Role.SERVER: Role.CLIENT}


def _encode_frame(ftype: FrameType, payload: bytes | list[bytes]) -> bytes:
    parts = payload if isinstance(payload, list) else [payload]
    size = 1 + sum(len(p) for p in parts)
    return b"".join([_LEN.pack(size, ftype), *parts])


class Connection:
    """One end of a native-protocol connection. Feed it bytes, take events; give it events,
    send the bytes it returns. It never touches a socket."""

    def __init__(self, role: Role, *, max_frame: int = MAX_FRAME) -> None:
        self.role = role
        self.state = State.HANDSHAKE
        self.max_frame = max_frame
        self._buf = bytearray()
        self._eof = False
        # Whether HELLO has gone by (sent, for a client; received, for a server): it comes once,
        # and a server welcomes only a peer that said hello.
        self._hello = False
        self._failure: WharfError | None = None

    def __repr__(self) -> str:
        failed = f" {self._failure.code}" if self._failure is not None else ""
        return (
            f"<Connection {self.role.value} {self.state.value}{failed} buffered={len(self._buf)}>"
        )

    @property
    def mid_frame(self) -> bool:
        """Whether part of a frame is buffered (the I/O layer times out stalled frames)."""
        return bool(self._buf)

    def _limit(self) -> int:
        return HANDSHAKE_MAX_FRAME if self.state is State.HANDSHAKE else self.max_frame

    def _fail(self, exc: WharfError) -> None:
        """Enter ERROR, remembering the first failure (later calls name it)."""
        if self.state is not State.CLOSED:
            self.state = State.ERROR
        if self._failure is None:
            self._failure = exc

    def _dead(self, what: str) -> LocalProtocolError:
        """The error for any call on a connection in ERROR, chained to the first failure."""
        why = self._failure if self._failure is not None else "state set to error"
        exc = LocalProtocolError(f"cannot {what}: the connection failed earlier ({why})")
        exc.__cause__ = self._failure
        return exc

    # -- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed its side."""
        if self.state is State.ERROR:
            raise self._dead("receive data")
        if self.state is State.CLOSED:
            return  # bytes arriving after the goodbye say nothing more
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """The next complete event, ``NEED_DATA``, or an error.

        Raises a ``ProtocolError`` subclass for garbage, an oversize frame, a frame not allowed
        in the current state, or the peer closing in the middle of a frame (the connection then
        enters ERROR); ``ConnectionClosed`` once the peer closed cleanly, and
        ``LocalProtocolError`` when called in ERROR.
        """
        if self.state is State.ERROR:
            raise self._dead("receive")
        if self.state is State.CLOSED:
            raise ConnectionClosed("connection is closed")
        try:
            event = self._next_event()
        except ConnectionClosed:
            self.state = State.CLOSED
            raise
        except ProtocolError as exc:
            self._fail(exc)
            raise
        return event

    def _next_event(self) -> Event | NeedData:
        buf = self._buf
        if len(buf) < _LEN.size:
            if self._eof:
                if buf:
                    raise TruncatedFrame(
                        f"connection closed inside a frame header ({len(buf)} bytes)"
                    )
                raise ConnectionClosed("connection closed by peer")
            return NEED_DATA
        size, ftype_raw = _LEN.unpack_from(buf)
        limit = self._limit()
        if size > limit or size < 1:
            raise FrameTooLarge(f"frame of {size} bytes outside 1..{limit}")
        try:
            ftype = FrameType(ftype_raw)
        except ValueError:
            raise BadFrame(f"unknown frame type {ftype_raw}") from None
        if ftype not in _SENDS.get((_PEER[self.role], self.state), ()):
            raise UnexpectedFrame(f"{ftype.name} frame not allowed in state {self.state.value}")
        if ftype is FrameType.HELLO and self._hello:
            raise UnexpectedFrame("second HELLO frame")
        end = 4 + size
        if len(buf) < end:
            if self._eof:
                raise TruncatedFrame(
                    f"connection closed inside a {ftype.name} frame ({len(buf)} of {end} bytes)"
                )
            return NEED_DATA
        payload = bytes(buf[5:end])
        del buf[:end]
        event = self._decode(ftype, payload)
        if isinstance(event, Hello):
            self._hello = True
        elif isinstance(event, Welcome):
            self.state = State.READY
            self.max_frame = min(self.max_frame, event.max_frame)
        return event

    def _decode(self, ftype: FrameType, payload: bytes) -> Event:
        if ftype is FrameType.PRODUCE:
            return _decode_produce(payload)
        try:
            event: Event = _DECODERS[ftype].decode(payload)
        except (msgspec.DecodeError, ValueError) as exc:
            raise BadFrame(f"malformed {ftype.name} frame: {exc}") from exc
        if isinstance(event, Hello) and len(event.producer_id) != 16:
            raise BadFrame("HELLO producer_id must be 16 bytes")
        if isinstance(event, Hello | Welcome) and not _batch_versions_ok(event.batch_versions):
            raise BadFrame(
                f"{ftype.name} batch_versions must list 1 to 255 versions in 1..255, "
                f"got {list(event.batch_versions)[:8]}"
            )
        return event

    # -- sending --------------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Bytes to write for ``event``.

        Sending WELCOME moves a server to READY; sending ERROR closes the connection. Raises
        ``LocalProtocolError`` (and enters ERROR) for an event this role may not send in this
        state or one the peer would refuse (past the frame limit, a field too long for its
        length prefix); nothing is produced then, so the byte stream stays intact.
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError(f"cannot send {type(event).__name__}: connection is closed")
        if self.state is State.ERROR and not isinstance(event, Error):
            raise self._dead(f"send {type(event).__name__}")
        try:
            data = self._frame(event)
        except LocalProtocolError as exc:
            self._fail(exc)
            raise
        if isinstance(event, Hello):
            self._hello = True
        elif isinstance(event, Welcome):
            self.state = State.READY
            self.max_frame = min(self.max_frame, event.max_frame)
        elif isinstance(event, Error):
            self.state = State.CLOSED
        return data

    def _frame(self, event: Event) -> bytes:
        ftype = _FRAME_OF.get(type(event))
        if ftype is None:
            raise LocalProtocolError(f"{type(event).__name__} is not a protocol event")
        if ftype not in _SENDS.get((self.role, self.state), ()):
            raise LocalProtocolError(
                f"a {self.role.value} may not send {ftype.name} in state {self.state.value}"
            )
        if isinstance(event, Hello) and self._hello:
            raise LocalProtocolError("HELLO was sent already")
        if isinstance(event, Welcome) and not self._hello:
            raise LocalProtocolError("WELCOME before the peer's HELLO")
        if isinstance(event, Hello) and len(event.producer_id) != 16:
            raise LocalProtocolError("HELLO producer_id must be 16 bytes")
        if isinstance(event, Hello | Welcome) and not _batch_versions_ok(event.batch_versions):
            raise LocalProtocolError(f"{ftype.name} batch_versions must list versions in 1..255")
        if isinstance(event, Produce):
            data = _encode_produce(event)
        else:
            try:
                data = _encode_frame(ftype, _ENC.encode(event))
            except (msgspec.EncodeError, TypeError, OverflowError) as exc:
                raise LocalProtocolError(f"cannot encode {ftype.name}: {exc}") from exc
        limit = self._limit()
        if len(data) - 4 > limit:
            raise LocalProtocolError(
                f"{ftype.name} frame of {len(data) - 4} bytes exceeds the limit of {limit}"
            )
        return data

    def close(self) -> None:
        """Mark the connection closed (after sending or receiving ERROR, or on I/O end)."""
        self.state = State.CLOSED


def _batch_versions_ok(versions: tuple[int, ...]) -> bool:
    """A list of batch versions a peer may announce: 1 to 255 versions, each a byte."""
    return 0 < len(versions) < 256 and all(0 < v < 256 for v in versions)


def _encode_produce(event: Produce) -> bytes:
    topic = event.topic.encode()
    key = event.key.encode()
    if not 0 <= event.correlation_id <= _MAX_U64:
        raise LocalProtocolError(f"correlation id {event.correlation_id} is not a u64")
    if len(topic) > _MAX_U16 or len(key) > _MAX_U16:
        raise LocalProtocolError(f"PRODUCE topic or key longer than {_MAX_U16} bytes")
    return _encode_frame(
        FrameType.PRODUCE,
        [
            _PRODUCE.pack(event.correlation_id, len(topic)),
            topic,
            _KEY.pack(len(key)),
            key,
            event.batch,
        ],
    )


def _decode_produce(payload: bytes) -> Produce:
    try:
        corr, tlen = _PRODUCE.unpack_from(payload)
        pos = _PRODUCE.size
        topic = payload[pos : pos + tlen].decode()
        pos += tlen
        (klen,) = _KEY.unpack_from(payload, pos)
        pos += _KEY.size
        key = payload[pos : pos + klen].decode()
        pos += klen
    except (struct.error, UnicodeDecodeError) as exc:
        raise BadFrame(f"malformed PRODUCE frame: {exc}") from exc
    if pos > len(payload) or len(topic.encode()) != tlen or len(key.encode()) != klen:
        raise BadFrame("malformed PRODUCE frame: lengths run past the frame")
    return Produce(corr, topic, payload[pos:], key)
