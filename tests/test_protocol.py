"""The sans-I/O protocol core: whole, byte by byte, with trailing bytes, and against garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wharf import batch as wb
from wharf import protocol as wp
from wharf.record import Record

PID = bytes(range(16))
BATCH = wb.build([Record(ts=1, line="hello")], producer_id=PID)


def _pair() -> tuple[wp.Connection, wp.Connection]:
    """A client and a server past the handshake."""
    client, server = wp.Connection(wp.Role.CLIENT), wp.Connection(wp.Role.SERVER)
    server.receive_data(client.send(wp.Hello(wp.PROTOCOL_VERSION, PID, "tok", "test")))
    assert server.next_event() == wp.Hello(1, PID, "tok", "test")
    client.receive_data(server.send(wp.Welcome(1, "s", wp.MAX_FRAME, 8, 15.0)))
    assert isinstance(client.next_event(), wp.Welcome)
    assert client.state is server.state is wp.State.READY
    return client, server


CLIENT_EVENTS = [
    wp.Produce(7, "nginx", BATCH, "web-1"),
    wp.Produce(2**64 - 1, "t" * 64, BATCH),
    wp.Ping(),
    wp.Pong(),
]
SERVER_EVENTS = [
    wp.Ack(7, 3, 1000, 12),
    wp.Ack(8, 0, -1, 0, True),
    wp.Nack(9, "corrupt_batch", "checksum mismatch", False),
    wp.Ping(),
    wp.Error("store_error", "disk full", True),
]


def _drain(conn: wp.Connection) -> list[wp.Event]:
    out = []
    while (ev := conn.next_event()) is not wp.NEED_DATA:
        out.append(ev)
    return out


@pytest.mark.parametrize("chunk", [None, 1, 3, 1000])
def test_events_round_trip_whole_and_byte_by_byte(chunk: int | None) -> None:
    client, server = _pair()
    data = b"".join(client.send(e) for e in CLIENT_EVENTS)
    got: list[wp.Event] = []
    step = chunk or len(data)
    for i in range(0, len(data), step):
        server.receive_data(data[i : i + step])
        got += _drain(server)
    assert got == CLIENT_EVENTS
    data = b"".join(server.send(e) for e in SERVER_EVENTS)
    for i in range(0, len(data), step):
        client.receive_data(data[i : i + step])
    assert _drain(client) == SERVER_EVENTS


def test_trailing_partial_frame_waits_then_eof_inside_it_is_an_error() -> None:
    client, server = _pair()
    frame = client.send(wp.Ping())
    server.receive_data(frame + frame[:3])
    assert server.next_event() == wp.Ping()
    assert server.next_event() is wp.NEED_DATA
    assert server.mid_frame
    server.receive_data(b"")
    with pytest.raises(wp.ProtocolError, match="closed inside a frame header") as exc:
        server.next_event()
    assert exc.value.code == "truncated"


def test_clean_eof_between_frames() -> None:
    _, server = _pair()
    server.receive_data(b"")
    with pytest.raises(wp.ProtocolError) as exc:
        server.next_event()
    assert exc.value.code == "closed"


def test_oversize_frames_are_refused_from_the_length_prefix() -> None:
    server = wp.Connection(wp.Role.SERVER)
    server.receive_data(struct.pack(">IB", wp.HANDSHAKE_MAX_FRAME + 1, 1))
    with pytest.raises(wp.ProtocolError, match="outside") as exc:
        server.next_event()
    assert exc.value.code == "frame_too_large"
    _, ready = _pair()
    ready.receive_data(struct.pack(">IB", wp.MAX_FRAME + 1, 4))
    with pytest.raises(wp.ProtocolError, match="outside"):
        ready.next_event()


def test_frames_out_of_state_are_refused() -> None:
    client = wp.Connection(wp.Role.CLIENT)
    server = wp.Connection(wp.Role.SERVER)
    server.receive_data(client.send(wp.Produce(1, "t", BATCH)))
    with pytest.raises(wp.ProtocolError, match="PRODUCE frame not allowed in state handshake"):
        server.next_event()
    client2, _ = _pair()
    client2.receive_data(client2.send(wp.Produce(1, "t", BATCH)))
    with pytest.raises(wp.ProtocolError, match="not allowed"):
        client2.next_event()


def test_malformed_produce_lengths() -> None:
    _, server = _pair()
    payload = struct.pack(">QH", 1, 500) + b"abc"
    server.receive_data(struct.pack(">IB", len(payload) + 1, 4) + payload)
    with pytest.raises(wp.ProtocolError, match="malformed PRODUCE"):
        server.next_event()


@settings(max_examples=500)
@given(st.binary(max_size=300), st.booleans())
def test_garbage_raises_only_protocol_errors(data: bytes, handshaken: bool) -> None:
    server = _pair()[1] if handshaken else wp.Connection(wp.Role.SERVER)
    server.receive_data(data)
    server.receive_data(b"")
    with pytest.raises(wp.ProtocolError):
        for _ in range(1000):
            server.next_event()


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_after_valid_frames_still_only_protocol_errors(tail: bytes) -> None:
    client, server = _pair()
    server.receive_data(client.send(wp.Ping()) + tail)
    server.receive_data(b"")
    assert server.next_event() == wp.Ping()
    with pytest.raises(wp.ProtocolError):
        for _ in range(1000):
            server.next_event()
