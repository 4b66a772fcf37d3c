"""The syslog input in this process, around a real embedded store (``InputUnderTest``), for
what a collector child cannot show: TCP backpressure while the sink's budget is taken, UDP
records dropped (and counted) when it is full, and a connection stalled inside a message.
Real sockets on 127.0.0.1; the input is the one the collector runs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.config import InputSettings
from collector.inputs import syslog as syslog_input
from tests.harness import wait_for
from tests.inputs.http_inputs import InputUnderTest
from tests.inputs.test_syslog_input import TIMEOUT_S, closed_by_peer, octet

MSG = "<14>1 2024-06-15T12:00:00Z web-{h} app - - - message number {i:06d} " + "x" * 200


MakeInput = Callable[..., InputUnderTest]


@pytest.fixture
def make_input(tmp_path: Path) -> Iterator[MakeInput]:
    """``make_input(protocol=..., ...)``: a syslog input on 127.0.0.1 port 0 with these keys,
    closed at the end of the test."""
    started: list[InputUnderTest] = []

    def make(**keys: Any) -> InputUnderTest:
        settings = InputSettings(type="syslog", listen="127.0.0.1:0", name="s", **keys)
        ut = InputUnderTest(tmp_path / f"data-{len(started)}", settings)
        started.append(ut)
        return ut

    yield make
    for ut in reversed(started):
        ut.close()


def test_tcp_backpressure_stops_reading_and_loses_nothing(make_input: MakeInput) -> None:
    """With max_pending_bytes of 1 MiB and records lingering 300 ms, a sender of 20,000
    messages (~6 MB) is read only as fast as the store takes them: while a put waits for room
    the connection is not read (fewer received than sent), and in the end every message is
    stored exactly once."""
    ut = make_input(protocol="tcp", max_pending_bytes=1 << 20, linger_ms=300)
    total = 20_000
    payload = b"".join(octet(MSG.format(h=i % 3, i=i)) for i in range(total))
    sender = threading.Thread(target=_send, args=(ut.port, payload))
    sender.start()
    sink, counts = ut.ctx.sink, ut.ctx.counters.counts
    waited = wait_for(
        lambda: sink.budget.waiting and (counts["received"], sink.budget.used),
        TIMEOUT_S,
        "a put waiting for room",
        step=0.002,
    )
    received_then, used_then = waited
    assert received_then < total  # the rest is still in the socket, or the sender's
    assert used_then <= sink.budget.capacity
    sender.join(TIMEOUT_S)
    wait_for(lambda: counts["stored"] == total, TIMEOUT_S, "every message stored")
    ut.loop.run(_flush(ut))
    got = sorted(r.fields["message"] for r in ut.records())
    assert got == sorted(MSG.format(h=i % 3, i=i).split(" - - - ")[1] for i in range(total))
    assert (counts["dropped"], counts["malformed"]) == (0, 0)


def test_udp_records_are_dropped_when_the_budget_is_full(make_input: MakeInput) -> None:
    """UDP senders cannot be slowed down: a datagram whose records do not fit is dropped and
    counted; what fitted is stored."""
    ut = make_input(protocol="udp", max_pending_bytes=16 << 10, linger_ms=60_000)
    counts = ut.ctx.counters.counts
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as d:
        d.sendto(MSG.format(h=0, i=0).encode(), ("127.0.0.1", ut.port))
        wait_for(lambda: counts["received"] == 1, TIMEOUT_S, "the first datagram")
        batch = "\n".join(MSG.format(h=0, i=i) for i in range(1, 41)).encode()
        d.sendto(batch, ("127.0.0.1", ut.port))  # 40 records: more than the 16 KiB budget
    wait_for(lambda: counts["dropped"] == 40, TIMEOUT_S, "40 records dropped")
    assert counts["received"] == 41
    ut.loop.run(_flush(ut))
    assert [r.fields["message"].split()[2] for r in ut.records()] == ["000000"]


def test_a_connection_stalled_inside_a_message_is_closed(
    make_input: MakeInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silent inside a message for STALLED_S (0.3 s here): closed and counted; a connection
    idle between messages stays open as long as it likes."""
    monkeypatch.setattr(syslog_input, "STALLED_S", 0.3)
    ut = make_input(protocol="tcp")
    counts = ut.ctx.counters.counts
    with (
        socket.create_connection(("127.0.0.1", ut.port), timeout=TIMEOUT_S) as idle,
        socket.create_connection(("127.0.0.1", ut.port), timeout=TIMEOUT_S) as stalled,
    ):
        idle.sendall(octet(MSG.format(h=1, i=1)))
        stalled.sendall(b"300 <13>1 - h a - - - only part of it")
        assert closed_by_peer(stalled)
        assert counts["malformed"] == 1
        time.sleep(0.6)  # twice STALLED_S idle between messages: still served
        idle.sendall(octet(MSG.format(h=1, i=2)))
        wait_for(lambda: counts["received"] == 2, TIMEOUT_S, "both messages of the idle one")


def _send(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
        s.sendall(payload)


async def _flush(ut: InputUnderTest) -> None:
    """End the input and append what its sink holds (as the collector does at a stop)."""
    await ut.input.close()
    await ut.ctx.sink.close()
