"""Garbage on the forward input's ports while well-behaved clients keep being served: random
bytes, a truncated message, a 100 MB message (announced, and grown), a gzip bomb, invalid
msgpack, msgpack that is no forward message, bad events inside a good message, a non-log
signal, wrong and missing shared keys, silence before the handshake, one connection too many.
Each gets the protocol's answer (a refusing PONG, an ack for what was good) or a closed
connection, each is counted on ``/metrics``, and every good record is stored exactly once."""

from __future__ import annotations

import gzip
import random
import socket
import zlib
from collections import Counter
from typing import Any

from fluent import sender

from tests.harness import wait_for
from tests.inputs.conftest import InputsCollector
from tests.inputs.forward_client import (
    TIMEOUT_S,
    RawForward,
    counts,
    message,
    pack,
    search,
    wait_counts,
)

KEY = "the-right-key"
LIMIT = 16 << 20  # the forward input's default max_message_bytes


def events(prefix: str, n: int = 10) -> list[tuple[Any, Any]]:
    return [(0, {"message": f"{prefix} {i}", "k": i}) for i in range(n)]


def send_until_closed(client: RawForward, head: bytes, total: int) -> int:
    """Send ``head`` then zeros up to ``total`` bytes, 64 KiB at a time, until the server
    closes the connection; the bytes that went out before it did."""
    sent = 0
    piece = bytes(64 << 10)
    try:
        client.send(head)
        sent = len(head)
        while sent < total:
            client.send(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        return sent
    raise AssertionError(f"the server took all {total} bytes")


def test_garbage_is_counted_and_good_clients_are_served(
    inputs_collector: InputsCollector,
) -> None:
    proc = inputs_collector(
        [
            {"type": "forward", "name": "fw", "listen": "127.0.0.1:0"},
            {"type": "forward", "name": "fwk", "listen": "127.0.0.1:0", "shared_key": KEY},
            {"type": "forward", "name": "few", "listen": "127.0.0.1:0", "max_connections": 2},
        ]
    )
    port, kport, fport = (proc.input_ports[n] for n in ("fw", "fwk", "few"))
    good = RawForward(port)
    keyed = RawForward(kport, shared_key=KEY, hostname="good-keyed")
    assert keyed.pong is not None and keyed.pong[1] is True
    expected: list[str] = []
    rounds = 0

    def serve_good() -> None:
        """The well-behaved clients, after each attack: acked on both inputs."""
        nonlocal rounds
        rounds += 1
        for client, name in ((good, "good"), (keyed, "keyed")):
            batch = events(f"{name} round {rounds}")
            chunk = f"{name}-{rounds}"
            client.acked(message("PackedForward", name, batch, chunk=chunk), chunk)
            expected.extend(r["message"] for _, r in batch)

    serve_good()
    # Random bytes, then the end of the stream: closed, counted malformed (or dropped when
    # the noise happens to announce a huge value).
    with RawForward(port, timeout=10) as c:
        c.send(random.Random(18).randbytes(64 << 10))
        c.sock.shutdown(socket.SHUT_WR)
        assert c.closed_by_server()
    serve_good()
    # A truncated message: half of it, then the end of the stream.
    with RawForward(port, timeout=10) as c:
        whole = message("PackedForward", "cut", events("truncated"), chunk="t1")
        c.send(whole[: len(whole) // 2])
        c.sock.shutdown(socket.SHUT_WR)
        assert c.closed_by_server()
    serve_good()
    # 100 MB announced by the entries' bin header: closed before the limit's worth arrives.
    with RawForward(port, timeout=10) as c:
        sent = send_until_closed(c, b"\x93\xa3big\xc6" + (100 << 20).to_bytes(4, "big"), 100 << 20)
        assert sent < LIMIT
    serve_good()
    # 100 MB growing inside a record (a str32 the first bytes do not show): closed once past
    # the limit (plus what the socket buffers held).
    with RawForward(port, timeout=10) as c:
        head = b"\x93\xa4grow\x00\x81\xa3msg\xdb" + (100 << 20).to_bytes(4, "big")
        assert send_until_closed(c, head, 100 << 20) < 3 * LIMIT
    serve_good()
    # A gzip bomb: 256 MiB of zeros in ~250 KiB; no ack, closed, nothing stored.
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    bomb = b"".join(z.compress(zeros) for _ in range(256)) + z.flush()
    with RawForward(port, timeout=TIMEOUT_S) as c:
        c.send(pack(["bomb", bomb, {"compressed": "gzip", "chunk": "boom"}]))
        assert c.closed_by_server()
    serve_good()
    # Invalid msgpack; valid msgpack that is no forward message: closed.
    for garbage in (b"\xc1\x00\x00", pack("GET / HTTP/1.1"), pack([1, 2, 3])):
        with RawForward(port, timeout=10) as c:
            c.send(garbage)
            assert c.closed_by_server()
        serve_good()
    # A good message without chunk, then garbage in the same write: the good one is kept.
    with RawForward(port, timeout=10) as c:
        c.send(message("Forward", "before", events("before garbage", 5)) + b"\xc1")
        assert c.closed_by_server()
    expected += [f"before garbage {i}" for i in range(5)]
    serve_good()
    # Bad events inside a good message: the good ones stored and acked, the connection kept.
    mixed = [(0, {"message": "mixed ok 1"}), ("noon", {"message": "bad time"}), (0, 42)]
    mixed.append((0, {"message": "mixed ok 2"}))
    good.acked(message("Forward", "mixed", mixed, chunk="mixed"), "mixed")
    expected += ["mixed ok 1", "mixed ok 2"]
    # A metrics signal: acked (the sender must not resend it), dropped, the connection kept.
    good.acked(
        message("Forward", "m", events("metric"), chunk="sig", option={"fluent_signal": 1}),
        "sig",
    )
    serve_good()
    # The shared-key input: a wrong key; events without the handshake; silence.
    silent = RawForward(kport, timeout=TIMEOUT_S)
    with RawForward(kport, timeout=10) as c:
        pong = c.handshake("wrong-key", "intruder")
        assert pong[:3] == ["PONG", False, "shared_key mismatch"]
        assert c.closed_by_server()
    with RawForward(kport, timeout=10) as c:
        assert c.read()[0] == "HELO"
        c.send(message("Message", "sneak", [(0, {"message": "no key"})]))
        pong = c.read()
        assert pong[:2] == ["PONG", False] and "handshake first" in pong[2]
        assert c.closed_by_server()
    assert silent.read()[0] == "HELO"
    assert silent.closed_by_server()  # HANDSHAKE_TIMEOUT_S later
    silent.close()
    serve_good()
    # One connection too many on an input that takes two.
    with RawForward(fport) as a, RawForward(fport) as b:
        wait_counts(proc, "few", lambda c: c["connections"] == 2, "two connections open")
        with RawForward(fport, timeout=10) as third:
            assert third.closed_by_server()
        a.acked(message("Message", "few", [(0, {"message": "few a"})], chunk="fa"), "fa")
        b.acked(message("Message", "few", [(0, {"message": "few b"})], chunk="fb"), "fb")
    expected += ["few a", "few b"]
    # And fluent-logger from PyPI on the attacked port, after all that.
    py = sender.FluentSender("py", host="127.0.0.1", port=port)
    for i in range(20):
        assert py.emit("after", {"message": f"python after {i}"}), py.last_error
    py.close()
    expected += [f"python after {i}" for i in range(20)]
    good.close()
    keyed.close()

    wait_counts(proc, "fw", lambda c: c["connections"] == 0, "the fw connections closed")
    fw = wait_counts(proc, "fw", lambda c: c["stored"] >= rounds * 10 + 27, "fw's records")
    # random bytes: 1 malformed-or-dropped; truncated, 3 garbage, garbage after a good
    # message, 2 bad events: malformed; announced, grown, bomb, signal: dropped.
    assert fw["malformed"] + fw["dropped"] == 1 + 1 + 3 + 1 + 2 + 4
    assert fw["dropped"] >= 4 and fw["refused"] == 0
    assert fw["stored"] == fw["received"] == rounds * 10 + 5 + 2 + 20
    fwk = counts(proc, "fwk")
    assert (fwk["refused"], fwk["malformed"], fwk["stored"]) == (3, 0, rounds * 10)
    few = counts(proc, "few")
    assert (few["refused"], few["stored"]) == (1, 2)

    records = search(proc, "forward")
    got = Counter(r["line"] for r in records)
    assert got == Counter(expected), (
        f"missing {sorted(set(expected) - set(got))[:5]}, extra {sorted(set(got) - set(expected))[:5]}"
    )
    assert {r["host"] for r in records if r["source"] == "keyed"} == {"good-keyed"}
    # Complaints are rate-limited per input (the first one, then one per 10 s): the first.
    log = proc.log.read_text()
    assert "WARNING collector.inputs: input fw: " in log and "from 127.0.0.1" in log
    assert "input fwk: handshake refused: shared_key mismatch (client 'intruder')" in log


def test_a_message_at_the_limit_is_taken_one_byte_more_is_not(
    inputs_collector: InputsCollector,
) -> None:
    """``max_message_bytes`` on a live input: a message of exactly that size is stored and
    acked; one byte more closes the connection (dropped), and the next connection works."""
    limit = 64 << 10
    proc = inputs_collector(
        [{"type": "forward", "name": "fw", "listen": "127.0.0.1:0", "max_message_bytes": limit}]
    )
    port = proc.input_ports["fw"]
    sizes = {
        len(message("Forward", "t", [(0, {"message": "x" * n})], chunk="c")): n
        for n in range(limit - 100, limit)
    }
    n = sizes[limit]
    with RawForward(port) as c:
        c.acked(message("Forward", "t", [(0, {"message": "x" * n})], chunk="c"), "c")
        c.send(message("Forward", "t", [(0, {"message": "y" * (n + 1)})], chunk="c"))
        assert c.closed_by_server()
    with RawForward(port) as c:
        c.acked(message("Forward", "t", [(0, {"message": "after"})], chunk="d"), "d")
    wait_for(lambda: counts(proc, "fw")["dropped"] == 1, TIMEOUT_S, "the big one dropped")
    assert sorted(r["line"] for r in search(proc, "forward")) == ["after", "x" * n]


def test_gzip_members_and_heartbeats(inputs_collector: InputsCollector) -> None:
    """CompressedPackedForward of several gzip members back to back (as fluentd appends
    them), nil heartbeats between messages, Forward mode: all stored once."""
    proc = inputs_collector([{"type": "forward", "name": "fw", "listen": "127.0.0.1:0"}])
    with RawForward(proc.input_ports["fw"]) as c:
        batch = events("member", 30)
        c.send(pack(None))
        c.acked(message("CompressedPackedForward", "gz", batch, chunk="g", members=3), "g")
        c.send(pack(None) * 3)
        c.acked(message("Forward", "fwd", events("forward", 5), chunk="f"), "f")
        blob = b"".join(gzip.compress(pack([0, {"message": f"manual {i}"}])) for i in range(4))
        c.acked(pack(["gz", blob, {"compressed": "gzip", "chunk": "m"}]), "m")
    lines = [r["line"] for r in search(proc, "forward")]
    assert Counter(lines) == Counter(
        [f"member {i}" for i in range(30)]
        + [f"forward {i}" for i in range(5)]
        + [f"manual {i}" for i in range(4)]
    )


def test_unfinished_messages_are_bounded_across_connections(
    inputs_collector: InputsCollector,
) -> None:
    """Each connection buffers its own unfinished message; together they may hold at most
    ``max_pending_bytes``: the connection whose message would pass it is closed (refused),
    the others finish theirs, and a sender trying again later is served."""
    proc = inputs_collector(
        [
            {
                "type": "forward",
                "name": "fw",
                "listen": "127.0.0.1:0",
                "max_pending_bytes": 1 << 20,
                "max_message_bytes": 1 << 20,
            }
        ]
    )
    port = proc.input_ports["fw"]
    big = message("PackedForward", "big", [(0, {"message": "z" * 600_000})], chunk="big")
    with RawForward(port) as first, RawForward(port, timeout=10) as second:
        first.send(big[:-1000])
        wait_counts(proc, "fw", lambda c: c["bytes"] >= len(big) - 1000, "the first 599 KB")
        second.send(big[:-1000])
        assert second.closed_by_server()
        first.send(big[-1000:])
        assert first.read() == {"ack": "big"}
    with RawForward(port) as again:
        again.acked(big, "big")
    c = wait_counts(proc, "fw", lambda c: c["connections"] == 0, "connections closed")
    assert (c["refused"], c["stored"], c["malformed"]) == (1, 2, 0)
