"""The sans-I/O protocol core: whole, byte by byte, with trailing bytes, and against garbage;
what each side may send (local errors), and the ERROR state that follows any failure."""

from __future__ import annotations

import struct
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wharf import batch as wb
from wharf import protocol as wp
from wharf.errors import (
    TABLE,
    ConnectionClosed,
    CorruptBatch,
    InvalidTopicName,
    LocalError,
    ProtocolError,
    StoreError,
    UnrecognizedError,
    WharfError,
)
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


def _ready_client() -> wp.Connection:
    """A client forced past the handshake, to frame bytes a real client may not send yet."""
    client = wp.Connection(wp.Role.CLIENT)
    client.state = wp.State.READY
    return client


CLIENT_EVENTS: list[wp.Event] = [
    wp.Produce(7, "nginx", BATCH, "web-1"),
    wp.Produce(2**64 - 1, "t" * 64, BATCH),
    wp.Ping(),
    wp.Pong(),
]
SERVER_EVENTS: list[wp.Event] = [
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
    server = wp.Connection(wp.Role.SERVER)
    # A real client in handshake may not even frame a PRODUCE (see the send-side tests).
    server.receive_data(_ready_client().send(wp.Produce(1, "t", BATCH)))
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


# -- what each side may send ----------------------------------------------------------------


def _fresh(role: wp.Role) -> wp.Connection:
    return wp.Connection(role)


def _client_ready() -> wp.Connection:
    return _pair()[0]


def _server_ready() -> wp.Connection:
    return _pair()[1]


def _client_hello_sent() -> wp.Connection:
    client = wp.Connection(wp.Role.CLIENT)
    client.send(wp.Hello(wp.PROTOCOL_VERSION, PID))
    return client


def _client_small_frames() -> wp.Connection:
    """A client welcomed by a server that takes frames of at most 1 KiB."""
    client = wp.Connection(wp.Role.CLIENT)
    server = wp.Connection(wp.Role.SERVER, max_frame=1024)
    server.receive_data(client.send(wp.Hello(wp.PROTOCOL_VERSION, PID)))
    assert isinstance(server.next_event(), wp.Hello)
    client.receive_data(server.send(wp.Welcome(1, "s", 1024, 8, 15.0)))
    assert isinstance(client.next_event(), wp.Welcome)
    return client


MISUSES = [
    pytest.param(lambda: _fresh(wp.Role.CLIENT), wp.Produce(1, "t", BATCH), id="produce-before-welcome"),
    pytest.param(_client_hello_sent, wp.Produce(1, "t", BATCH), id="produce-before-welcome-after-hello"),
    pytest.param(lambda: _fresh(wp.Role.CLIENT), wp.Ping(), id="ping-in-handshake"),
    pytest.param(_client_hello_sent, wp.Hello(1, PID), id="second-hello"),
    pytest.param(_client_ready, wp.Hello(1, PID), id="hello-when-ready"),
    pytest.param(_client_ready, wp.Ack(1, 0, 0, 1), id="client-sends-ack"),
    pytest.param(_client_ready, wp.Welcome(1, "s", 1, 1, 1.0), id="client-sends-welcome"),
    pytest.param(lambda: _fresh(wp.Role.SERVER), wp.Welcome(1, "s", 1, 1, 1.0), id="welcome-before-hello"),
    pytest.param(lambda: _fresh(wp.Role.SERVER), wp.Ack(1, 0, 0, 1), id="ack-in-handshake"),
    pytest.param(_server_ready, wp.Produce(1, "t", BATCH), id="server-sends-produce"),
    pytest.param(_server_ready, wp.Hello(1, PID), id="server-sends-hello"),
    pytest.param(lambda: _fresh(wp.Role.CLIENT), wp.Hello(1, b"short"), id="hello-id-not-16-bytes"),
    pytest.param(_client_ready, wp.Produce(-1, "t", BATCH), id="negative-correlation-id"),
    pytest.param(_client_ready, wp.Produce(2**64, "t", BATCH), id="correlation-id-past-u64"),
    pytest.param(_client_ready, wp.Produce(1, "t" * 65_536, BATCH), id="topic-past-u16"),
    pytest.param(_client_ready, wp.Produce(1, "t", BATCH, "k" * 65_536), id="key-past-u16"),
    pytest.param(_client_small_frames, wp.Produce(1, "t", b"x" * 2000), id="past-announced-limit"),
    pytest.param(lambda: _fresh(wp.Role.CLIENT), wp.Hello(1, PID, "t" * wp.HANDSHAKE_MAX_FRAME), id="hello-past-handshake-limit"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "event"), MISUSES)
def test_send_side_misuse_raises_the_local_error_and_enters_error(
    make: Callable[[], wp.Connection], event: wp.Event
) -> None:
    conn = make()
    with pytest.raises(wp.LocalProtocolError) as exc:
        conn.send(event)
    assert isinstance(exc.value, LocalError) and not isinstance(exc.value, ProtocolError)
    assert exc.value.code == "local_protocol_error" and not exc.value.retriable
    assert conn.state is wp.State.ERROR
    assert "error local_protocol_error" in repr(conn)


def test_what_send_accepts_fits_the_limit_exactly() -> None:
    client = _client_small_frames()
    overhead = len(client.send(wp.Produce(1, "t", b""))) - 4  # type byte + PRODUCE prefix
    client.send(wp.Produce(2, "t", b"x" * (1024 - overhead)))
    with pytest.raises(wp.LocalProtocolError, match="exceeds the limit of 1024"):
        client.send(wp.Produce(3, "t", b"x" * (1024 - overhead + 1)))


def _state(conn: wp.Connection) -> wp.State:
    """The state, read through a call so type checkers do not keep an earlier narrowing."""
    return conn.state


def _assert_dead(conn: wp.Connection) -> None:
    """In ERROR every call raises the local error, except the one ERROR frame, which closes."""
    assert conn.state is wp.State.ERROR
    for call in (
        lambda: conn.send(wp.Ping()),
        lambda: conn.send(wp.Produce(1, "t", BATCH)),
        lambda: conn.next_event(),
        lambda: conn.receive_data(b"\x00"),
        lambda: conn.receive_data(b""),
    ):
        with pytest.raises(wp.LocalProtocolError, match="failed earlier") as exc:
            call()
        assert isinstance(exc.value.__cause__, WharfError)  # the first failure, chained
        assert conn.state is wp.State.ERROR
    goodbye = conn.send(wp.Error("bad_frame", "bye"))
    assert _state(conn) is wp.State.CLOSED
    peer = _ready_client() if conn.role is wp.Role.SERVER else wp.Connection(wp.Role.SERVER)
    peer.state = wp.State.READY
    peer.receive_data(goodbye)
    assert peer.next_event() == wp.Error("bad_frame", "bye")
    with pytest.raises(wp.LocalProtocolError, match="closed"):
        conn.send(wp.Error("bad_frame", "again"))
    with pytest.raises(ConnectionClosed):
        conn.next_event()


def test_after_a_local_error_every_call_raises() -> None:
    client = wp.Connection(wp.Role.CLIENT)
    with pytest.raises(wp.LocalProtocolError):
        client.send(wp.Produce(1, "t", BATCH))
    _assert_dead(client)


def test_after_a_remote_error_every_call_raises_and_the_error_frame_carries_its_code() -> None:
    _, server = _pair()
    server.receive_data(struct.pack(">IB", 1, 99))
    with pytest.raises(wp.ProtocolError) as exc:
        server.next_event()
    assert exc.value.code == "bad_frame"
    assert repr(server) == "<Connection server error bad_frame buffered=5>"
    frame = wp.Error.from_error(exc.value)
    assert frame == wp.Error("bad_frame", "unknown frame type 99", False)
    _assert_dead(server)


def test_sending_error_closes_and_receiving_it_changes_nothing() -> None:
    client, server = _pair()
    client.receive_data(server.send(wp.Error("store_error", "disk full", True)))
    assert server.state is wp.State.CLOSED
    with pytest.raises(wp.LocalProtocolError, match="closed"):
        server.send(wp.Ping())
    assert client.next_event() == wp.Error("store_error", "disk full", True)
    assert client.state is wp.State.READY
    client.receive_data(b"")
    with pytest.raises(ConnectionClosed):
        client.next_event()
    assert _state(client) is wp.State.CLOSED


def test_close_wins_over_error() -> None:
    client = wp.Connection(wp.Role.CLIENT)
    with pytest.raises(wp.LocalProtocolError):
        client.send(wp.Ping())
    client.close()
    assert client.state is wp.State.CLOSED
    client.receive_data(b"ignored after the goodbye")
    with pytest.raises(ConnectionClosed):
        client.next_event()


_EVENTS: dict[str, wp.Event] = {
    "hello": wp.Hello(wp.PROTOCOL_VERSION, PID, "tok"),
    "welcome": wp.Welcome(1, "s", wp.MAX_FRAME, 8, 15.0),
    "produce": wp.Produce(1, "t", BATCH, "k"),
    "ack": wp.Ack(1, 0, 0, 1),
    "nack": wp.Nack(1, "corrupt_batch", "bad", False),
    "ping": wp.Ping(),
    "pong": wp.Pong(),
    "error": wp.Error("idle_timeout", "bye", True),
}


@settings(max_examples=500)
@given(st.lists(st.tuples(st.sampled_from(wp.Role), st.sampled_from(sorted(_EVENTS))), max_size=12))
def test_whatever_one_side_sends_the_other_receives(steps: list[tuple[wp.Role, str]]) -> None:
    """Send-side checks mirror receive-side checks: a frame either goes out and the peer takes
    it as it was sent, or ``send`` refuses it with the local error and nothing goes out."""
    ends = {
        wp.Role.CLIENT: wp.Connection(wp.Role.CLIENT),
        wp.Role.SERVER: wp.Connection(wp.Role.SERVER),
    }
    for role, name in steps:
        me, peer = ends[role], ends[wp.Role.SERVER if role is wp.Role.CLIENT else wp.Role.CLIENT]
        if not {me.state, peer.state} <= {wp.State.HANDSHAKE, wp.State.READY}:
            return  # one side said goodbye: the conversation is over
        try:
            data = me.send(_EVENTS[name])
        except wp.LocalProtocolError:
            assert me.state is wp.State.ERROR
            return
        peer.receive_data(data)
        assert peer.next_event() == _EVENTS[name]
        assert peer.next_event() is wp.NEED_DATA


@settings(max_examples=500)
@given(
    st.sampled_from(wp.Role),
    st.booleans(),
    st.lists(st.binary(max_size=80), max_size=6),
    st.booleans(),
)
def test_arbitrary_bytes_only_raise_the_remote_error_then_the_connection_is_dead(
    role: wp.Role, handshaken: bool, chunks: list[bytes], eof: bool
) -> None:
    conn = _pair()[0 if role is wp.Role.CLIENT else 1] if handshaken else wp.Connection(role)
    raised: BaseException | None = None
    try:
        for chunk in [*chunks, *([b""] if eof else [])]:
            conn.receive_data(chunk)
            for _ in range(1000):
                if conn.next_event() is wp.NEED_DATA:
                    break
    except Exception as exc:  # the point: nothing but our error may come out
        raised = exc
    if raised is None:
        return
    assert isinstance(raised, wp.ProtocolError), repr(raised)
    if isinstance(raised, ConnectionClosed):
        assert conn.state is wp.State.CLOSED
        return
    assert conn.state is wp.State.ERROR
    with pytest.raises(wp.LocalProtocolError):
        conn.next_event()


# -- NACK and ERROR frames carry the table's codes --------------------------------------------


@pytest.mark.parametrize("cls", [row[0] for row in TABLE])
def test_nack_and_error_frames_rebuild_the_typed_error(cls: type[WharfError]) -> None:
    exc = cls(f"{cls.__name__} happened")
    client, server = _pair()
    client.receive_data(
        server.send(wp.Nack.from_error(7, exc)) + server.send(wp.Error.from_error(exc))
    )
    nack, error = client.next_event(), client.next_event()
    assert isinstance(nack, wp.Nack) and isinstance(error, wp.Error)
    assert (nack.correlation_id, nack.code, nack.retriable) == (7, exc.code, exc.retriable)
    for frame in (nack, error):
        back = frame.to_error()
        assert type(back) is cls and str(back) == str(exc) and back.retriable is exc.retriable


def test_nack_wire_format_is_unchanged() -> None:
    """The NACK frame is still ``[correlation id, code, message, retriable]`` in msgpack: a
    collector and a shipper of different versions understand each other."""
    _, server = _pair()
    frame = server.send(wp.Nack.from_error(9, CorruptBatch("checksum mismatch")))
    assert frame[5:] == msgspec.msgpack.encode([9, "corrupt_batch", "checksum mismatch", False])
    assert wp.Nack.from_error(1, InvalidTopicName("x")).code == "invalid_topic"
    assert wp.Nack.from_error(1, StoreError("disk full")).retriable


def test_a_code_from_a_newer_peer_keeps_the_flag_it_came_with() -> None:
    err = wp.Nack(1, "quota_exceeded", "slow down", True).to_error()
    assert isinstance(err, UnrecognizedError)
    assert (err.code, str(err), err.retriable) == ("quota_exceeded", "slow down", True)


# -- batch versions in HELLO and WELCOME (see wharf.protocol's docstring) ----------------------


class _OldHello(msgspec.Struct, frozen=True, array_like=True):
    """HELLO as a peer from before batch version 2 defines it."""

    version: int
    producer_id: bytes
    token: str = ""
    client: str = ""


class _OldWelcome(msgspec.Struct, frozen=True, array_like=True):
    """WELCOME as a collector from before batch version 2 defines it."""

    version: int
    server: str
    max_frame: int
    max_inflight: int
    heartbeat_s: float


def test_hello_and_welcome_carry_the_batch_versions() -> None:
    client, server = wp.Connection(wp.Role.CLIENT), wp.Connection(wp.Role.SERVER)
    server.receive_data(client.send(wp.Hello(1, PID, "t", "c", wb.VERSIONS)))
    hello = server.next_event()
    assert isinstance(hello, wp.Hello) and hello.batch_versions == (1, 2)
    client.receive_data(server.send(wp.Welcome(1, "s", wp.MAX_FRAME, 8, 15.0, (2,))))
    welcome = client.next_event()
    assert isinstance(welcome, wp.Welcome) and welcome.batch_versions == (2,)


def test_an_old_peer_means_version_1_and_reads_our_frames() -> None:
    """An old collector's WELCOME has no list: it decodes as (1,), so a new shipper builds
    version 1 for it. An old collector decodes a new HELLO: the extra element is ignored."""
    old_welcome = msgspec.msgpack.encode(_OldWelcome(1, "wharf-collector/0.1", 1 << 20, 8, 15.0))
    client = wp.Connection(wp.Role.CLIENT)
    client.send(wp.Hello(1, PID, batch_versions=wb.VERSIONS))
    client.receive_data(
        struct.pack(">IB", 1 + len(old_welcome), wp.FrameType.WELCOME) + old_welcome
    )
    welcome = client.next_event()
    assert isinstance(welcome, wp.Welcome) and welcome.batch_versions == (1,)
    new_hello = wp.Connection(wp.Role.CLIENT).send(wp.Hello(1, PID, "tok", "c", (1, 2)))
    assert msgspec.msgpack.decode(new_hello[5:], type=_OldHello) == _OldHello(1, PID, "tok", "c")
    old_hello = msgspec.msgpack.encode(_OldHello(1, PID, "tok"))
    server = wp.Connection(wp.Role.SERVER)
    server.receive_data(struct.pack(">IB", 1 + len(old_hello), wp.FrameType.HELLO) + old_hello)
    hello = server.next_event()
    assert isinstance(hello, wp.Hello) and hello.batch_versions == (1,)


@pytest.mark.parametrize("versions", [(), (0,), (256,), (1, -1), tuple(range(1, 257))])
def test_batch_versions_out_of_range_are_refused_both_ways(versions: tuple[int, ...]) -> None:
    with pytest.raises(LocalError):
        wp.Connection(wp.Role.CLIENT).send(wp.Hello(1, PID, batch_versions=versions))
    payload = msgspec.msgpack.encode([1, PID, "", "", list(versions)])
    server = wp.Connection(wp.Role.SERVER)
    server.receive_data(struct.pack(">IB", 1 + len(payload), wp.FrameType.HELLO) + payload)
    with pytest.raises(ProtocolError, match="batch_versions"):
        server.next_event()
