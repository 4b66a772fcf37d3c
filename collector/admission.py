"""What the ingest listener lets in: memory for frames being received, shared by every connection,
and logins per peer address. Plain bookkeeping on the event loop; ``collector.ingest`` applies
it (what a client sees when a limit is reached is in ``config/collector.toml``).

- ``FrameBudget``: a frame holds its whole announced size from the moment its length prefix is
  read until it is complete, so frames that got room can always complete (no two connections
  can each hold half of what both need), and the memory of partial frames across connections
  never passes ``limits.max_buffered_frame_bytes``. A frame that does not fit waits while its
  connection reads nothing more (TCP backpressure); waiting frames get room in arrival order
  among those that fit, so frames that peers announce big and send slowly (or never finish) can
  hold the budget only until their frame deadline, and never hold back a shipper's smaller
  frames behind them (measured: strict first come, first served made `wharf ship` wait 30 s
  per round under 20 such peers).
- ``FrameMeter``: where the frame in progress ends, from the length prefixes alone (the
  protocol core, ``wharf.protocol``, parses frames; this only measures them).
- ``LoginFailures``: failed HELLOs per address as token buckets, so guessing tokens from one
  address runs at a few per minute, not thousands per second.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

# A frame's length prefix: a big-endian u32 counting the bytes after it (type and payload).
_PREFIX: Final = 4
# Addresses whose failures are remembered at most: past it the longest quiet is forgotten (an
# attacker with that many addresses is not slowed by a per-address limit anyway).
_MAX_ADDRESSES: Final = 10_000


class FrameBudget:
    """Bytes reserved by frames being received; frames wait for room in arrival order among
    those that fit."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def __repr__(self) -> str:
        return f"<FrameBudget {self.used}/{self.capacity} waiting={self.waiting}>"

    @property
    def waiting(self) -> int:
        """Frames waiting for room."""
        return len(self._waiters)

    async def acquire(self, size: int) -> None:
        """Reserve ``size`` bytes, waiting for room (cancel the wait to give up)."""
        if self.used + size <= self.capacity:
            self.used += size
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        self._wake()  # a frame larger than the whole budget goes alone, when nothing is held
        try:
            await entry[1]
        except BaseException:
            if entry[1].done() and not entry[1].cancelled():
                self.release(size)  # room came as the wait ended: pass it on
            elif entry in self._waiters:
                self._waiters.remove(entry)
                self._wake()  # the frames behind this one may fit now
            raise

    def release(self, size: int) -> None:
        """Give back ``size`` reserved bytes."""
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        """Room for every waiting frame that fits now, in arrival order (one larger than the
        whole budget goes alone, when nothing is held)."""
        waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        for size, fut in self._waiters:
            if fut.done():  # given up (cancelled) and not yet out of the line
                continue
            if self.used + size <= self.capacity or self.used == 0:
                self.used += size
                fut.set_result(None)
            else:
                waiting.append((size, fut))
        self._waiters = waiting


class FrameMeter:
    """Follows frame boundaries through a connection's bytes (see the module docstring)."""

    __slots__ = ("_head", "_left", "pending")

    def __init__(self) -> None:
        self._head = bytearray()  # a length prefix received in part
        self._left = 0  # bytes of the current frame still to come
        self.pending = 0  # full size of the frame in progress; 0 between frames

    def feed(self, data: bytes) -> None:
        """Account for ``data``, the next bytes received."""
        i, n = 0, len(data)
        while i < n:
            if self._left:
                step = min(self._left, n - i)
                self._left -= step
                i += step
                if not self._left:
                    self.pending = 0
                continue
            step = min(_PREFIX - len(self._head), n - i)
            self._head += data[i : i + step]
            i += step
            if len(self._head) < _PREFIX:
                self.pending = _PREFIX  # a frame has begun
                continue
            length = int.from_bytes(self._head, "big")
            self._head.clear()
            self._left = length
            self.pending = _PREFIX + length if length else 0


def _address_key(host: str) -> str:
    """The unit of a login limit: an IPv4 address, an IPv6 /64 (one host's usual share)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginFailures:
    """Per address, a bucket of ``per_minute`` failed logins, refilled at ``per_minute`` a
    minute: while it is empty, that address's logins are refused without looking at them."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def _tokens(self, key: str) -> float:
        tokens, at = self._buckets.get(key, (float(self.per_minute), 0.0))
        return min(float(self.per_minute), tokens + (self.clock() - at) * self.per_minute / 60)

    def wait_s(self, host: str) -> float:
        """Seconds until ``host`` may try to log in again (0: now)."""
        tokens = self._tokens(_address_key(host))
        return 0.0 if tokens >= 1 else (1 - tokens) * 60 / self.per_minute

    def failed(self, host: str) -> None:
        """Count one failed login of ``host``."""
        key = _address_key(host)
        self._buckets[key] = (self._tokens(key) - 1, self.clock())
        self._buckets.move_to_end(key)
        while len(self._buckets) > _MAX_ADDRESSES:
            self._buckets.popitem(last=False)
