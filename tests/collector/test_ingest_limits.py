"""The ingest listener's bounds against clients that misbehave on purpose or by accident, with
a real store on loopback: pre-auth connections, buffered partial frames, wrong tokens, a full
disk (issue 13)."""

from __future__ import annotations

import gc
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config import CollectorConfig, LimitSettings
from shipper.transport import Producer
from tests.harness import IngestUnderTest, wait_for
from tests.storage.helpers import fill_disk, numbered, small_disk
from wharf import batch as wb
from wharf import protocol as wp
from wharf.record import Record

PID = bytes(16)  # what `numbered` batches carry
WAIT_S = 30.0  # a failure detector, not a speed check
TOKEN = "w-token"


def _hello(port: int, token: str = TOKEN, source: str = "127.0.0.1") -> socket.socket:
    """A raw connection that has sent its HELLO (the reply is read by ``_reply``)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S, source_address=(source, 0))
    s.sendall(wp.Connection(wp.Role.CLIENT).send(wp.Hello(wp.PROTOCOL_VERSION, PID, token)))
    return s


def _welcomed(port: int) -> socket.socket:
    s = _hello(port)
    assert isinstance(_reply(s), wp.Welcome)
    return s


def _reply(s: socket.socket, *, ready: bool = False) -> wp.Event | None:
    """The next event the server sends (a WELCOME included), or ``None`` when it closes
    without one; ``ready``: the connection is past its handshake."""
    conn = wp.Connection(wp.Role.CLIENT)
    conn.send(wp.Hello(wp.PROTOCOL_VERSION, PID))  # only to be a client in its handshake
    if ready:
        conn.state = wp.State.READY
    while True:
        ev = conn.next_event()
        if ev is not wp.NEED_DATA:
            return ev
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return None
        if not data:
            return None
        conn.receive_data(data)


def _produce(correlation_id: int, topic: str, batch: bytes) -> bytes:
    conn = wp.Connection(wp.Role.CLIENT)
    conn.state = wp.State.READY
    return conn.send(wp.Produce(correlation_id, topic, batch))


def _metric(srv: IngestUnderTest, name: str, **labels: str) -> float:
    return srv.metrics.registry.get_sample_value(name, labels) or 0.0


def _sessions(srv: IngestUnderTest) -> list[dict[str, object]]:
    async def on_loop() -> list[dict[str, object]]:
        return srv.server.sessions()

    return srv.loop.run(on_loop())


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    """Sockets a test opens, closed at its end whatever happened."""
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def test_clients_that_never_log_in_cannot_crowd_out_a_shipper(
    tmp_path: Path, closing: list[socket.socket]
) -> None:
    """Issue 13, item 5: connections that never sent HELLO held every slot, and a real shipper
    was refused. Now they have their own smaller cap, and the oldest make room."""
    limits = LimitSettings(max_connections=20, max_preauth_connections=5, handshake_timeout_s=120)
    srv = IngestUnderTest(tmp_path, tokens=[TOKEN], limits=limits)
    try:
        closing.extend(
            socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT_S) for _ in range(30)
        )
        wait_for(
            lambda: (
                _metric(srv, "wharf_ingest_connections_total")
                + _metric(srv, "wharf_ingest_protocol_errors_total", reason="too_many_connections")
                >= 30
            ),
            WAIT_S,
            "the server to take every idle connection",
        )

        async def ship() -> wp.Ack:
            p = Producer([srv.address], producer_id=bytes(16), token=TOKEN, deadline_s=WAIT_S)
            try:
                return await p.send("t", numbered(0, 10))
            finally:
                await p.close()

        ack = srv.loop.run(ship(), timeout=2 * WAIT_S)
        assert ack.base_offset == 0 and ack.record_count == 10
        for s in closing[:25]:  # the oldest went first, each told why
            ev = _reply(s)
            assert isinstance(ev, wp.Error), ev
            assert (ev.code, ev.retriable) == ("too_many_connections", True)
        waiting = [x for x in _sessions(srv) if x["producer_id"] == bytes(16).hex()]
        assert len(waiting) <= 5
    finally:
        srv.close()


def _incompressible_batch(size: int) -> bytes:
    lines = [os.urandom(512).hex() for _ in range(size // 1024)]
    return wb.build(
        [
            Record(ts=n, line=line, host="h", file_id="f", offset=n * 1024)
            for n, line in enumerate(lines)
        ],
        producer_id=PID,
        spans=[wb.Span("f", 0, len(lines) * 1024)],
    )


def test_partial_frames_of_all_connections_share_one_memory_budget(
    tmp_path: Path, closing: list[socket.socket]
) -> None:
    """Issue 13, item 6: each connection could buffer a frame of up to MAX_FRAME (~80 MiB),
    with no bound across connections (20 of them held 1.6 GB). Now a frame in progress holds
    its size from a budget shared by every connection, and one that does not fit waits."""
    budget = wp.MAX_FRAME + (1 << 20)
    srv = IngestUnderTest(
        tmp_path, tokens=[TOKEN], limits=LimitSettings(max_buffered_frame_bytes=budget)
    )
    try:
        frames = srv.server.frame_budget
        hog = _welcomed(srv.port)
        closing.append(hog)
        declared = wp.MAX_FRAME - 100
        hog.sendall(struct.pack(">IB", declared, wp.FrameType.PRODUCE) + b"\0" * (1 << 20))
        wait_for(lambda: frames.used >= declared, WAIT_S, "the big frame's reservation")

        batch = _incompressible_batch(6 << 20)
        assert len(batch) > (1 << 20) + 100  # more than what the hog leaves
        shipper = _welcomed(srv.port)
        closing.append(shipper)
        sender = threading.Thread(target=shipper.sendall, args=(_produce(1, "t", batch),))
        sender.start()
        wait_for(lambda: frames.waiting == 1, WAIT_S, "the second frame to wait for room")
        assert frames.used <= budget
        hog.close()  # its partial frame is dropped, and its reservation with it
        ev = _reply(shipper, ready=True)
        sender.join(WAIT_S)
        assert isinstance(ev, wp.Ack) and ev.base_offset == 0, ev
        shipper.close()
        wait_for(lambda: frames.used == 0 and frames.waiting == 0, WAIT_S, "the budget back")
    finally:
        srv.close()


def test_buffers_of_closed_connections_are_freed_without_waiting_for_a_gc(
    tmp_path: Path, closing: list[socket.socket]
) -> None:
    """Issue 13, item 6 (second half): a connection that failed mid-frame kept its buffer in a
    reference cycle (the protocol error, its traceback, the session), freed only by a full GC:
    RSS kept growing after the clients had gone."""
    srv = IngestUnderTest(tmp_path, tokens=[TOKEN], limits=LimitSettings(frame_timeout_s=1))
    gc.collect()
    gc.disable()
    try:
        head = struct.pack(">IB", 8 << 20, wp.FrameType.PRODUCE)
        truncated = _welcomed(srv.port)  # closes in the middle of a frame
        truncated.sendall(head + b"\0" * (2 << 20))
        truncated.close()
        stalled = _welcomed(srv.port)  # starts a frame and stops: the frame timeout
        closing.append(stalled)
        stalled.sendall(head + b"\0" * (2 << 20))
        oversize = _welcomed(srv.port)  # announces a frame past the limit
        closing.append(oversize)
        oversize.sendall(struct.pack(">IB", wp.MAX_FRAME + 1, wp.FrameType.PRODUCE))
        garbage = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT_S)
        closing.append(garbage)
        garbage.sendall(os.urandom(3000))
        for s in (stalled, oversize):
            ev = _reply(s, ready=True)
            assert ev is None or isinstance(ev, wp.Error), ev
        for s in (garbage,):
            ev = _reply(s)
            assert ev is None or isinstance(ev, wp.Error), ev
        wait_for(
            lambda: _metric(srv, "wharf_ingest_open_connections") == 0 and not _sessions(srv),
            WAIT_S,
            "every connection closed",
        )
        left = [
            repr(o)
            for o in gc.get_objects()
            if isinstance(o, wp.Connection) and o.role is wp.Role.SERVER
        ]
        assert left == []
    finally:
        gc.enable()
        srv.close()


def test_wrong_tokens_from_one_address_are_rate_limited(
    tmp_path: Path, closing: list[socket.socket]
) -> None:
    """Issue 13: wrong-token attempts were answered as fast as they came (~3,700/s from one
    client). Past a few failures per minute, an address's logins are refused without looking
    at the token (retriable: a shipper with the right token gets in once the address cools
    down); other addresses are not affected."""
    per_minute = 5
    limits = LimitSettings(max_auth_failures_per_minute=per_minute)
    srv = IngestUnderTest(tmp_path, tokens=[TOKEN], limits=limits)
    try:
        started = time.monotonic()
        codes: list[tuple[str, bool]] = []
        for _ in range(40):
            s = _hello(srv.port, token="guess")
            ev = _reply(s)
            s.close()
            assert isinstance(ev, wp.Error), ev
            codes.append((ev.code, ev.retriable))
        refills = (time.monotonic() - started) * per_minute / 60
        unauthorized = codes.count(("unauthorized", False))
        assert unauthorized <= per_minute + refills + 1, codes
        assert set(codes) == {("unauthorized", False), ("unavailable", True)}, codes
        other = _hello(srv.port, source="127.0.0.2")  # another host: not held back
        closing.append(other)
        assert isinstance(_reply(other), wp.Welcome)
    finally:
        srv.close()


def test_a_topic_created_on_a_full_disk_gets_a_retriable_nack(
    tmp_path: Path, closing: list[socket.socket]
) -> None:
    """Issue 13, item 11: the OSError of creating a topic on a full disk escaped the PRODUCE
    handler and the connection dropped without a NACK."""
    with small_disk(tmp_path / "disk") as disk:
        srv = IngestUnderTest(disk / "data", tokens=[TOKEN])
        try:
            filler = fill_disk(disk)
            s = _welcomed(srv.port)
            closing.append(s)
            s.sendall(_produce(1, "fresh", numbered(0, 10, file_id="a")))
            ev = _reply(s, ready=True)
            assert isinstance(ev, wp.Nack), ev
            assert (ev.correlation_id, ev.code, ev.retriable) == (1, "store_error", True)
            filler.unlink()
            s.sendall(_produce(2, "fresh", numbered(0, 10, file_id="a")))  # same connection
            ev = _reply(s, ready=True)
            assert isinstance(ev, wp.Ack) and ev.base_offset == 0, ev
        finally:
            srv.close()


def test_limits_that_could_not_work_are_configuration_errors() -> None:
    limits = LimitSettings(
        max_buffered_frame_bytes=1 << 20,  # smaller than one frame: it could never be received
        max_preauth_connections=0,
        max_topics=0,
        max_open_segment_files=1,
    )
    problems = dict(CollectorConfig(limits=limits).problems())
    assert sorted(problems) == [
        "limits.max_buffered_frame_bytes",
        "limits.max_open_segment_files",
        "limits.max_preauth_connections",
        "limits.max_topics",
    ], problems
