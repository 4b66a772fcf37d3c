"""The Fluent forward protocol (v1, with the v1.5 additions senders use), server side, without
I/O: bytes in, messages out; a message in, records out (like h11, and ``wharf.protocol``).
``collector.inputs.forward`` is the asyncio around it.

The wire is a TCP (or TLS) stream of msgpack values, one message after another, with no
framing of its own. A message is an array; its second element tells the mode::

    Message                  [tag, time, record, option?]
    Forward                  [tag, [[time, record], ...], option?]
    PackedForward            [tag, bin: [time, record] values back to back, option?]
    CompressedPackedForward  PackedForward with option compressed="gzip": the bin is gzip,
                             possibly several members back to back (fluentd appends them)

``time`` is an EventTime (msgpack ext type 0: u32 seconds, u32 nanoseconds, big-endian), an
integer or a float of seconds, or (v1.5) ``[time, metadata]``; 0 or nil means "when it
arrived". ``option`` may hold ``chunk`` (the sender wants ``{"ack": chunk}`` once the events
are stored), ``size``, ``compressed`` ("gzip", or "text": not compressed) and v1.5's
``fluent_signal`` (0 logs, 1 metrics, 2 traces). A nil between messages is a heartbeat.

The shared-key handshake, when the input has a ``shared_key``, comes before any event::

    server                                             client
    ["HELO", {nonce, auth: "", keepalive: true}]  →
                                                   ←  ["PING", hostname, salt, digest, user, pw]
    ["PONG", true, "", self_hostname, digest']    →   (or false and the reason; then closed)

``digest = sha512_hex(salt + hostname + nonce + shared_key)`` shows the client knows the key,
``digest' = sha512_hex(salt + self_hostname + nonce + shared_key)`` that the server does.
Username/password authentication is not offered (``auth`` is empty; the client sends "", "").
PING's strings are taken as raw bytes (Fluent Bit's salt is 16 random bytes in a msgpack str),
so the handshake is decoded apart from the events, whose strings are text.

Decoding uses msgpack's streaming ``Unpacker`` (C): msgspec, used elsewhere, has no incremental
decoder and cannot split a stream of concatenated values, which is what both the connection
and PackedForward entries are. Limits, all per message:

- the unpacker is fed slices of ``FEED_BYTES``, so its buffer holds at most one unfinished
  message plus a slice;
- a message whose first bytes announce more than ``max_message_bytes`` (the array header, the
  tag, and the header of the second element: the entries bin, array or the record map) is
  refused at once (``FrameTooLarge``), and so is one whose bytes grow past it, or whose gzip
  entries decompress past it (a gzip bomb stops there);
- before the handshake the limit is ``PING_MAX_BYTES``;
- nesting: msgpack's own stack limit; inside a record, values nested deeper than
  ``MAX_DEPTH`` make the event malformed.

Whatever does not decode, or is not a forward message, is a ``ProtocolError``
(``BadFrame``...): the stream cannot be trusted after it, so the connection ends. An event
whose own shape is wrong (a record that is not a map, a time of another type) is skipped and
counted; the rest of its message is kept (``Decoded.malformed``).

Records (``decode_events``):

- ``line``: the first of the record's ``log``, ``message``, ``msg`` that is a string (one
  trailing newline removed), taken out of the fields; no such key: the record as JSON; a
  record that is a string and not a map (what Python's ``fluent.handler`` sends without its
  ``FluentRecordFormatter``) is the line itself;
- ``host``: the record's ``host`` or ``hostname`` (a non-empty string, taken out of the
  fields), else the handshake's client hostname, else the peer's address (given by the caller);
- ``source``: the tag; the tag is also the field ``tag`` unless the record has its own;
- ``fields``: the record's other keys as they came (bin values as text, UTF-8 with
  replacement; EventTime and msgpack timestamps as integer nanoseconds; other extension types
  as ``{"ext": code, "data": hex}``);
- ``level``: from the fields (``level``, ``severity``, ``levelname``... see
  ``parsers.levels``); ``ts``: the event's time.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import msgpack
import msgspec

from parsers.levels import level_from_fields
from wharf.errors import BadFrame, FrameTooLarge, ProtocolError, UnexpectedFrame
from wharf.record import Record

__all__ = [
    "FEED_BYTES",
    "MAX_DEPTH",
    "PING_MAX_BYTES",
    "Decoded",
    "Decoder",
    "EventTime",
    "Events",
    "Handshake",
    "Ping",
    "ack",
    "decode_events",
    "gunzip",
]

# Slices the unpacker is fed: its buffer holds one unfinished message plus at most this.
FEED_BYTES: Final = 64 << 10
# The largest PING (hostname up to 255 bytes, a salt, two 128-character digests, a user
# name): a peer that has not authenticated can make us hold no more than this.
PING_MAX_BYTES: Final = 4096
# Bytes of a message's start read for what it announces: the array header, a tag of up to
# ~50 bytes, the second element's header. Longer tags are only caught as the message grows.
HEAD_BYTES: Final = 64
# Records nested deeper than this are not log records (msgpack itself allows 1024 levels,
# which would overrun Python's recursion limit when the record is converted or encoded).
MAX_DEPTH: Final = 32
MESSAGE_KEYS: Final = ("log", "message", "msg")
HOST_KEYS: Final = ("host", "hostname")
EVENT_TIME_EXT: Final = 0
_NS: Final = 1_000_000_000
# The last second whose nanoseconds fit in a signed 64-bit ts (year 2262).
_MAX_SECONDS: Final = (2**63 - 1) // _NS


class EventTime(NamedTuple):
    """msgpack extension type 0: a time with nanoseconds."""

    seconds: int
    nanoseconds: int

    @property
    def ns(self) -> int:
        """Nanoseconds since the epoch."""
        return self.seconds * _NS + self.nanoseconds


_EVENT_TIME: Final = struct.Struct(">II")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EVENT_TIME_EXT and len(data) == _EVENT_TIME.size:
        return EventTime(*_EVENT_TIME.unpack(data))
    return msgpack.ExtType(code, data)


def _unpacker(limit: int, *, raw: bool) -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=raw,
        unicode_errors="replace",
        ext_hook=_ext_hook,
        # A buffer of one message plus one slice; no value longer than a message. Map keys
        # stay strings (strict_map_key): integer keys of a crafted map could all collide.
        max_buffer_size=limit + FEED_BYTES,
        max_str_len=limit,
        max_bin_len=limit,
        max_array_len=limit,
        max_map_len=limit // 2,
        max_ext_len=limit,
    )


@dataclass(frozen=True, slots=True)
class Ping:
    """The client's answer to HELO (its strings as sent: raw bytes)."""

    hostname: bytes
    salt: bytes
    digest: bytes
    username: bytes
    password: bytes

    @property
    def client(self) -> str:
        """The hostname the client gives, as text."""
        return self.hostname.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Events:
    """One event-carrying message, its entries not decoded yet (``decode_events``)."""

    tag: str
    mode: str  # Message, Forward, PackedForward or CompressedPackedForward
    entries: Any  # Message: (time, record); Forward: the list; packed: the bytes
    chunk: str | None  # the ack the sender waits for, if it does
    signal: int  # fluent_signal: 0 logs, 1 metrics, 2 traces
    size: int  # bytes of the message on the wire


