"""The native ingest listener with a real store on loopback: delivery, dedupe, bad peers."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from collector.config import LimitSettings
from parsers import get_parser
from shipper.oneshot import ship
from shipper.transport import DeliveryError, Producer
from tests.harness import IngestUnderTest
from tests.storage.helpers import DATA, numbered
from wharf import batch as wb
from wharf import protocol as wp
from wharf.errors import InvalidTopicName, Unauthorized, UnsupportedVersion, code_of
from wharf.record import Record

PID = uuid.UUID(int=7).bytes


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[IngestUnderTest]:
    srv = IngestUnderTest(
        tmp_path,
        tokens=["w-token"],
        limits=LimitSettings(handshake_timeout_s=1, frame_timeout_s=1, idle_timeout_s=5),
    )
    yield srv
    srv.close()


def _stored_numbers(srv: IngestUnderTest, topic: str = "t") -> list[int]:
    part = srv.store.partition(topic, 0)
    return [int(r.line[4:12]) for b in part.read(0, 1 << 40) for r in b.records()]


def _batches(count: int, per: int = 20) -> list[bytes]:
    return [
        wb.build(
            [
                Record(ts=n, line=f"rec-{n:08d}", host="h", file_id="f", offset=n * 10)
                for n in range(k * per, (k + 1) * per)
            ],
            producer_id=PID,
            spans=[wb.Span("f", k * per * 10, (k + 1) * per * 10)],
        )
        for k in range(count)
    ]


def test_batches_are_acked_in_order_and_resends_are_not_stored_twice(
    ingest: IngestUnderTest,
) -> None:
    batches = _batches(30)

    async def go() -> list[wp.Ack]:
        p = Producer([ingest.address], producer_id=PID, token="w-token", window=8)
        acks = list(await asyncio.gather(*(p.send("t", b) for b in batches)))
        again = await p.send("t", batches[5])  # a resend after an ack lost in the network
        await p.close()
        return [*acks, again]

    acks = ingest.loop.run(go())
    assert [a.base_offset for a in acks[:30]] == list(range(0, 600, 20))
    assert acks[30].duplicate and acks[30].record_count == 0
    assert _stored_numbers(ingest) == list(range(600))


def _raw_session(port: int, token: str = "w-token") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = wp.Connection(wp.Role.CLIENT)
    s.sendall(conn.send(wp.Hello(wp.PROTOCOL_VERSION, PID, token)))
    return s


def _reply(s: socket.socket) -> wp.Event | None:
    """The first event the server sends back, or None if it just closes."""
    conn = wp.Connection(wp.Role.CLIENT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ev = conn.next_event()
        if ev is not wp.NEED_DATA:
            if isinstance(ev, wp.Welcome):
                continue
            return ev
        try:
            data = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return None
        if not data:
            return None
        conn.receive_data(data)
    raise AssertionError("no reply within 10 s")


def _expect_refused(s: socket.socket, code: str | None = None) -> None:
    ev = _reply(s)
    assert ev is None or isinstance(ev, wp.Error | wp.Nack), ev
    if code is not None and ev is not None:
        assert ev.code == code, ev
    s.close()


def test_bad_peers_get_errors_while_a_good_client_keeps_being_served(
    ingest: IngestUnderTest,
) -> None:
    """Random bytes, truncated and oversize frames, a decompression bomb, a wrong token and
    a slowloris, each on its own connection, while a producer sends the whole time."""
    stop = asyncio.Event()
    good = numbered(0, 10)

    async def well_behaved() -> int:
        p = Producer([ingest.address], producer_id=bytes(16), token="w-token")
        n = 0
        while not stop.is_set() or n < 3:
            ack = await asyncio.wait_for(p.send("good", numbered(n * 10, 10, file_id=f"f{n}")), 10)
            assert not ack.duplicate
            n += 1
            await asyncio.sleep(0.02)
        await p.close()
        return n

    good_run = ingest.loop.submit(well_behaved())
    port = ingest.port

    # Random bytes before any handshake.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(os.urandom(5000))
    _expect_refused(s)
    # Wrong token.
    _expect_refused(_raw_session(port, "nope"), "unauthorized")
    # Oversize frame after the handshake.
    s = _raw_session(port)
    s.sendall(struct.pack(">IB", wp.MAX_FRAME + 10, 4))
    _expect_refused(s, "frame_too_large")
    # Truncated frame, then the client goes quiet: the frame timeout closes it.
    s = _raw_session(port)
    frame = wp.Connection(wp.Role.CLIENT)
    frame.state = wp.State.READY
    s.sendall(frame.send(wp.Produce(1, "t", good))[:50])
    _expect_refused(s, "frame_timeout")
    # Slowloris: a handshake one byte per 0.3 s never completes in time.
    s = socket.create_connection(("127.0.0.1", port))
    hello = wp.Connection(wp.Role.CLIENT).send(wp.Hello(1, PID, "w-token"))
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for byte in hello:
            s.sendall(bytes([byte]))
            time.sleep(0.3)
    s.close()
    # A batch whose lines frame decompresses past the limit.
    bomb = _bomb(good)
    s = _raw_session(port)
    s.sendall(frame.send(wp.Produce(2, "t", bomb)))
    _expect_refused(s, "too_large")
    # A batch with a bad checksum, and a bad topic name: NACKed, not fatal.
    bad = bytearray(good)
    bad[-3] ^= 0xFF
    s = _raw_session(port)
    s.sendall(frame.send(wp.Produce(3, "t", bytes(bad))) + frame.send(wp.Produce(4, "../x", good)))
    assert isinstance(ev := _reply(s), wp.Nack) and ev.code == "corrupt_batch"
    s.close()

    stop.set()
    served = ingest.loop.submit(asyncio.sleep(0)).result()
    assert served is None
    assert good_run.result(30) >= 3
    assert ingest.store.describe("good").partitions[0].end_offset >= 30
    assert not any(p.name == "t" for p in (Path(ingest.config.data_dir) / "topics").iterdir())


def _bomb(template: bytes) -> bytes:

    big = zstandard.ZstdCompressor().compress(b"a" * (wb.MAX_LINES_BYTES + 1))
    data = bytearray(template)
    h = wb.read_header(data)
    start = wb.HEADER_SIZE + h.meta_len + h.cols_clen
    data[start : start + h.lines_clen] = big
    struct.pack_into(">II", data, 86, len(big), wb.MAX_LINES_BYTES + 1)
    struct.pack_into(">I", data, 16, len(data) - wb.PREFIX_SIZE)
    struct.pack_into(">I", data, 20, zlib.crc32(bytes(data[24:])))
    return bytes(data)


def test_wrong_token_fails_the_producer_clearly(ingest: IngestUnderTest) -> None:
    async def go() -> None:
        p = Producer([ingest.address], producer_id=PID, token="wrong", deadline_s=2)
        try:
            await p.send("t", _batches(1)[0])
        finally:
            await p.close()

    with pytest.raises(DeliveryError, match="unauthorized"):
        ingest.loop.run(go())


def test_ship_a_real_log_then_every_line_is_stored(ingest: IngestUnderTest) -> None:

    path = DATA / "logs" / "apache_combined.log"

    async def go() -> int:
        p = Producer([ingest.address], producer_id=PID, token="w-token")
        with path.open("rb") as f:
            stats = await ship(
                f,
                producer=p,
                topic="web",
                parser=get_parser("clf"),
                source=str(path),
                file_id="apache",
                batch_bytes=200_000,
            )
        await p.close()
        return stats.records

    assert ingest.loop.run(go()) == 10_000
    part = ingest.store.partition("web", 0)
    records = [r for b in part.read(0, 1 << 40) for r in b.records()]
    assert [r.line for r in records] == path.read_text().splitlines()
    assert records[0].fields["status"] == 200 and records[0].source == str(path)


# -- errors as data: NACK and ERROR codes come from wharf.errors.TABLE ------------------------


def _count(srv: IngestUnderTest, metric: str, reason: str) -> float:
    value = srv.metrics.registry.get_sample_value(f"{metric}_total", {"reason": reason})
    return value or 0.0


def test_a_non_retriable_nack_fails_the_send_with_the_typed_cause(ingest: IngestUnderTest) -> None:
    async def go() -> BaseException:
        p = Producer([ingest.address], producer_id=PID, token="w-token", window=2)
        try:
            with pytest.raises(DeliveryError, match="invalid_topic") as exc:
                await p.send("../x", _batches(1)[0])
            ack = await p.send("t", _batches(1)[0])  # the connection goes on serving
            assert ack.base_offset == 0 and p.reconnects == 0
        finally:
            await p.close()
        return exc.value

    err = ingest.loop.run(go())
    assert isinstance(err.__cause__, InvalidTopicName)
    assert code_of(err.__cause__) == "invalid_topic" and not err.__cause__.retriable
    assert _count(ingest, "wharf_ingest_nacks", "invalid_topic") == 1


def test_refused_handshakes_carry_the_tables_code_and_flag(ingest: IngestUnderTest) -> None:
    s = socket.create_connection(("127.0.0.1", ingest.port), timeout=5)
    s.sendall(wp.Connection(wp.Role.CLIENT).send(wp.Hello(99, PID, "w-token")))
    ev = _reply(s)
    s.close()
    assert isinstance(ev, wp.Error)
    assert (ev.code, ev.retriable) == ("unsupported_version", False)
    assert isinstance(ev.to_error(), UnsupportedVersion)
    s = _raw_session(ingest.port, "nope")
    ev = _reply(s)
    s.close()
    assert isinstance(ev, wp.Error) and isinstance(ev.to_error(), Unauthorized)
    assert _count(ingest, "wharf_ingest_protocol_errors", "unsupported_version") == 1
    assert _count(ingest, "wharf_ingest_protocol_errors", "unauthorized") == 1


def test_a_batch_past_the_announced_frame_limit_fails_alone(
    ingest: IngestUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The protocol refuses locally to frame it (it would only get the connection killed), so
    the shipper fails that batch for good and sends the others on a new connection."""
    monkeypatch.setattr(wp, "MAX_FRAME", 8192)  # what the collector announces in WELCOME
    small = _batches(2)
    big = wb.build(
        [Record(ts=1, line=os.urandom(20_000).hex(), host="h", file_id="big", offset=0)],
        producer_id=PID,
        spans=[wb.Span("big", 0, 40_000)],
    )

    async def go() -> tuple[list[wp.Ack | BaseException], int]:
        p = Producer([ingest.address], producer_id=PID, token="w-token", window=4)
        try:
            sends = [p.send("t", small[0]), p.send("t", big), p.send("t", small[1])]
            results = await asyncio.gather(*sends, return_exceptions=True)
        finally:
            await p.close()
        return results, p.reconnects

    (first, refused, last), reconnects = ingest.loop.run(go())
    assert isinstance(first, wp.Ack) and isinstance(last, wp.Ack)
    assert isinstance(refused, DeliveryError) and "cannot be sent" in str(refused)
    assert isinstance(refused.__cause__, wp.LocalProtocolError)
    assert reconnects >= 1
    assert _stored_numbers(ingest) == list(range(40))
