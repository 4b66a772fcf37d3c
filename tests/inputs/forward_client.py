"""What the forward input's tests and benchmark share: messages encoded from the protocol
specification (every mode, EventTime, gzip members), a client over a plain or TLS socket that
does the shared-key handshake, the npm ``fluent-logger`` installed once per machine, and the
input's counters read from ``/metrics``.

The encoders here are written from the specification (Fluentd's "Forward Protocol Specification
v1"), not from ``collector.inputs.fluent_wire``, so the tests check the decoder against the
spec rather than against itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import itertools
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.metrics import INPUT_COUNTERS
from tests.harness import CollectorProcess, wait_for

TIMEOUT_S = 60.0  # deadlines for things to arrive: a broken run fails instead of hanging
SENDER_JS = Path(__file__).with_name("fluent_sender.js")
NPM_PACKAGE = "fluent-logger@3.4.1"  # pinned: the behaviour the tests rely on is this version's


# -- messages, from the specification ----------------------------------------------------------


def event_time(ns: int) -> msgpack.ExtType:
    """EventTime: ext type 0, u32 seconds and u32 nanoseconds, big-endian."""
    return msgpack.ExtType(0, struct.pack(">II", ns // 1_000_000_000, ns % 1_000_000_000))


def pack(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


def message(
    mode: str,
    tag: str,
    events: Sequence[tuple[Any, Any]],
    *,
    chunk: str | None = None,
    members: int = 1,
    option: dict[str, Any] | None = None,
) -> bytes:
    """One message of ``mode`` (Message: exactly one event; CompressedPackedForward: the
    entries gzipped in ``members`` members back to back)."""
    opt: dict[str, Any] = dict(option or {})
    if chunk is not None:
        opt["chunk"] = chunk
    if mode == "Message":
        ((time, record),) = events
        return pack([tag, time, record, opt] if opt else [tag, time, record])
    if mode == "Forward":
        return pack([tag, [[t, r] for t, r in events], opt] if opt else [tag, list(events)])
    entries = [pack([t, r]) for t, r in events]
    if mode == "CompressedPackedForward":
        opt["compressed"] = "gzip"
        cuts = [len(entries) * i // members for i in range(members + 1)]
        blob = b"".join(gzip.compress(b"".join(entries[a:b])) for a, b in itertools.pairwise(cuts))
    else:
        blob = b"".join(entries)
    return pack([tag, blob, opt] if opt else [tag, blob])


def sha512_hex(*parts: bytes) -> str:
    h = hashlib.sha512()
    for part in parts:
        h.update(part)
    return h.hexdigest()


# -- a client from the specification -----------------------------------------------------------


class RawForward:
    """A forward client on a real socket: the handshake when given a key, raw bytes, acks.
    For what real clients never send (garbage) and for exact control of messages."""

    def __init__(
        self,
        port: int,
        *,
        shared_key: str | None = None,
        hostname: str = "raw-client",
        tls: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT_S,
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock: socket.socket = (
            tls.wrap_socket(sock, server_hostname="127.0.0.1") if tls is not None else sock
        )
        self.unpacker = msgpack.Unpacker(raw=False)
        self.pong: list[Any] | None = None
        if shared_key is not None:
            self.pong = self.handshake(shared_key, hostname)

    def handshake(self, shared_key: str, hostname: str, salt: bytes = b"0123456789abcdef") -> Any:
        """HELO in, PING out (with ``shared_key``), the PONG (checked when it accepts)."""
        helo = self.read()
        assert helo[0] == "HELO", helo
        nonce = helo[1]["nonce"]
        nonce_b = nonce if isinstance(nonce, bytes) else nonce.encode()
        digest = sha512_hex(salt, hostname.encode(), nonce_b, shared_key.encode())
        self.send(pack(["PING", hostname, salt, digest, "", ""]))
        pong = self.read()
        assert pong[0] == "PONG", pong
        if pong[1]:
            assert pong[4] == sha512_hex(salt, pong[3].encode(), nonce_b, shared_key.encode())
        return pong

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Any:
        """The next msgpack value the server sends (ack, HELO, PONG)."""
        while True:
            for value in self.unpacker:
                return value
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.unpacker.feed(data)

    def acked(self, data: bytes, chunk: str) -> None:
        """Send a message that carries ``chunk`` and wait for its ack."""
        self.send(data)
        assert self.read() == {"ack": chunk}

    def closed_by_server(self) -> bool:
        """Whether the server closes the connection (read until the end; a reset counts)."""
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the npm client ----------------------------------------------------------------------------


def need_program(program: str) -> str:
    """The path of ``program``; skip without it, except in CI, which installs everything."""
    path = shutil.which(program)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is missing in CI (.ci/run installs it)")
        pytest.skip(f"{program} is not installed")
    return path


def npm_fluent_logger() -> Path:
    """A ``node_modules`` holding the npm fluent-logger: installed once per machine into the
    temporary directory (a lock keeps parallel test workers from installing it twice)."""
    need_program("node")
    npm = need_program("npm")
    name = NPM_PACKAGE.replace("@", "-")
    root = Path(tempfile.gettempdir()) / "wharf-tests-npm" / name
    root.mkdir(parents=True, exist_ok=True)
    modules = root / "node_modules"
    with (root.parent / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (modules / "fluent-logger" / "package.json").exists():
            done = subprocess.run(
                [npm, "install", "--prefix", str(root), "--no-audit", "--no-fund", NPM_PACKAGE],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                why = f"npm install {NPM_PACKAGE} failed: {done.stderr[-2000:]}"
                if os.environ.get("CI"):
                    pytest.fail(why)
                pytest.skip(why)
    return modules


def node_send(
    modules: Path,
    workdir: Path,
    port: int,
    events: Sequence[dict[str, Any]],
    *,
    tag: str = "node",
    options: dict[str, Any] | None = None,
    ca: Path | None = None,
    timeout_ms: int = 30_000,
) -> dict[str, Any]:
    """Run ``fluent_sender.js``: the npm fluent-logger emits ``events`` to ``port``; what it
    reports (``{"ok": N, "errors": [...]}``)."""
    config = workdir / f"node-{os.urandom(4).hex()}.json"
    body: dict[str, Any] = {
        "port": port,
        "tag": tag,
        "options": options or {},
        "events": list(events),
        "timeout_ms": timeout_ms,
    }
    if ca is not None:
        body["ca"] = str(ca)
    config.write_text(json.dumps(body))
    done = subprocess.run(
        [need_program("node"), str(SENDER_JS), str(config)],
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=timeout_ms / 1000 + 30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, f"the node sender printed nothing; stderr: {done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- the collector's view ----------------------------------------------------------------------


def get(proc: CollectorProcess, path: str) -> bytes:
    with urllib.request.urlopen(
        f"{proc.url}{path}", timeout=TIMEOUT_S, context=proc.ssl_context
    ) as resp:
        data: bytes = resp.read()
        return data


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
    proc: CollectorProcess, name: str, check: Any, what: str, timeout: float = TIMEOUT_S
) -> dict[str, float]:
    """Input ``name``'s counts once ``check(counts)`` holds."""
    return wait_for(lambda: c if check(c := counts(proc, name)) else None, timeout, what)


def search(proc: CollectorProcess, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` through the HTTP API (``/v1/search`` without a pattern)."""
    rows = [json.loads(line) for line in get(proc, f"/v1/search?topic={topic}").splitlines()]
    return [r for r in rows if "line" in r]


@contextlib.contextmanager
def raw_clients(port: int, n: int, **kwargs: Any) -> Iterator[list[RawForward]]:
    clients = [RawForward(port, **kwargs) for _ in range(n)]
    try:
        yield clients
    finally:
        for c in clients:
            c.close()
