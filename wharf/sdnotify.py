"""The systemd notify protocol (``sd_notify(3)``), spoken directly: no libsystemd, no dependency.

A service started with ``Type=notify`` finds a datagram socket in ``$NOTIFY_SOCKET`` and sends
newline-separated ``KEY=VALUE`` assignments to it: ``READY=1`` once it serves, ``WATCHDOG=1``
at least every ``$WATCHDOG_USEC`` microseconds when ``WatchdogSec=`` is set, ``STATUS=...`` for
``systemctl status``, ``RELOADING=1`` and ``STOPPING=1`` around reloads and shutdown.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a cheap no-op, so the daemons (the shipper
and the collector, both ``Type=notify`` units) call these unconditionally. It lives in the core,
not in either daemon's package, because both use it and neither may import the other.

Usage::

    notify("READY=1", "STATUS=tailing 12 files")
    period = watchdog_interval_s()  # None: no watchdog requested for us
    ...
    notify("WATCHDOG=1")  # every `period` seconds, from the loop that does the real work
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = ["monotonic_usec", "notify", "watchdog_interval_s"]

# The kernel rejects a datagram larger than the socket's send buffer (EMSGSIZE), and systemd
# reads at most one page-sized-ish message per notification (it allocates ~4 KiB plus fds);
# STATUS text is for a human in `systemctl status`, so cap the whole message well below that.
MAX_MESSAGE_BYTES = 4096

# systemd itself does not act on a watchdog period under 1 ms meaningfully, and a zero or
# negative value means "disabled" (sd_watchdog_enabled(3) treats 0 as not set).
_MIN_WATCHDOG_USEC = 1


def _address(value: str) -> str | bytes | None:
    """The socket address for a ``$NOTIFY_SOCKET`` value, or None if it is not one we support.

    ``@name`` is a Linux abstract socket: the address is the name with a leading NUL byte.
    An absolute path is a filesystem socket. systemd >= 254 also allows ``vsock:CID:PORT``
    (for VMs); neither daemon runs under that, so it is treated as unsupported.
    """
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def notify(*lines: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``, ...) to systemd as one datagram.

    Returns True if the datagram was sent, False if there is no notify socket (not running
    under systemd, or the variable is malformed) or the send failed. Never blocks (safe to call
    on the event loop) and never raises for I/O errors: a failed status update must not take
    the daemon down; a missed ``WATCHDOG=1`` is systemd's to act on.

    Raises ``ValueError`` for a programming error: no lines, a line without ``=``, a line with
    a newline inside, or a message over ``MAX_MESSAGE_BYTES``.
    """
    if not lines:
        raise ValueError("notify() needs at least one KEY=VALUE line")
    for line in lines:
        if "=" not in line or "\n" in line:
            raise ValueError(f"not a single KEY=VALUE line: {line!r}")
    message = "\n".join(lines).encode()
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValueError(f"notify message is {len(message)} bytes, limit {MAX_MESSAGE_BYTES}")

    environ = os.environ if env is None else env
    address = _address(environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # One datagram, all or nothing: systemd parses each datagram on its own.
            # MSG_DONTWAIT: when the receiver's queue is full (net.unix.max_dgram_qlen, 10 by
            # default: a listener that stopped reading), a blocking send would wait forever
            # and freeze the event loop that calls us, signal handling included. A dropped
            # notification is the lesser harm.
            sock.sendto(message, socket.MSG_DONTWAIT, address)
    except OSError:
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``, in seconds, or None when no watchdog applies to us.

    systemd sets ``$WATCHDOG_USEC`` to the ``WatchdogSec=`` timeout; sd_watchdog_enabled(3)
    recommends pinging at half of it, so one late ping is not fatal. ``$WATCHDOG_PID``, when
    set, names the process the watchdog is meant for: a child that inherited the environment
    must not think it is being watched.
    """
    environ = os.environ if env is None else env
    pid = environ.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    raw = environ.get("WATCHDOG_USEC")
    if raw is None:
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec < _MIN_WATCHDOG_USEC:
        return None
    return usec / 2 / 1_000_000


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the unit of ``MONOTONIC_USEC=`` in a reload notification.

    systemd >= 253 with ``Type=notify-reload`` wants ``RELOADING=1`` together with
    ``MONOTONIC_USEC=<now>`` so it can tell this reload from an earlier one.
    """
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
