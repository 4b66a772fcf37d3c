"""Ports for servers under test, without the bind-close-rebind race.

Almost every server in the tests binds port 0 itself and reports the port it got: the
in-process servers read it off their socket, ``wharf collector run`` logs it (see
``collector.py``) and a shipper's metrics port is read from ``/proc`` (``listening_ports``).

A few tests need one port for longer than one process lives: a collector restarted after
SIGKILL that a running client must find again at the same address, a client started before
its server, an address that must stay unanswered after its server stopped, or a script that
takes fixed addresses. For them, ``reserve_port()`` hands out a port that nobody else gets:

- it lies *below* the kernel's ephemeral range (``net.ipv4.ip_local_port_range``), from which
  every ``bind(port 0)`` and every outgoing connection takes its port, so the kernel never
  gives it to anyone, in this run or another;
- an exclusive ``flock`` on a file named after the port, held until ``release()`` (or until
  this process dies: the kernel drops the lock), keeps every other test, xdist worker and
  concurrent test run on this machine away from it;
- a trial bind skips a port that a program outside the tests happens to use.

A reservation ends with ``release()``, or with the test that made it (``children.py``).
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import IO

from tests.harness.children import track, untrack

LOCKS = Path(tempfile.gettempdir()) / "wharf-test-ports"
# How many ports below the ephemeral range to draw from: ample for every test of every
# concurrent run (each holds at most two), and far above the well-known ports.
RESERVED_SPAN = 8192
LOWEST = 1024


def _reserved_range() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    if low - LOWEST >= RESERVED_SPAN // 2:
        return range(max(LOWEST, low - RESERVED_SPAN), low)
    return range(high + 1, 65536)  # a range reaching down to 1024: take the ports above it


class ReservedPort:
    """A loopback port that only its holder uses, until ``release()``."""

    def __init__(self, port: int, lock: IO[bytes]) -> None:
        self.port = port
        self._lock: IO[bytes] | None = lock
        track(self)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None
        untrack(self)

    close = release

    def __repr__(self) -> str:
        state = "held" if self._lock is not None else "released"
        return f"ReservedPort({self.port}, {state})"


def reserve_port() -> ReservedPort:
    """A port on 127.0.0.1 outside the ephemeral range, locked for this process (see above)."""
    LOCKS.mkdir(exist_ok=True)
    ports = _reserved_range()
    start = random.randrange(len(ports))
    for i in range(len(ports)):
        port = ports[(start + i) % len(ports)]
        lock = (LOCKS / str(port)).open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()  # another test holds it
            continue
        if _bindable(port):
            return ReservedPort(port, lock)
        lock.close()
    raise AssertionError(f"no free port in {ports}")


def _bindable(port: int) -> bool:
    # Without SO_REUSEADDR: a port with connections still in TIME_WAIT is skipped too.
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on, read from ``/proc`` (Linux): how a test learns
    the port a child bound as port 0 when the child does not say it."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for row in rows:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
