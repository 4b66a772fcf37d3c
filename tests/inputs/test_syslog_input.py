"""The syslog input in a real collector child, with real senders on loopback: util-linux
``logger`` over UDP and TCP (LF and octet-counted framing, RFC 3164 and RFC 5424), a Python
TLS client, and garbage (random bytes, truncated and broken frames, 100 MB messages, too many
connections, plaintext on the TLS port) while a well-behaved client goes on being served.
Counts are read back from ``/metrics``, records from ``/v1/search``."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.metrics import INPUT_COUNTERS
from tests.collector.certs import make_certs
from tests.harness import CollectorProcess, wait_for
from tests.inputs.conftest import InputsCollector

TIMEOUT_S = 60.0  # deadlines for things to arrive: a broken run fails instead of hanging


def need(program: str) -> str:
    """The path of ``program``; skip without it, except in CI, which installs everything."""
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is missing in CI (.ci/run installs it)")
        pytest.skip(f"{program} is not installed")
    return path


def get(proc: CollectorProcess, path: str) -> bytes:
    with urllib.request.urlopen(
        f"{proc.url}{path}", timeout=TIMEOUT_S, context=proc.ssl_context
    ) as resp:
        data: bytes = resp.read()
        return data


def stored(proc: CollectorProcess, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` (``/v1/search`` without a pattern)."""
    rows = [json.loads(line) for line in get(proc, f"/v1/search?topic={topic}").splitlines()]
    return [r for r in rows if "line" in r]


def counts(proc: CollectorProcess, name: str) -> dict[str, float]:
    """Input ``name``'s ``wharf_input_*_total`` counters and open connections on /metrics."""
    out = dict.fromkeys(INPUT_COUNTERS, 0.0)
    for family in text_string_to_metric_families(get(proc, "/metrics").decode()):
        for s in family.samples:
            if s.labels.get("input") != name:
                continue
            if s.name == "wharf_input_open_connections":
                out["connections"] = s.value
            elif s.name.endswith("_total"):
                out[s.name.removeprefix("wharf_input_").removesuffix("_total")] = s.value
    return out


def wait_counts(
    proc: CollectorProcess, name: str, check: Callable[[dict[str, float]], bool], what: str
) -> dict[str, float]:
    return wait_for(lambda: (c := counts(proc, name)) and check(c) and c, TIMEOUT_S, what)


def wait_records(proc: CollectorProcess, topic: str, n: int) -> list[dict[str, Any]]:
    """The records of ``topic`` once there are at least ``n``."""
    return wait_for(
        lambda: (rs := stored(proc, topic)) and len(rs) >= n and rs,
        TIMEOUT_S,
        f"{n} records in {topic}",
    )


def octet(message: str) -> bytes:
    data = message.encode()
    return b"%d %s" % (len(data), data)


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server ends the connection (EOF or reset) before the deadline (the syslog
    input never writes: anything it sends is a failure too)."""
    sock.settimeout(TIMEOUT_S)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def syslog_inputs(**keys: Any) -> list[dict[str, Any]]:
    """A UDP and a TCP syslog input named after their protocol, with these keys."""
    return [
        {"type": "syslog", "name": proto, "protocol": proto, "listen": "127.0.0.1:0", **keys}
        for proto in ("udp", "tcp")
    ]


# --- logger --------------------------------------------------------------------------------

LOGGER_CASES = [
    ("udp", ["-d", "--rfc5424"]),
    ("udp", ["-d", "--rfc3164"]),
    ("tcp", ["-T", "--rfc5424"]),
    ("tcp", ["-T", "--rfc3164"]),
    ("tcp", ["-T", "--octet-count", "--rfc5424"]),
    ("tcp", ["-T", "--octet-count", "--rfc3164"]),
]


def test_logger_over_udp_and_tcp(inputs_collector: InputsCollector) -> None:
    """util-linux logger, every framing and format it has; over TCP each run sends 50 lines on
    one connection. Each message stored once, with host, app, level and fields."""
    logger = need("logger")
    proc = inputs_collector(syslog_inputs())
    per_run = {"udp": 1, "tcp": 50}
    sent: dict[str, tuple[str, list[str]]] = {}
    for i, (name, flags) in enumerate(LOGGER_CASES):
        lines = [f"case {i} line {j} via {' '.join(flags)}" for j in range(per_run[name])]
        extra = ["--sd-id", "zoo@32473", "--sd-param", 'tiger="hungry"', "--msgid", "M1"]
        subprocess.run(
            [logger, "-n", "127.0.0.1", "-P", str(proc.input_ports[name]), *flags,
             "-t", f"app{i}", "-p", "local3.warning", *(extra if "--rfc5424" in flags else [])],
            input="\n".join(lines) + "\n", text=True, check=True, timeout=TIMEOUT_S,
        )  # fmt: skip
        for line in lines:
            sent[line] = (f"app{i}", flags)
    records = wait_records(proc, "syslog", len(sent))
    messages = [r["fields"].get("message") for r in records]
    assert sorted(messages) == sorted(sent)  # each once, nothing else
    for r in records:
        app, flags = sent[r["fields"]["message"]]
        f = r["fields"]
        assert (r["source"], f["appname"]) == (app, app)
        assert r["host"] == f["hostname"] and r["host"]
        assert (f["facility"], f["severity"], r["level"]) == (19, 4, "warn")
        if "--rfc5424" in flags:
            assert (f["version"], f["msgid"], f["zoo@32473.tiger"]) == (1, "M1", "hungry")
            assert r["line"].startswith("<156>1 ")
        else:
            assert "version" not in f and r["line"].startswith("<156>")
        assert abs(r["ts"] - time.time_ns()) < 86_400 * 10**9  # its own time (any zone)
    for name in ("udp", "tcp"):
        n = sum(per_run[name] for inp, _ in LOGGER_CASES if inp == name)
        c = wait_counts(proc, name, lambda c, n=n: c["stored"] == n, f"{name} stored")
        assert (c["received"], c["malformed"], c["dropped"]) == (n, 0, 0)
        assert c["bytes"] > 0


# --- garbage -------------------------------------------------------------------------------

GOOD = "<14>1 2024-06-15T12:00:00.000001Z good-host good-app - - - good {}"


class GoodClient:
    """A well-behaved sender on one TCP connection, octet-counted, between the garbage."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.sent = 0

    def send(self, n: int = 5) -> None:
        self.sock.sendall(b"".join(octet(GOOD.format(self.sent + i)) for i in range(n)))
        self.sent += n