class Decoder:
    """A connection's incoming bytes, ``feed()`` as they come, as messages (``next_message``).

    With ``handshake``, the first message must be a PING (``Ping``) and may be at most
    ``PING_MAX_BYTES``; the caller checks it (``Handshake.check``). After an error every call
    raises it again: the connection is done.
    """

    def __init__(self, max_message_bytes: int, *, handshake: bool = False) -> None:
        self.limit = max_message_bytes
        self.handshaking = handshake
        # PING's strings are raw bytes (see the module docstring); events' are text.
        self._unpacker = (
            _unpacker(PING_MAX_BYTES, raw=True)
            if handshake
            else _unpacker(max_message_bytes, raw=False)
        )
        self._backlog: deque[memoryview] = deque()  # fed, not yet given to the unpacker
        self._given = 0  # bytes given to the unpacker
        self._last = memoryview(b"")  # the slice given last, which starts at _last_at
        self._last_at = 0
        self._at = 0  # where the unfinished message starts (the unpacker's position)
        self._head = b""  # its first HEAD_BYTES (as far as they have come)
        self._head_at = -1  # the message _head belongs to
        self._handshake_bytes = bytearray()  # what the handshake unpacker was given
        self._error: ProtocolError | None = None

    def __repr__(self) -> str:
        state = "handshake" if self.handshaking else "events"
        return f"<Decoder {state} pending={self.pending} backlog={self.backlog}>"

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message (0 between messages)."""
        return self._given - self._at + self.backlog

    @property
    def backlog(self) -> int:
        """Bytes fed and not looked at yet."""
        return sum(len(v) for v in self._backlog)

    def feed(self, data: bytes) -> None:
        """More bytes from the peer (kept until ``next_message`` gets to them)."""
        if data:
            self._backlog.append(memoryview(data))

    def next_message(self) -> Ping | Events | None:
        """The next complete message, or ``None`` until more bytes are fed. Raises a
        ``ProtocolError`` for bytes that are not the forward protocol or break a limit."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _next(self) -> Ping | Events | None:
        while True:
            try:
                obj = next(self._unpacker, _NEED)
            except (ValueError, msgpack.UnpackException) as exc:
                if "exceeds max_" in str(exc):  # an array or map header past the limit
                    limit = PING_MAX_BYTES if self.handshaking else self.limit
                    raise FrameTooLarge(
                        f"a message announces a value past the limit of {limit}: {exc}"
                    ) from exc
                raise BadFrame(f"not a msgpack value: {_why(exc)}") from exc
            if obj is _NEED:
                self._check_unfinished()
                if not self._backlog:
                    return None
                self._give()
                continue
            end = self._unpacker.tell()
            size, self._at = end - self._at, end
            limit = PING_MAX_BYTES if self.handshaking else self.limit
            if size > limit:  # it ended within the slice that took it past the limit
                raise FrameTooLarge(f"a message of {size} bytes is past the limit of {limit}")
            if obj is None:  # a heartbeat
                continue
            if self.handshaking:
                return self._ping(obj)
            return _message(obj, size)

    def _give(self) -> None:
        """Hand the unpacker the next slice of what was fed."""
        view = self._backlog.popleft()
        piece, rest = view[:FEED_BYTES], view[FEED_BYTES:]
        if rest:
            self._backlog.appendleft(rest)
        try:
            self._unpacker.feed(piece)
        except msgpack.BufferFull as exc:  # cannot happen: a larger message was refused before
            raise FrameTooLarge(f"a message grows past {self.limit} bytes") from exc
        if self.handshaking:
            self._handshake_bytes += piece
        self._last, self._last_at = piece, self._given
        self._given += len(piece)

    def _check_unfinished(self) -> None:
        """Every whole message given is out: check what the unfinished one announces and how
        far it has grown. (It began in the last slice, or this was checked when it did.)"""
        if self._head_at != self._at:  # a new one: its first bytes are in the last slice
            self._head_at, self._head = self._at, b""
        if len(self._head) < HEAD_BYTES:
            at = self._at + len(self._head) - self._last_at
            if at >= 0:
                self._head += bytes(self._last[at : at + HEAD_BYTES - len(self._head)])
        limit = PING_MAX_BYTES if self.handshaking else self.limit
        # Before the handshake everything counts (heartbeats too): nothing else is taken.
        unfinished = self._given - (0 if self.handshaking else self._at)
        if unfinished > limit:
            raise FrameTooLarge(f"a message grows past {limit} bytes without ending")
        announced = _announced(self._head)
        if announced > limit:
            raise FrameTooLarge(
                f"a message announces at least {announced} bytes, past the limit of {limit}"
            )

    def _ping(self, obj: Any) -> Ping:
        if type(obj) is not list or len(obj) != 6 or obj[0] != b"PING":
            raise UnexpectedFrame(
                "this input needs the shared-key handshake first: expected "
                f"['PING', hostname, salt, digest, username, password], got {_kind(obj)}"
            )
        _, hostname, salt, digest, username, password = obj
        username = b"" if username is None else username
        password = b"" if password is None else password
        if not all(type(v) is bytes for v in (hostname, salt, digest, username, password)):
            raise BadFrame("every element of PING after the first must be a string")
        # Events follow with text strings: what came after the PING goes to a new unpacker.
        rest = bytes(self._handshake_bytes[self._unpacker.tell() :])
        self.handshaking = False
        self._handshake_bytes = bytearray()
        self._unpacker = _unpacker(self.limit, raw=False)
        self._given = self._at = self._last_at = 0
        self._last = memoryview(b"")
        self._head, self._head_at = b"", -1
        if rest:
            self._backlog.appendleft(memoryview(rest))
        return Ping(hostname, salt, digest, username, password)


