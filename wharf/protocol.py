"""The native ingest protocol, sans I/O: bytes in, events out; events in, bytes out (like h11).

Frames::

    u32  length   bytes that follow (type + payload), big-endian
    u8   type     one of FrameType
    ...  payload  msgpack of the event, except PRODUCE (binary, so the batch is never copied
                  through a serializer):
                  u64 correlation id, u16 topic length, topic, u16 key length, key, batch bytes

A conversation::

    client                      server
    HELLO(version, token, id) →
                              ← WELCOME(version, limits)   or ERROR, then close
    PRODUCE(corr 1, batch)    →
    PRODUCE(corr 2, batch)    →                            (several in flight)
                              ← ACK(corr 1, partition, base offset)
                              ← NACK(corr 2, code, retriable)
    PING                      →
                              ← PONG

Every frame has a size limit, enforced from its length prefix before its bytes are buffered.
Until the handshake completes the limit is small (``HANDSHAKE_MAX_FRAME``), so a peer that has
not authenticated can make the server hold at most a few KiB. A peer that breaks the protocol
gets ``ProtocolError``; the I/O layer sends an ERROR frame and closes the connection.
"""

from __future__ import annotations

import struct
from enum import Enum, IntEnum
from typing import Any, Final

import msgspec

from wharf import batch as wb
from wharf.errors import RemoteError

PROTOCOL_VERSION: Final = 1

# Before authentication: HELLO is a token and an id; 64 KiB leaves room for long tokens.
HANDSHAKE_MAX_FRAME: Final = 64 * 1024
# After it: one batch plus the PRODUCE prefix (topic and key are at most 64 KiB each).
MAX_FRAME: Final = wb.MAX_BATCH_BYTES + 2 * 65_536 + 16

_LEN = struct.Struct(">IB")  # length, type
_PRODUCE = struct.Struct(">QH")  # correlation id, topic length
_KEY = struct.Struct(">H")


class ProtocolError(RemoteError):
    """The peer sent bytes that break the protocol. ``code`` goes into the ERROR frame."""

    def __init__(self, message: str, code: str = "protocol_error") -> None:
        super().__init__(message)
        self.code = code


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
    """Client → server, first frame: who I am and my token."""

    version: int
    producer_id: bytes  # 16 bytes: the shipper's stable id, also in every batch header
    token: str = ""
    client: str = ""  # free text, e.g. "wharf-shipper/0.1 host=web-1"


class Welcome(msgspec.Struct, frozen=True, array_like=True):
    """Server → client: accepted, with the limits to respect."""

    version: int
    server: str
    max_frame: int
    max_inflight: int
    heartbeat_s: float


class Error(msgspec.Struct, frozen=True, array_like=True):
    """Either way: a fatal error; the sender closes the connection after it."""

    code: str
    message: str
    retriable: bool = False


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
    """Server → client: the batch was not stored. ``retriable`` says if resending can help."""

    correlation_id: int
    code: str
    message: str
    retriable: bool


class Ping(msgspec.Struct, frozen=True, array_like=True):
    """Either way: are you there? (Heartbeat.)"""


class Pong(msgspec.Struct, frozen=True, array_like=True):
    """Answer to a ping."""


Event = Hello | Welcome | Error | Produce | Ack | Nack | Ping | Pong

_TYPES: Final[dict[type, FrameType]] = {
    Hello: FrameType.HELLO,
    Welcome: FrameType.WELCOME,
    Error: FrameType.ERROR,
    Ack: FrameType.ACK,
    Nack: FrameType.NACK,
    Ping: FrameType.PING,
    Pong: FrameType.PONG,
}
_DECODERS: Final[dict[FrameType, msgspec.msgpack.Decoder[Any]]] = {
    ft: msgspec.msgpack.Decoder(cls) for cls, ft in _TYPES.items()
}
_ENC = msgspec.msgpack.Encoder()


class Role(Enum):
    """Which end of the connection this object plays."""

    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    """Connection state, visible in ``repr``."""

    HANDSHAKE = "handshake"
    READY = "ready"
    CLOSED = "closed"


class NeedData(Enum):
    """``next_event`` needs more bytes."""

    NEED_DATA = "need-data"


NEED_DATA: Final = NeedData.NEED_DATA