def test_garbage_on_tcp_and_udp(inputs_collector: InputsCollector) -> None:
    """Each kind of garbage is counted (malformed, dropped or refused) and logged with its
    sender; a broken octet-counted stream gets a closed connection; the good client's every
    message is stored exactly once."""
    limit = 4096
    proc = inputs_collector(syslog_inputs(max_message_bytes=limit, max_connections=4))
    port, udp_port = proc.input_ports["tcp"], proc.input_ports["udp"]
    good = GoodClient(port)
    good.send()

    def on_new_connection(data: bytes, *, expect_close: bool) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
            s.sendall(data)
            if expect_close:
                assert closed_by_peer(s)
            else:
                s.shutdown(socket.SHUT_WR)  # the end of the stream: what is held is judged
                assert closed_by_peer(s)
        good.send()

    def delta(before: dict[str, float], **want: float) -> dict[str, float]:
        return wait_counts(
            proc,
            "tcp",
            lambda c: all(c[k] - before[k] >= v for k, v in want.items()),
            f"tcp counts to grow by {want}",
        )

    c = counts(proc, "tcp")
    # Not syslog at all (LF-framed): two malformed messages, the connection stays usable.
    on_new_connection(b"hello\nworld\n", expect_close=False)
    c = delta(c, malformed=2)
    # A broken octet-counted stream: closed by the collector.
    on_new_connection(octet(GOOD.format("x")) + b"12345678901 too many digits", expect_close=True)
    c = delta(c, malformed=1, received=1)
    # A stream that ends inside a counted frame (truncated).
    on_new_connection(b"500 <13>1 - h a - - - cut short", expect_close=False)
    c = delta(c, malformed=1)
    # 100 MB messages, counted and LF-framed, each followed by a good message on the same
    # connection: skipped as they arrive (dropped), the next message is stored.
    size, piece = 100 << 20, b"x" * (1 << 20)
    for head, tail in (
        (b"%d " % size, octet(GOOD.format("after-counted"))),
        (b"<13>", b"\n" + GOOD.format("after-lf").encode() + b"\n"),
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
            s.sendall(head)
            for _ in range(size // len(piece)):
                s.sendall(piece)
            s.sendall(tail)
            s.shutdown(socket.SHUT_WR)
            assert closed_by_peer(s)
        c = delta(c, dropped=1, received=1)
    # Random bytes: counted whatever they turn out to be, the input goes on.
    blob = random.Random(18).randbytes(1 << 16)
    before = sum(c[k] for k in ("malformed", "dropped", "received"))
    on_new_connection(blob, expect_close=False)
    wait_counts(
        proc,
        "tcp",
        lambda c: sum(c[k] for k in ("malformed", "dropped", "received")) > before,
        "random bytes counted",
    )
    # Past max_connections (4: the good client and 3 idle ones): closed at once, refused.
    c = counts(proc, "tcp")
    idle = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) for _ in range(3)]
    wait_counts(proc, "tcp", lambda c: c["connections"] == 4, "4 open connections")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as extra:
        assert closed_by_peer(extra)
    c = delta(c, refused=1)
    for s in idle:
        s.close()
    wait_counts(proc, "tcp", lambda c: c["connections"] == 1, "idle connections gone")
    good.send()
    # UDP: a datagram over the limit is dropped, one that is not syslog is malformed.
    u = counts(proc, "udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as d:
        d.sendto(b"<13>" + b"x" * limit, ("127.0.0.1", udp_port))
        d.sendto(b"\x00\xffnot syslog", ("127.0.0.1", udp_port))
        d.sendto(GOOD.format("udp").encode(), ("127.0.0.1", udp_port))
    wait_counts(
        proc,
        "udp",
        lambda c: (
            (c["dropped"] - u["dropped"], c["malformed"] - u["malformed"]) == (1, 1)
            and c["stored"] - u["stored"] == 1
        ),
        "udp garbage counted",
    )

    good.sock.close()
    want = {f"good {i}" for i in range(good.sent)} | {"good after-counted", "good after-lf"}
    want |= {"good x", "good udp"}
    records = wait_for(
        lambda: (
            (rs := stored(proc, "syslog"))
            and want <= {r["fields"].get("message") for r in rs}
            and rs
        ),
        TIMEOUT_S,
        "every good message",
    )
    goods = [r["fields"]["message"] for r in records if r["host"] == "good-host"]
    assert sorted(goods) == sorted(want)  # each exactly once
    assert all(r["source"] == "good-app" for r in records if r["host"] == "good-host")
    log = proc.log.read_text()
    assert "input tcp: " in log and "from 127.0.0.1" in log  # the sender, in the complaint
    assert "Traceback" not in log


# --- TLS -----------------------------------------------------------------------------------


def test_tls_both_framings_and_plaintext_refused(
    inputs_collector: InputsCollector, tmp_path: Path
) -> None:
    """A Python TLS client sends LF-framed and octet-counted messages; plaintext on the TLS
    port gets a closed connection; the TLS clients are served before and after."""
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    extra = f'[tls]\ncert = "{certs["cert"]}"\nkey = "{certs["key"]}"\n'
    proc = inputs_collector(
        [{"type": "syslog", "name": "tls", "protocol": "tls", "listen": "127.0.0.1:0"}],
        extra,
        ca=certs["ca"],
    )
    port = proc.input_ports["tls"]
    client = ssl.create_default_context(cafile=str(certs["ca"]))

    def send_tls(payload: bytes) -> None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as s,
        ):
            s.sendall(payload)

    lf = [f"<13>Jun 15 12:00:00 tls-host lfapp[9]: lf {i}" for i in range(20)]
    send_tls("".join(m + "\n" for m in lf).encode())
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as plain:
        plain.sendall(octet(GOOD.format("plaintext")) * 10)
        assert closed_by_peer(plain)
    wait_counts(proc, "tls", lambda c: c["refused"] == 1, "the plaintext client refused")
    counted = [GOOD.format(f"tls {i}") for i in range(20)]
    send_tls(b"".join(octet(m + "\n") for m in counted))  # rsyslog's counted newline
    records = wait_records(proc, "syslog", 40)
    assert sorted(r["line"] for r in records) == sorted(lf + counted)
    assert {(r["host"], r["source"]) for r in records} == {
        ("tls-host", "lfapp"),
        ("good-host", "good-app"),
    }
    c = wait_counts(proc, "tls", lambda c: c["stored"] == 40, "40 stored")
    assert c["received"] == 40


# --- shutdown ------------------------------------------------------------------------------


def test_sigterm_stores_what_was_received(inputs_collector: InputsCollector) -> None:
    """Records still lingering (linger_ms = 60 s) when the collector is told to stop are
    appended before it exits, and found after a restart."""
    proc = inputs_collector(syslog_inputs(linger_ms=60_000))
    with socket.create_connection(("127.0.0.1", proc.input_ports["tcp"])) as s:
        s.sendall(b"".join(octet(GOOD.format(f"linger {i}")) for i in range(100)))
        wait_counts(proc, "tcp", lambda c: c["received"] == 100, "100 received")
        assert stored(proc, "syslog") == []  # still lingering
        assert proc.stop(signal.SIGTERM) == 0
    proc.start()
    records = stored(proc, "syslog")
    assert sorted(r["fields"]["message"] for r in records) == sorted(
        f"good linger {i}" for i in range(100)
    )