_NEED: Final = object()


def _why(exc: Exception) -> str:
    """msgpack's error text (some of its errors have none: then their name)."""
    text = str(exc)
    return (
        text
        if text
        else {msgpack.FormatError: "invalid type byte"}.get(type(exc), type(exc).__name__)
    )


_KINDS: Final = {bool: "a boolean", int: "an integer", float: "a float", dict: "a map"}


def _kind(value: Any) -> str:
    """What a value is, for an error message."""
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, str):
        return f"a string of {len(value)}"
    if isinstance(value, bytes):
        return f"a binary of {len(value)} bytes"
    if value is None:
        return "nil"
    return _KINDS.get(type(value), "an extension value")


def _message(obj: Any, size: int) -> Events:
    if type(obj) is not list or not obj:
        raise BadFrame(f"a forward message is an array [tag, ...], got {_kind(obj)}")
    tag = obj[0]
    if type(tag) is not str:
        raise BadFrame(f"a forward message starts with its tag, a string; got {_kind(tag)}")
    n = len(obj)
    second = obj[1] if n > 1 else None
    entries: Any
    if type(second) is bytes and n in (2, 3):
        mode, entries, at = "PackedForward", second, 2
    elif type(second) is list and n in (2, 3) and (not second or type(second[0]) is list):
        mode, entries, at = "Forward", second, 2
    elif type(second) is str:
        raise BadFrame(
            f"message for tag {tag!r} has a string where the time or the entries go: "
            "PackedForward entries must be a msgpack bin (the old raw str form is not supported)"
        )
    elif n in (3, 4):
        mode, entries, at = "Message", (second, obj[2]), 3
    else:
        raise BadFrame(
            f"message for tag {tag!r} is neither Message [tag, time, record, option?], "
            f"Forward [tag, entries, option?] nor PackedForward [tag, bin, option?]: an array "
            f"of {n} whose second element is {_kind(second)}"
        )
    option = obj[at] if n > at else None
    chunk: str | None = None
    signal = 0
    if option is not None:
        if type(option) is not dict:
            raise BadFrame(f"the option of a message for tag {tag!r} is {_kind(option)}, not a map")
        chunk = option.get("chunk")
        if chunk is not None and type(chunk) is not str:
            raise BadFrame(f"option chunk is {_kind(chunk)}, not a string (tag {tag!r})")
        compressed = option.get("compressed")
        if compressed == "gzip":
            if mode != "PackedForward":
                raise BadFrame(f"compressed=gzip on a {mode} message (tag {tag!r})")
            mode = "CompressedPackedForward"
        elif compressed not in (None, "text"):
            raise BadFrame(f"option compressed={compressed!r} is not gzip or text (tag {tag!r})")
        raw_signal = option.get("fluent_signal", 0)
        if type(raw_signal) is str and raw_signal.isascii() and raw_signal.isdigit():
            raw_signal = int(raw_signal)  # Envoy's fluentd tracer sends "2"
        if type(raw_signal) is not int:
            raise BadFrame(f"option fluent_signal={raw_signal!r} is not a number (tag {tag!r})")
        signal = raw_signal
    return Events(tag, mode, entries, chunk, signal, size)


