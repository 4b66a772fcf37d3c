"""Hostile clients of a running collector, all at once, each bounded in count and time: what
the soak test (``tests/collector/test_soak.py``) and ``bench/soak.py`` throw at a collector
while a well-behaved shipper and reader use it.

- ``idle_http``: connections that send half a request head and stop (slowloris);
- ``stalled_searches`` / ``stalled_tails``: streamed answers nobody reads;
- ``preauth``: ingest connections that never say HELLO;
- ``partial_frames``: logged-in ingest connections that announce a frame of ~79 MiB, send
  part of it and stop;
- ``regex_searches``: a loop of searches with costly or distinct regular expressions and
  ``where`` expressions full of them (most refused with 400, the rest run).

Sockets are reopened when the collector closes them (its idle timeouts do), until ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Final

from wharf import protocol as wp

# Bytes of a partial frame actually sent (the rest is announced and never comes).
_PARTIAL_SENT: Final = 1 << 20
_PARTIAL_ANNOUNCED: Final = 79 << 20


@dataclass
class Mix:
    """How many of each."""

    idle_http: int = 200
    stalled_searches: int = 8
    stalled_tails: int = 8
    preauth: int = 200
    partial_frames: int = 20
    regex_searches: bool = True


@dataclass
class Tally:
    """What the attackers did and what they got back."""

    opened: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)  # "search 400", "search 200"...

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class Attack:
    """``with Attack(ingest_port, http_port, mix, limit_s):`` hostile clients run in the block
    (and for at most ``limit_s`` seconds)."""

    def __init__(self, ingest_port: int, http_port: int, mix: Mix, limit_s: float = 180) -> None:
        self.ingest_port = ingest_port
        self.http_port = http_port
        self.mix = mix
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_s
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Attack:
        m = self.mix
        plan = [
            ("idle_http", m.idle_http, self._idle_http, True),
            ("stalled_searches", m.stalled_searches, self._stalled_search, False),
            ("stalled_tails", m.stalled_tails, self._stalled_tail, False),
            ("preauth", m.preauth, self._preauth, True),
            ("partial_frames", m.partial_frames, self._partial_frame, True),
        ]
        for name, n, opener, reads in plan:
            if n:
                args = (name, n, opener, reads)
                t = threading.Thread(target=self._hold, args=args, daemon=True)
                self._threads.append(t)
        if m.regex_searches:
            self._threads.append(threading.Thread(target=self._regexes, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _note(self, table: dict[str, int], key: str) -> None:
        with self._lock:
            self.tally.count(table, key)

    # -- holding sockets open -------------------------------------------------------------

    def _hold(self, name: str, n: int, opener: object, reads: bool) -> None:
        """Keep ``n`` sockets made by ``opener`` open; reopen those the collector closed.
        Without ``reads`` nothing is ever read from them (only peeked at)."""
        assert callable(opener)
        socks: list[socket.socket | None] = [None] * n
        try:
            while self._running():
                for i, sock in enumerate(socks):
                    if sock is not None and not _closed(sock, reads):
                        continue
                    if sock is not None:
                        sock.close()
                    socks[i] = None
                    try:
                        socks[i] = opener()
                        self._note(self.tally.opened, name)
                    except OSError:
                        self._note(self.tally.answers, f"{name} refused")
                    if not self._running():
                        break
                self._stop.wait(0.2)
        finally:
            for sock in socks:
                if sock is not None:
                    sock.close()

    def _connect(self, port: int, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket()
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        return sock

    def _sent(self, port: int, data: bytes, rcvbuf: int | None = None) -> socket.socket:
        """A connected socket that has sent ``data`` (closed if the send fails: a socket
        dropped unclosed is a ResourceWarning that fails the test that ran the attack)."""
        sock = self._connect(port, rcvbuf)
        try:
            sock.sendall(data)
        except BaseException:
            sock.close()
            raise
        return sock

    def _idle_http(self) -> socket.socket:
        return self._sent(self.http_port, b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")

    def _stalled_search(self) -> socket.socket:
        return self._sent(self.http_port, b"GET /v1/search HTTP/1.1\r\nHost: x\r\n\r\n", 4096)

    def _stalled_tail(self) -> socket.socket:
        request = b"GET /v1/tail?n=100000 HTTP/1.1\r\nHost: x\r\n\r\n"
        return self._sent(self.http_port, request, 4096)

    def _preauth(self) -> socket.socket:
        return self._connect(self.ingest_port)

    def _partial_frame(self) -> socket.socket:
        sock = self._connect(self.ingest_port)
        try:
            self._login_and_stall(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _login_and_stall(self, sock: socket.socket) -> None:
        conn = wp.Connection(wp.Role.CLIENT)
        sock.sendall(conn.send(wp.Hello(wp.PROTOCOL_VERSION, os.urandom(16), "", "attack")))
        while True:
            event = conn.next_event()
            if event is wp.NEED_DATA:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("closed before WELCOME")
                conn.receive_data(data)
                continue
            break
        if not isinstance(event, wp.Welcome):
            raise ConnectionRefusedError(f"not welcome: {event!r}")
        head = (_PARTIAL_ANNOUNCED).to_bytes(4, "big") + bytes([wp.FrameType.PRODUCE])
        sock.sendall(head + b"\0" * _PARTIAL_SENT)

    # -- costly searches ------------------------------------------------------------------

    def _regexes(self) -> None:
        i = 0
        while self._running():
            i += 1
            queries = [
                [("q", "\\pL{1000}")],
                [("q", f"\\pL{{40}}{i}"), ("limit", "1")],
                [("where", " and ".join(f"a~'\\pL{{40}}{k}'" for k in range(256)))[:4000]],
                [("q", f"(?i)x{i}[a-z]{{2,30}}y"), ("limit", "1")],
            ]
            for params in queries:
                query = urllib.parse.urlencode(params)
                url = f"http://127.0.0.1:{self.http_port}/v1/search?{query}"
                try:
                    with urllib.request.urlopen(url, timeout=30) as resp:
                        resp.read()
                        self._note(self.tally.answers, f"search {resp.status}")
                except urllib.error.HTTPError as exc:
                    exc.close()
                    self._note(self.tally.answers, f"search {exc.code}")
                except OSError as exc:
                    self._note(self.tally.answers, f"search {type(exc).__name__}")
            self._stop.wait(0.1)


def _closed(sock: socket.socket, reads: bool) -> bool:
    """Whether the peer closed ``sock``, never blocking. With ``reads`` what is waiting is read
    and dropped; without, it is only peeked at (a reset still shows)."""
    flags = 0 if reads else socket.MSG_PEEK
    with contextlib.suppress(BlockingIOError, InterruptedError):
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(1 << 16, flags)
                if not data:
                    return True
                if not reads:
                    return False
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        finally:
            sock.setblocking(True)
    return False
