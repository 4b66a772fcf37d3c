"""sd_notify against real AF_UNIX datagram sockets, as systemd would listen on them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wharf.sdnotify import MAX_MESSAGE_BYTES, monotonic_usec, notify, watchdog_interval_s


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()


def _no_more(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(MAX_MESSAGE_BYTES)


def test_ready_and_status_arrive_as_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert notify("READY=1", "STATUS=tailing 3 files", env={"NOTIFY_SOCKET": path})
    assert sock.recv(MAX_MESSAGE_BYTES) == b"READY=1\nSTATUS=tailing 3 files"
    _no_more(sock)


def test_each_call_is_its_own_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    env = {"NOTIFY_SOCKET": path}
    for line in ("WATCHDOG=1", "RELOADING=1", "STOPPING=1"):
        assert notify(line, env=env)
    assert [sock.recv(MAX_MESSAGE_BYTES) for _ in range(3)] == [
        b"WATCHDOG=1",
        b"RELOADING=1",
        b"STOPPING=1",
    ]


def test_utf8_status(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert notify("STATUS=spool 3 MiB → collector b", env={"NOTIFY_SOCKET": path})
    assert sock.recv(MAX_MESSAGE_BYTES).decode() == "STATUS=spool 3 MiB → collector b"


def test_reads_notify_socket_from_the_process_environment(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1")
    assert sock.recv(MAX_MESSAGE_BYTES) == b"READY=1"


def test_abstract_socket() -> None:
    name = f"wharf-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert notify("READY=1", env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(MAX_MESSAGE_BYTES) == b"READY=1"


def test_a_child_process_notifies_like_the_daemon_would(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    root = Path(__file__).resolve().parents[2]
    code = "from wharf.sdnotify import notify; raise SystemExit(0 if notify('READY=1') else 1)"
    env = {**os.environ, "NOTIFY_SOCKET": path}
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, timeout=60)
    assert sock.recv(MAX_MESSAGE_BYTES) == b"READY=1"


@pytest.mark.parametrize("value", [None, "", "relative/path.sock", "vsock:2:1234"])
def test_without_a_usable_socket_it_is_a_no_op(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    env = {} if value is None else {"NOTIFY_SOCKET": value}
    assert notify("READY=1", env=env) is False
    if value is None:
        assert notify("READY=1") is False


def test_nobody_listening_returns_false(tmp_path: Path) -> None:
    assert notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_a_stream_socket_is_not_a_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "stream.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)
        sock.listen()
        assert notify("READY=1", env={"NOTIFY_SOCKET": path}) is False


@pytest.mark.parametrize("lines", [(), ("READY",), ("STATUS=a\nREADY=1",)])
def test_malformed_lines_are_a_programming_error(lines: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        notify(*lines, env={})


def test_oversized_message_is_rejected_before_sending(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    with pytest.raises(ValueError, match="limit"):
        notify("STATUS=" + "x" * MAX_MESSAGE_BYTES, env={"NOTIFY_SOCKET": path})
    _no_more(sock)


def test_watchdog_half_of_the_interval() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "3"}) == 1.5e-6


def test_watchdog_for_our_pid() -> None:
    env = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval_s(env) == 5.0


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-5"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"},
        {"WATCHDOG_PID": "{pid}"},
    ],
)
def test_no_watchdog(env: dict[str, str]) -> None:
    env = {k: v.format(pid=os.getpid()) for k, v in env.items()}
    assert watchdog_interval_s(env) is None


def test_watchdog_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 2.0


def test_monotonic_usec_moves_forward() -> None:
    first = monotonic_usec()
    assert first > 0
    assert monotonic_usec() >= first


def test_a_listener_that_stops_reading_never_blocks_the_sender(
    listener: tuple[socket.socket, str],
) -> None:
    # The kernel queues only net.unix.max_dgram_qlen (10 by default) datagrams for a reader
    # that does not read; after that a blocking send would hang the daemon's event loop.
    sock, path = listener
    env = {"NOTIFY_SOCKET": path}
    results: list[bool] = []
    sender = threading.Thread(
        target=lambda: results.extend(notify(f"STATUS={i}", env=env) for i in range(1000)),
        daemon=True,
    )
    sender.start()
    sender.join(60)  # a failure detector, not a timing assertion: a blocked send never returns
    assert not sender.is_alive(), "notify() blocked on a full receive queue"
    assert len(results) == 1000
    assert results[0] is True
    assert False in results
    assert sock.recv(MAX_MESSAGE_BYTES) == b"STATUS=0"
