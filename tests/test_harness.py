"""The harness's own promises: reserved ports are exclusive and never ephemeral, a child's
listening port is read back from /proc, ``wait_for`` returns what it waited for."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

import pytest

from tests.harness import listening_ports, reserve_port, wait_for
from tests.harness.children import LIVE
from tests.harness.ports import LOCKS


def _ephemeral() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_reserved_ports_are_outside_the_ephemeral_range_and_held() -> None:
    first, second = reserve_port(), reserve_port()
    try:
        assert first.port != second.port
        assert first.port not in _ephemeral() and second.port not in _ephemeral()
        # as another test would try
        with (LOCKS / str(first.port)).open("ab") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        first.release()
        with (LOCKS / str(first.port)).open("ab") as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        first.release()
        second.release()
    assert not any(c is first or c is second for c in LIVE)


def test_listening_ports_are_read_back_from_proc() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port in listening_ports(os.getpid())


def test_wait_for_returns_the_value_or_fails_with_the_message() -> None:
    calls = iter([None, 0, "ready"])
    assert wait_for(lambda: next(calls), 5, "a value", step=0.001) == "ready"
    with pytest.raises(AssertionError, match=r"timed out after 0\.01 s waiting for Godot"):
        wait_for(lambda: False, 0.01, "Godot", step=0.001)