# -- what a message announces --------------------------------------------------------------

# Header byte -> (bytes of its length field, bytes per counted unit, bytes beyond the units).
# Units: bytes of a str/bin/ext payload, elements of an array (each at least one byte), pairs
# of a map (two bytes). A length field of 0 bytes: a fixed-size value.
_HEADERS: Final[dict[int, tuple[int, int, int]]] = {
    0xC4: (1, 1, 0), 0xC5: (2, 1, 0), 0xC6: (4, 1, 0),  # bin 8/16/32
    0xC7: (1, 1, 1), 0xC8: (2, 1, 1), 0xC9: (4, 1, 1),  # ext 8/16/32 (+ the type byte)
    0xCA: (0, 0, 4), 0xCB: (0, 0, 8),  # float 32/64
    0xCC: (0, 0, 1), 0xCD: (0, 0, 2), 0xCE: (0, 0, 4), 0xCF: (0, 0, 8),  # uint
    0xD0: (0, 0, 1), 0xD1: (0, 0, 2), 0xD2: (0, 0, 4), 0xD3: (0, 0, 8),  # int
    0xD4: (0, 0, 2), 0xD5: (0, 0, 3), 0xD6: (0, 0, 5), 0xD7: (0, 0, 9), 0xD8: (0, 0, 17),
    0xD9: (1, 1, 0), 0xDA: (2, 1, 0), 0xDB: (4, 1, 0),  # str 8/16/32
    0xDC: (2, 1, 0), 0xDD: (4, 1, 0),  # array 16/32
    0xDE: (2, 2, 0), 0xDF: (4, 2, 0),  # map 16/32
}  # fmt: skip
_CONTAINERS: Final = frozenset({0xDC, 0xDD, 0xDE, 0xDF})


