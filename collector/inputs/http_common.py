"""What the HTTP inputs share (OTLP/HTTP logs, Loki push): one POST route served by
``collector.listener.serve``, and every step of a request that is not the protocol's own.

A request goes through the same steps on both inputs, each ending it with the protocol's
error answer (``Refusal``) when it fails:

1. the write token (``[auth] write_tokens``: ``Authorization: Bearer TOKEN``), else 401;
2. the headers: the input's media types and content codings (``check_headers``), else the
   protocol's 415 or 400;
3. the size: a ``Content-Length`` past ``max_message_bytes`` gets 413 before a byte of the body
   is read; a chunked body is cut off at the limit by aiohttp (``client_max_size``), and a
   compressed body is inflated only up to the limit (``gunzip``; Loki's snappy says its length
   first), so a bomb costs ``max_message_bytes`` at most; the records decoded from it may take
   at most ``max_pending_bytes`` in memory (``Decoded.add``), else 413 too;
4. room: the sink's memory (``max_pending_bytes``) must take the body now, else 503 with
   ``Retry-After`` — HTTP clients retry those, and nothing waits in the collector meanwhile;
5. decoding, by the protocol's pure core (bytes in, records or a ``Refusal`` out), on a worker
   thread when the body is large so other connections are served meanwhile;
6. ``Sink.put(records, durable=True)``: the 2xx goes out only once every record is durable; a
   failed append is 503 (retriable) and the client sends the request again.

Counts (``wharf_input_*{input=,type=}``): ``bytes`` as read off the wire, ``received`` the
records handed to the sink (``stored`` once durable), ``malformed`` each undecodable request
and each record the protocol rejected (OTLP partial success, a Loki stream without labels),
``dropped`` each body refused as too large (413), ``refused`` each wrong token, each 503 for
room, and each connection over ``max_connections``. Bytes that are not HTTP at all get
aiohttp's own 400 and a closed connection; ``_ParseErrors`` counts them as ``malformed`` and
logs them (rate-limited) instead of aiohttp's traceback. Every refusal is logged with its
sender through ``ctx.complain``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
import zlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from collector.config import ApiSettings, split_host_port
from collector.inputs.base import InputContext, peer_ip
from collector.inputs.sink import record_size
from collector.listener import Listening, serve
from wharf.errors import DEFAULT_CHALLENGE, WharfError
from wharf.record import Record

log = logging.getLogger("collector.inputs")

# What a client is told to wait before sending again when the sink has no room: an append
# takes milliseconds, so the next second usually finds room (the header takes whole seconds).
RETRY_AFTER_S: Final = 1
# Bodies up to this size are decoded on the event loop (a thread hand-off costs more than
# decoding them); larger ones on a worker thread, so a 16 MiB request does not stall the
# other connections and inputs for the second its records take to build.
DECODE_INLINE_BYTES: Final = 64 << 10
# Requests still being answered when the input closes get this long to finish (their
# appends take milliseconds; a client that stopped reading does not hold the shutdown).
SHUTDOWN_TIMEOUT_S: Final = 10.0
# gzip is inflated in steps of this much output, so a bomb stops one step past the limit.
_INFLATE_STEP: Final = 1 << 20


class Refusal(Exception):
    """A request answered with an error: ``status``, the message (what and why, sent to the
    client in the protocol's error body), the counter it goes to and extra headers."""

    status: ClassVar[int] = 400
    counter: ClassVar[str | None] = "malformed"

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body's."""
        return {}


class BadRequest(Refusal):
    """The body or a header cannot be decoded (400: the client must not send it again)."""


class UnsupportedMediaType(Refusal):
    """A ``Content-Type`` or ``Content-Encoding`` the input does not speak (415)."""

    status = 415


class TooLarge(Refusal):
    """The body, or what it inflates to, is larger than ``max_message_bytes`` (413)."""

    status = 413
    counter = "dropped"


class Unauthenticated(Refusal):
    """No write token, or one that matches none (401, with the challenge)."""

    status = 401
    counter = "refused"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": DEFAULT_CHALLENGE}


class Busy(Refusal):
    """The sink has no room for the request now (503 with ``Retry-After``: send it again)."""

    status = 503
    counter: ClassVar[str | None] = "refused"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_S)}


class StoreFailed(Busy):
    """The append failed (a full disk, an offline partition): 503, sent again later. Not
    counted here: the sink logs the failure, and nothing was taken."""

    counter: ClassVar[str | None] = None