# What each side may receive in each state.
_ALLOWED: Final = {
    (Role.SERVER, State.HANDSHAKE): {FrameType.HELLO},
    (Role.SERVER, State.READY): {
        FrameType.PRODUCE,
        FrameType.PING,
        FrameType.PONG,
        FrameType.ERROR,
    },
    (Role.CLIENT, State.HANDSHAKE): {FrameType.WELCOME, FrameType.ERROR},
    (Role.CLIENT, State.READY): {
        FrameType.ACK,
        FrameType.NACK,
        FrameType.PING,
        FrameType.PONG,
        FrameType.ERROR,
    },
}


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

    def __repr__(self) -> str:
        return f"<Connection {self.role.value} {self.state.value} buffered={len(self._buf)}>"

    @property
    def mid_frame(self) -> bool:
        """Whether part of a frame is buffered (the I/O layer times out stalled frames)."""
        return bool(self._buf)

    def _limit(self) -> int:
        return HANDSHAKE_MAX_FRAME if self.state is State.HANDSHAKE else self.max_frame

    # -- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed its side."""
        if self.state is State.CLOSED:
            return
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """The next complete event, ``NEED_DATA``, or ``ProtocolError``.

        Raises ``ProtocolError`` for garbage, an oversize frame, a frame not allowed in the
        current state, or the peer closing in the middle of a frame.
        """
        if self.state is State.CLOSED:
            raise ProtocolError("connection is closed", "closed")
        buf = self._buf
        if len(buf) < _LEN.size:
            if self._eof:
                if buf:
                    raise ProtocolError(
                        f"connection closed inside a frame header ({len(buf)} bytes)", "truncated"
                    )
                self.state = State.CLOSED
                raise ProtocolError("connection closed by peer", "closed")
            return NEED_DATA
        size, ftype_raw = _LEN.unpack_from(buf)
        limit = self._limit()
        if size > limit or size < 1:
            raise ProtocolError(f"frame of {size} bytes outside 1..{limit}", "frame_too_large")
        try:
            ftype = FrameType(ftype_raw)
        except ValueError:
            raise ProtocolError(f"unknown frame type {ftype_raw}", "bad_frame") from None
        if ftype not in _ALLOWED[(self.role, self.state)]:
            raise ProtocolError(
                f"{ftype.name} frame not allowed in state {self.state.value}", "unexpected_frame"
            )
        end = 4 + size
        if len(buf) < end:
            if self._eof:
                raise ProtocolError(
                    f"connection closed inside a {ftype.name} frame ({len(buf)} of {end} bytes)",
                    "truncated",
                )
            return NEED_DATA
        payload = bytes(buf[5:end])
        del buf[:end]
        event = self._decode(ftype, payload)
        if isinstance(event, Welcome):
            self.state = State.READY
            self.max_frame = min(self.max_frame, event.max_frame)
        return event

    def _decode(self, ftype: FrameType, payload: bytes) -> Event:
        if ftype is FrameType.PRODUCE:
            return _decode_produce(payload)
        try:
            event: Event = _DECODERS[ftype].decode(payload)
        except (msgspec.DecodeError, ValueError) as exc:
            raise ProtocolError(f"malformed {ftype.name} frame: {exc}", "bad_frame") from exc
        if isinstance(event, Hello) and len(event.producer_id) != 16:
            raise ProtocolError("HELLO producer_id must be 16 bytes", "bad_frame")
        return event

    # -- sending --------------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Bytes to write for ``event``. Sending WELCOME moves a server to READY."""
        if isinstance(event, Produce):
            topic = event.topic.encode()
            key = event.key.encode()
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
        data = _encode_frame(_TYPES[type(event)], _ENC.encode(event))
        if isinstance(event, Welcome):
            self.state = State.READY
            self.max_frame = min(self.max_frame, event.max_frame)
        return data

    def close(self) -> None:
        """Mark the connection closed (after sending or receiving ERROR, or on I/O end)."""
        self.state = State.CLOSED


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
        raise ProtocolError(f"malformed PRODUCE frame: {exc}", "bad_frame") from exc
    if pos > len(payload) or len(topic.encode()) != tlen or len(key.encode()) != klen:
        raise ProtocolError("malformed PRODUCE frame: lengths run past the frame", "bad_frame")
    return Produce(corr, topic, payload[pos:], key)