def _header(buf: bytes, pos: int) -> tuple[int, int, bool] | None:
    """The msgpack value starting at ``pos``: (its header's bytes, the fewest bytes that must
    follow the header, whether it is an array or map), or ``None`` if ``buf`` ends inside the
    header."""
    if pos >= len(buf):
        return None
    b = buf[pos]
    if b <= 0x7F or b >= 0xE0 or 0xC0 <= b <= 0xC3:
        return 1, 0, False  # fixint, nil, (never used), false, true
    if b <= 0x8F:
        return 1, 2 * (b & 0x0F), True  # fixmap
    if b <= 0x9F:
        return 1, b & 0x0F, True  # fixarray
    if b <= 0xBF:
        return 1, b & 0x1F, False  # fixstr
    size, per, extra = _HEADERS[b]
    if pos + 1 + size > len(buf):
        return None
    count = int.from_bytes(buf[pos + 1 : pos + 1 + size], "big") if size else 0
    return 1 + size, count * per + extra, b in _CONTAINERS


def _announced(head: bytes) -> int:
    """The fewest bytes a message starting with ``head`` can have, from the headers in it:
    the top value's and, for an array, those of its first two elements (tag and entries)."""
    top = _header(head, 0)
    if top is None:
        return 0
    size, follows, _ = top
    if not (0x90 <= head[0] <= 0x9F or head[0] in (0xDC, 0xDD)):  # not an array
        return size + follows
    total, pos = size + follows, size  # every element takes at least a byte
    for _ in range(min(follows, 2)):
        element = _header(head, pos)
        if element is None:
            break
        esize, efollows, econtainer = element
        total += esize + efollows - 1
        if econtainer:  # its own size is not known: the next element cannot be found
            break
        pos += esize + efollows
    return total


# -- events → records ------------------------------------------------------------------------