@dataclass(frozen=True, slots=True)
class Body:
    """What a protocol's pure decoder is given of one request."""

    data: bytes  # the body as received (still compressed)
    content_type: str  # the media type, lower case, without parameters ("" when absent)
    content_encoding: str  # lower case, "" when absent
    peer: str  # the sender's IP address: the records' host when the message names none
    received_ns: int  # arrival time: the records' ts when the message has none
    limit: int  # max_message_bytes: the body before and after decompressing
    # max_pending_bytes: what the request's records may take in memory (``record_size``)
    max_decoded: int = 1 << 62

    def decoded(self) -> Decoded:
        """An empty result, bounded by ``max_decoded``."""
        return Decoded(max_charge=self.max_decoded)


@dataclass(slots=True)
class Decoded:
    """A decoded request: the records to store (and what they take in memory, as the sink
    charges them), and how many the protocol rejected (with why, for the client and the
    log)."""

    records: list[Record] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""
    charge: int = 0
    max_charge: int = 1 << 62

    def add(self, record: Record) -> None:
        """One more record; ``TooLarge`` once they take more than ``max_charge``. A request
        can be small and its records large (stream labels or resource attributes repeated in
        every record's fields); checking as they are built bounds the memory and the time a
        request can cost to what the sink could ever hold."""
        self.charge += record_size(record)
        if self.charge > self.max_charge:
            raise TooLarge(
                f"the request's records take more than {self.max_charge} bytes in memory "
                f"(this input's max_pending_bytes) after {len(self.records)} of them: "
                "send smaller requests"
            )
        self.records.append(record)

    def reject(self, n: int, why: str) -> None:
        """Count ``n`` rejected records; the first reason is kept."""
        self.rejected += n
        if not self.reason:
            self.reason = why


def gunzip(data: bytes, limit: int) -> bytes:
    """``data`` inflated (gzip, every member), at most ``limit`` bytes of it: ``TooLarge``
    past that, ``BadRequest`` when it is not gzip."""
    out: list[bytes] = []
    size = 0
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=31)
            chunk = inflater.decompress(rest, _INFLATE_STEP)
            while True:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the body inflates to more than {limit} bytes (gzip)")
                out.append(chunk)
                if inflater.eof:
                    break
                tail = inflater.unconsumed_tail  # input held back by the step's bound
                chunk = inflater.decompress(tail, _INFLATE_STEP)
                if not chunk and len(inflater.unconsumed_tail) == len(tail):
                    raise BadRequest("the gzip body is truncated")  # no input, no progress
            rest = inflater.unused_data
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid gzip: {exc}") from None
    return b"".join(out)


def media_type(value: str | None) -> str:
    """The media type of a ``Content-Type`` value, lower case, without its parameters."""
    return (value or "").partition(";")[0].strip().lower()


