"""An aiohttp application's listening socket: aiohttp's protocol for each connection, at most
``max_connections`` of them at once (the HTTP API's ``[api]``; an HTTP input's own limit).

aiohttp has no connection limit, and without one a few thousand idle connections take every
file descriptor, after which neither the API nor the ingest port can accept anything (seen:
``/healthz`` timing out, 85,000 accept errors logged in 25 s). Past the limit a new connection
is answered ``503`` with ``Retry-After`` and closed at once, so it holds a descriptor for
microseconds. Connections that hold a slot without using it are closed by aiohttp's keep-alive
timer, which also runs while a request's headers are still arriving (``[api] idle_timeout_s``,
given to the ``AppRunner``), and by ``stream.send`` for clients that stop reading.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

from collector.config import ApiSettings
from wharf.errors import Unavailable, error_body

log = logging.getLogger(__name__)

# Refusals are logged at most this often (with the count since the last line).
_LOG_EVERY_S: Final = 10.0


def _busy_answer(limit: int, setting: str) -> bytes:
    body = msgspec.json.encode(
        error_body(
            Unavailable(
                f"the collector has {limit} HTTP connections open, its limit "
                f"({setting}): try again shortly"
            )
        )
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refused(asyncio.Protocol):
    """A connection past the limit: the 503, then close (whatever the client sends is ignored)."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self._answer)
        transport.close()


class _Gate:
    """The protocol factory: aiohttp's handler, or ``_Refused`` past the limit."""

    def __init__(
        self,
        server: web.Server,
        limit: int,
        setting: str,
        on_refused: Callable[[], None] | None,
    ) -> None:
        self.server = server
        self.limit = limit
        self.setting = setting
        self.on_refused = on_refused
        self.answer = _busy_answer(limit, setting)
        self.refused_since_log = 0
        self.logged_at = 0.0

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.server.connections) < self.limit:
            return self.server()
        if self.on_refused is not None:
            self.on_refused()
        self.refused_since_log += 1
        now = time.monotonic()
        if now - self.logged_at >= _LOG_EVERY_S:
            log.warning(
                "HTTP connection limit (%s = %d) reached: %d connections refused with 503",
                self.setting,
                self.limit,
                self.refused_since_log,
            )
            self.logged_at, self.refused_since_log = now, 0
        return _Refused(self.answer)


class Listening:
    """The API application served on one socket (``serve``)."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server) -> None:
        self.runner = runner
        self.server = server
        self.port = int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, then end the application (its streams and connections)."""
        self.server.close()
        await self.runner.cleanup()


async def serve(
    app: web.Application,
    settings: ApiSettings,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 60.0,
    on_refused: Callable[[], None] | None = None,
    setting: str = "[api] max_connections",
    server_options: Mapping[str, Any] | None = None,
) -> Listening:
    """Serve ``app`` on ``host:port`` (0: a free port, see ``Listening.port``) with the limits
    of ``settings`` (``[api]``, or an input's, whose name ``setting`` gives in the 503).
    ``server_options`` are more keywords for aiohttp's connection handler (an HTTP input
    passes its ``logger``, where aiohttp reports what it could not parse, and
    ``auto_decompress=False`` to inflate bodies within its own bounds)."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        # aiohttp's timer runs from the connection's start and between requests, and closes a
        # connection whose request is still incomplete when it fires (slow headers).
        keepalive_timeout=settings.idle_timeout_s,
        **(server_options or {}),
    )
    await runner.setup()
    server = runner.server
    assert server is not None
    try:
        sock = await asyncio.get_running_loop().create_server(
            _Gate(server, settings.max_connections, setting, on_refused),
            host,
            port,
            ssl=ssl_context,
            ssl_handshake_timeout=settings.idle_timeout_s if ssl_context is not None else None,
            reuse_address=True,
        )
    except BaseException:
        await runner.cleanup()
        raise
    return Listening(runner, sock)