@dataclass(slots=True)
class Decoded:
    """A message's records, and how many of its events were skipped (the first one's why)."""

    records: list[Record]
    malformed: int = 0
    problem: str | None = None


class _Skip(Exception):
    """An event whose shape is wrong (the message is fine)."""


def decode_events(events: Events, *, now_ns: int, host: str, max_bytes: int) -> Decoded:
    """The records of one message: ``now_ns`` for events without a time, ``host`` for records
    without their own (the handshake's client hostname or the peer's address). Raises a
    ``ProtocolError`` when packed entries do not decode or decompress past ``max_bytes``."""
    out = Decoded([])
    tag = events.tag
    pairs: Any
    if events.mode == "Message":
        pairs = (events.entries,)
    elif events.mode == "Forward":
        pairs = events.entries
    else:
        data = events.entries
        if events.mode == "CompressedPackedForward":
            data = gunzip(data, max_bytes)
        pairs = _packed(data, max_bytes)
    for i, pair in enumerate(pairs):
        try:
            if type(pair) is tuple or (type(pair) is list and len(pair) == 2):
                time, record = pair
            else:
                raise _Skip(f"an entry is {_kind(pair)}, not [time, record]")
            out.records.append(_record(tag, time, record, now_ns, host))
        except _Skip as exc:
            out.malformed += 1
            if out.problem is None:
                out.problem = f"event {i} of a {events.mode} message for tag {tag!r}: {exc}"
    return out


def _packed(data: bytes, max_bytes: int) -> list[Any]:
    """The [time, record] values of a PackedForward bin."""
    unpacker = _unpacker(max(max_bytes, len(data)), raw=False)
    unpacker.feed(data)
    entries: list[Any] = []
    end = 0  # where the last whole value ended (tell() moves into an unfinished one too)
    try:
        for entry in unpacker:
            entries.append(entry)
            end = unpacker.tell()
    except (ValueError, msgpack.UnpackException) as exc:
        raise BadFrame(f"PackedForward entries are not msgpack: {_why(exc)}") from exc
    if end != len(data):
        raise BadFrame(
            f"PackedForward entries end inside an event ({len(data) - end} bytes left over)"
        )
    return entries


def gunzip(data: bytes, limit: int) -> bytes:
    """``data`` decompressed: one or more gzip members back to back. Raises ``FrameTooLarge``
    as soon as the output would pass ``limit`` (a gzip bomb is stopped there), ``BadFrame``
    for what is not gzip or ends inside a member."""
    out: list[bytes] = []
    total = 0
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            todo = rest
            while True:
                piece = inflater.decompress(todo, limit - total + 1)
                total += len(piece)
                if total > limit:
                    raise FrameTooLarge(f"gzip entries decompress past the limit of {limit} bytes")
                out.append(piece)
                if inflater.eof:
                    break
                todo = inflater.unconsumed_tail
                if not todo:
                    raise BadFrame("gzip entries end inside a member")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise BadFrame(f"entries marked gzip are not gzip: {exc}") from exc
    return b"".join(out)


def _record(tag: str, time: Any, record: Any, now_ns: int, host: str) -> Record:
    if type(record) is str:  # Python's logging handler without FluentRecordFormatter sends one
        record = {"message": record}
    elif type(record) is not dict:
        raise _Skip(f"the record is {_kind(record)}, not a map")
    ts = _ts(time, now_ns)
    fields: dict[str, Any] = {}
    for key, value in record.items():
        if type(key) is not str:
            key = key.decode("utf-8", "replace")  # noqa: PLW2901 (a bin key: strict_map_key)
        fields[key] = value if type(value) is str else _plain(value, 1)
    line: str | None = None
    for key in MESSAGE_KEYS:
        value = fields.get(key)
        if type(value) is str:
            line = fields.pop(key)
            if line.endswith("\n"):
                line = line[:-2] if line.endswith("\r\n") else line[:-1]
            break
    if line is None:
        line = _json.encode(fields).decode()
    for key in HOST_KEYS:
        value = fields.get(key)
        if type(value) is str and value:
            host = fields.pop(key)
            break
    fields.setdefault("tag", tag)
    return Record(
        ts=ts, line=line, host=host, source=tag, fields=fields, level=level_from_fields(fields)
    )