class _ParseErrors(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's logger for one input's connections. aiohttp answers what is not HTTP with 400
    and a closed connection, and logs it with a traceback; here it is counted as
    ``malformed`` and logged with its sender, rate-limited. Anything else (our own bug) goes
    to the log as it is."""

    def __init__(self, ctx: InputContext) -> None:
        super().__init__(log, {})
        self.ctx = ctx

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            self.ctx.counters.add("malformed")
            peer = str(args[0]) if args else "?"
            self.ctx.complain(peer, f"not an HTTP request ({exc.message or type(exc).__name__})")
            return
        if level >= logging.WARNING:  # aiohttp's debug chatter stays out
            super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"input {self.ctx.label}: {msg}", kwargs


class HttpInput(abc.ABC):
    """An input served over HTTP on one POST route (``path``); the protocol gives its header
    checks, its pure decoder and its answers."""

    path: ClassVar[str]

    def __init__(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.limit = ctx.settings.message_limit
        self._listening: Listening | None = None
        self._reading: set[asyncio.Task[Any]] = set()  # requests whose body is still coming

    # -- what the protocol gives ---------------------------------------------------------------

    @abc.abstractmethod
    def check_headers(self, content_type: str, content_encoding: str) -> None:
        """Raise the protocol's ``Refusal`` for a media type or coding it does not speak."""

    @abc.abstractmethod
    def decode(self, body: Body) -> Decoded:
        """The records of a request (pure: no I/O, safe on a worker thread), or a
        ``Refusal``."""

    @abc.abstractmethod
    def accepted(self, decoded: Decoded, content_type: str) -> web.Response:
        """The protocol's success answer (its records are durable)."""

    @abc.abstractmethod
    def refused(self, refusal: Refusal, content_type: str) -> web.Response:
        """The protocol's error answer for ``refusal`` (status and headers are added)."""

    # -- the listener --------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen on ``listen`` (HTTP, or HTTPS with the collector's [tls]); the bound port."""
        settings = self.ctx.settings
        # aiohttp refuses to read a body past this (413): the bound on chunked bodies.
        app = web.Application(client_max_size=self.limit)
        app.router.add_post(self.path, self._handle)
        host, port = split_host_port(settings.listen_address, f"{settings.label} listen")
        self._listening = await serve(
            app,
            ApiSettings(max_connections=settings.max_connections),
            host,
            port,
            ssl_context=self.ctx.ssl_context,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            on_refused=lambda: self.ctx.counters.add("refused"),
            setting=f"inputs[{settings.label}].max_connections",
            # Bodies arrive as sent: gzip is inflated here, within max_message_bytes, and
            # "bytes" counts what came off the wire.
            server_options={"logger": _ParseErrors(self.ctx), "auto_decompress": False},
        )
        server = self._listening.runner.server
        assert server is not None
        self.ctx.counters.count_connections(lambda: len(server.connections))
        return self._listening.port

    async def close(self) -> None:
        """Stop accepting; requests being decoded or stored finish (their records reach the
        sink, their clients their answer). A request whose body is still arriving ends now
        without an answer (its client sends it again): aiohttp ignores what arrives on a
        connection once it is closing, so that body would never be complete and the request
        would only hold the shutdown for ``SHUTDOWN_TIMEOUT_S``."""
        if self._listening is not None:
            self._listening.server.close()
            for task in self._reading:
                task.cancel()
            await self._listening.close()
            self._listening = None

    # -- one request ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        content_type = media_type(request.headers.get("Content-Type"))
        try:
            decoded = await self._receive(request, content_type)
        except Refusal as refusal:
            if refusal.counter is not None:
                self.ctx.counters.add(refusal.counter)
            self.ctx.complain(request.remote or "?", f"{refusal.status}: {refusal}")
            response = self.refused(refusal, content_type)
            response.set_status(refusal.status)
            response.headers.update(refusal.headers())
            if not request.content.at_eof():
                response.force_close()  # rather than read the rest of a body nobody wants
            return response
        if decoded.rejected:
            self.ctx.counters.add("malformed", decoded.rejected)
            self.ctx.complain(
                request.remote or "?", f"{decoded.rejected} records rejected: {decoded.reason}"
            )
        return self.accepted(decoded, content_type)

    async def _receive(self, request: web.Request, content_type: str) -> Decoded:
        ctx = self.ctx
        if not ctx.tokens.check(request.headers.get("Authorization")):
            raise Unauthenticated(
                "a write token is required (Authorization: Bearer TOKEN)"
                if "Authorization" not in request.headers
                else "the token is not a write token of this collector"
            )
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        self.check_headers(content_type, encoding)
        length = request.content_length
        if length is not None and length > self.limit:
            raise TooLarge(
                f"the body is {length} bytes, over this input's max_message_bytes ({self.limit})"
            )
        if not ctx.sink.has_room(length or 0):
            raise Busy("the collector is behind storing what it received: retry shortly")
        reader = asyncio.current_task()
        assert reader is not None
        self._reading.add(reader)
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise TooLarge(
                f"the body is over this input's max_message_bytes ({self.limit})"
            ) from None
        except (ConnectionError, HttpProcessingError) as exc:
            raise BadRequest(f"the body ended before it was complete ({exc})") from None
        finally:
            self._reading.discard(reader)
        ctx.counters.add("bytes", len(data))
        body = Body(
            data=data,
            content_type=content_type,
            content_encoding=encoding,
            peer=peer_ip(request.remote),
            received_ns=time.time_ns(),
            limit=self.limit,
            max_decoded=ctx.sink.budget.capacity,
        )
        if len(data) <= DECODE_INLINE_BYTES:
            decoded = self.decode(body)
        else:
            decoded = await asyncio.get_running_loop().run_in_executor(None, self.decode, body)
        if decoded.records:
            await self._store(decoded)
        return decoded

    async def _store(self, decoded: Decoded) -> None:
        ctx = self.ctx
        if not ctx.sink.has_room(decoded.charge):  # at most the whole budget (Decoded.add)
            raise Busy("the collector is behind storing what it received: retry shortly")
        ctx.counters.add("received", len(decoded.records))
        try:
            await ctx.sink.put(decoded.records, durable=True)
        except WharfError as exc:
            raise StoreFailed(f"the records could not be stored: {exc}") from None