_json: Final = msgspec.json.Encoder()


def _ts(time: Any, now_ns: int) -> int:
    kind = type(time)
    if kind is EventTime:
        if time.nanoseconds >= _NS:
            raise _Skip(f"EventTime nanoseconds {time.nanoseconds} are not below 10^9")
        return int(time.ns)
    if kind is int:
        if time == 0:
            return now_ns
        if 0 < time <= _MAX_SECONDS:
            return int(time) * _NS
        raise _Skip(f"time {time} is not seconds since 1970 up to 2262")
    if kind is float:
        if time == 0:
            return now_ns
        if 0 < time <= _MAX_SECONDS and math.isfinite(time):
            return round(float(time) * _NS)
        raise _Skip(f"time {time} is not seconds since 1970 up to 2262")
    if time is None:
        return now_ns
    if kind is list and len(time) == 2 and type(time[0]) is not list:  # v1.5 [time, metadata]
        return _ts(time[0], now_ns)
    if kind is msgpack.Timestamp:
        return int(time.to_unix_nano())
    raise _Skip(f"the time is {_kind(time)}, not an EventTime or a number of seconds")


def _plain(value: Any, depth: int) -> Any:
    """A record value as the store keeps it (see the module docstring)."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is bytes:
        return value.decode("utf-8", "replace")
    if depth > MAX_DEPTH:
        raise _Skip(f"values nested deeper than {MAX_DEPTH} levels")
    if kind is list:
        return [_plain(v, depth + 1) for v in value]
    if kind is dict:
        return {
            (k if type(k) is str else k.decode("utf-8", "replace")): _plain(v, depth + 1)
            for k, v in value.items()
        }
    if kind is EventTime:
        return value.ns
    if kind is msgpack.Timestamp:
        return value.to_unix_nano()
    if kind is msgpack.ExtType:
        return {"ext": value.code, "data": value.data.hex()}
    raise _Skip(f"a value of type {kind.__name__}")  # the unpacker makes none other


# -- what the server sends -------------------------------------------------------------------


def ack(chunk: str) -> bytes:
    """The answer to a message whose option had ``chunk``: its events are stored."""
    return bytes(msgpack.packb({"ack": chunk}))


def _digest(*parts: bytes) -> bytes:
    h = hashlib.sha512()
    for part in parts:
        h.update(part)
    return h.hexdigest().encode()


class Handshake:
    """The server's side of one connection's shared-key handshake: ``helo()`` to send first,
    then ``check(ping)``. ``nonce`` is random per connection (16 bytes)."""

    def __init__(self, shared_key: str, self_hostname: str, nonce: bytes) -> None:
        self.key = shared_key.encode()
        self.hostname = self_hostname
        self.nonce = nonce

    def helo(self) -> bytes:
        """The HELO message: the nonce, no user authentication, keepalive."""
        return bytes(msgpack.packb(["HELO", {"nonce": self.nonce, "auth": "", "keepalive": True}]))

    def check(self, ping: Ping) -> tuple[bytes, str | None]:
        """The PONG to send, and why the client is refused (``None``: it is authenticated)."""
        expected = _digest(ping.salt, ping.hostname, self.nonce, self.key)
        if not hmac.compare_digest(expected, ping.digest.lower()):
            reason = "shared_key mismatch"
            return self.refusal(reason), reason
        proof = _digest(ping.salt, self.hostname.encode(), self.nonce, self.key).decode()
        return bytes(msgpack.packb(["PONG", True, "", self.hostname, proof])), None

    def refusal(self, reason: str) -> bytes:
        """A PONG refusing the client, saying why (then the connection is closed)."""
        return bytes(msgpack.packb(["PONG", False, reason, self.hostname, ""]))
