"""Where ``wharf replay`` delivers its batches.

Every sink has three methods. ``deliver(batch)`` returns only once the sink accepted the batch
(what "accepted" means is per sink, below); ``sync()`` makes what was accepted durable before a
consumer-group commit; ``close()`` ends cleanly. A sink that cannot take a batch for good raises
``SinkError`` (one line, for the user).

    stdout      written and flushed to the pipe or terminal
    file:PATH   appended and flushed; fsync()ed before every group commit and at the end
    http(s)     a 2xx answer to the POST of the batch (NDJSON). Connection errors, timeouts,
                408, 429 and 5xx are retried with exponential backoff and jitter (Retry-After
                honoured); any other answer is fatal. Every request carries an
                ``Idempotency-Key`` that stays the same for the same records, so a receiver
                can drop a batch it already took.
    tcp         handed to the kernel in full (plain TCP has no acknowledgement: a receiver that
                dies may lose what its socket buffer held); a broken connection is re-opened
                and the whole batch sent again
    wharf://    acknowledged as durable by the collector. Each record carries its source as
                ``replay:{topic}:{partition}:{host}`` with its source offset, and the producer id
                is derived from the source and destination, so a batch sent twice (a retry, a
                resumed replay) is stored once: exactly once into the other topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol
from urllib.parse import urlsplit

from cli.replay import SinkBatch, SinkSpec, backoff_delay, parse_retry_after
from wharf.api import Hit
from wharf.errors import WharfError

Notify = Callable[[str], None]

# A request that gets no answer for this long is treated as failed and retried.
HTTP_TIMEOUT_S: Final = 30.0
# Retry delays grow from this base to this cap (before jitter).
RETRY_BASE_S: Final = 0.1
RETRY_CAP_S: Final = 10.0
# A Retry-After longer than this is shortened to it: a misconfigured receiver must not park
# the replay for hours.
MAX_RETRY_AFTER_S: Final = 120.0
# Attempts per batch, on top of the time limit, so the retry loop is bounded either way.
MAX_ATTEMPTS: Final = 10_000
# Of a refusal's body, this much goes into the error message.
_SNIPPET: Final = 200
# Answer bodies are read up to this size (to keep the connection reusable); larger ones close it.
_MAX_ANSWER: Final = 1 << 20
# After the last tcp batch: how long to wait for the receiver to close its side, which says it
# read everything.
TCP_LINGER_S: Final = 2.0
USER_AGENT: Final = "wharf-replay/0.1"
# Namespace of the wharf:// sink's producer ids (uuid5 of source and destination).
_PRODUCER_NS: Final = uuid.UUID("6f1e4b52-8d0c-4f7e-9a51-1c3c6f0e2d77")


class SinkError(WharfError):
    """The sink cannot take the batch; the message is the one line shown to the user."""


class SinkClosed(SinkError):
    """The reader went away (a closed pipe): stop quietly, as grep does."""


class Sink(Protocol):
    """See the module docstring."""

    description: str

    def deliver(self, batch: SinkBatch) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class StdoutSink:
    """Lines to standard output, flushed per batch so a reader sees them as they come."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self.description = "stdout"
        self._out = out if out is not None else sys.stdout.buffer

    def deliver(self, batch: SinkBatch) -> None:
        try:
            self._out.write(b"".join(batch.lines))
            self._out.flush()
        except BrokenPipeError:
            # What the buffer still holds must not fail again at interpreter exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._out.fileno())
            os.close(devnull)
            raise SinkClosed("stdout was closed") from None

    def sync(self) -> None:
        """Nothing to do: every batch is flushed."""

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._out.flush()


class FileSink:
    """Lines appended to a file (created if missing)."""

    def __init__(self, path: str, notify: Notify) -> None:
        self.path = Path(path).expanduser()
        self.description = f"file {self.path}"
        self._f = self.path.open("ab")
        self._dirty = False
        if self._f.tell() > 0 and not self._ends_with_newline():
            # A replay killed in the middle of a write leaves a torn last line; start ours on
            # a line of its own rather than glue the next record onto it.
            notify(f"{self.path} did not end with a newline (an interrupted write?); adding one")
            self._f.write(b"\n")
            self._dirty = True

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def deliver(self, batch: SinkBatch) -> None:
        self._f.write(b"".join(batch.lines))
        self._f.flush()
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._f.fileno())
            self._dirty = False

    def close(self) -> None:
        if self._f.closed:
            return
        try:
            self._f.flush()
            self.sync()
        finally:
            self._f.close()


class HttpSink:
    """NDJSON batches POSTed to a URL, retried until accepted or refused for good."""

    RETRY_STATUSES: Final = frozenset({408, 429})

    def __init__(
        self,
        url: str,
        *,
        topic: str,
        headers: list[tuple[str, str]],
        notify: Notify,
        give_up_s: float,
        timeout_s: float = HTTP_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.description = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._topic = topic
        self._headers = {
            "Content-Type": "application/x-ndjson",
            "User-Agent": USER_AGENT,
            **dict(headers),
        }
        self._notify = notify
        self._give_up_s = give_up_s
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._conn: http.client.HTTPConnection | None = None
        self.retries = 0

    def deliver(self, batch: SinkBatch) -> None:
        body = b"".join(batch.lines)
        headers = {
            **self._headers,
            "Idempotency-Key": batch.idempotency_key(self._topic),
            "X-Wharf-Records": str(len(batch)),
        }
        started = time.monotonic()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wait: float | None = None
            try:
                status, reason, retry_after, text = self._post(body, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._reset()
                why = _describe_io_error(exc)
            else:
                if 200 <= status < 300:
                    return
                why = f"HTTP {status} {reason}".strip()
                if status not in self.RETRY_STATUSES and status < 500:
                    detail = f": {text}" if text else ""
                    raise SinkError(f"the sink {self.url} refused a batch: {why}{detail}")
                after = parse_retry_after(retry_after)
                if after is not None:
                    wait = min(after, MAX_RETRY_AFTER_S)
            delay = (
                wait if wait is not None else backoff_delay(attempt - 1, RETRY_BASE_S, RETRY_CAP_S)
            )
            elapsed = time.monotonic() - started
            if elapsed + delay > self._give_up_s:
                raise SinkError(
                    f"the sink {self.url} did not take a batch in {elapsed:.0f} s "
                    f"({attempt} attempts; last: {why})"
                )
            self.retries += 1
            self._notify(f"sink {self.url}: {why}; retrying in {delay:.1f} s")
            self._sleep(delay)
        raise SinkError(f"the sink {self.url} did not take a batch in {MAX_ATTEMPTS} attempts")

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, str | None, str]:
        conn = self._conn
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._conn = cls(self._host, self._port, timeout=self._timeout_s)
        conn.request("POST", self._target, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(_MAX_ANSWER)
        if not resp.isclosed() or resp.will_close:
            self._reset()  # an answer too long to drain, or the server ends the connection
        text = data.decode("utf-8", "replace").strip().replace("\n", " ")[:_SNIPPET]
        return resp.status, resp.reason, resp.getheader("Retry-After"), text

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def sync(self) -> None:
        """Nothing to do: a 2xx answer is the receiver's acceptance."""

    def close(self) -> None:
        self._reset()


class TcpSink:
    """Lines on one TCP connection, re-opened (and the batch resent) when it breaks."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        notify: Notify,
        give_up_s: float,
        timeout_s: float = HTTP_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host, self.port = host, port
        self.description = f"tcp://{host}:{port}"
        self._notify = notify
        self._give_up_s = give_up_s
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._sock: socket.socket | None = None

    def deliver(self, batch: SinkBatch) -> None:
        data = b"".join(batch.lines)
        started = time.monotonic()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if self._sock is None:
                    self._sock = socket.create_connection(
                        (self.host, self.port), timeout=self._timeout_s
                    )
                self._sock.sendall(data)
                return
            except OSError as exc:
                self._drop()
                why = _describe_io_error(exc)
            delay = backoff_delay(attempt - 1, RETRY_BASE_S, RETRY_CAP_S)
            elapsed = time.monotonic() - started
            if elapsed + delay > self._give_up_s:
                raise SinkError(
                    f"the sink {self.description} did not take a batch in {elapsed:.0f} s "
                    f"({attempt} attempts; last: {why})"
                )
            self._notify(f"sink {self.description}: {why}; retrying in {delay:.1f} s")
            self._sleep(delay)
        raise SinkError(f"the sink {self.description} did not take a batch")

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def sync(self) -> None:
        """Nothing to do: TCP has no acknowledgement beyond the send."""

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + TCP_LINGER_S
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                if not sock.recv(4096):
                    break
        except OSError:
            pass
        finally:
            self._drop()


class WharfSink:
    """Records re-shipped into a topic through the native protocol (``shipper.transport``).

    Each delivered batch is split by source partition and host (one protocol batch each, keyed
    by host, so the destination partitions by host as a shipper would), sent together, and
    accepted when every part is acknowledged.
    """

    def __init__(
        self,
        address: str,
        topic: str,
        *,
        src_topic: str,
        source_url: str,
        token: str,
        give_up_s: float,
    ) -> None:
        from shipper.transport import Producer  # noqa: PLC0415 (lazy: only the wharf sink needs the shipper transport and the batch codec)

        # The transport logs each reconnect attempt; a failure reaches the user as one line.
        logging.getLogger("shipper").setLevel(logging.ERROR)
        self.description = f"wharf://{address}/{topic}"
        self.topic = topic
        self.src_topic = src_topic
        self.duplicates = 0
        self._give_up_s = give_up_s
        self._seq = 0
        self._producer_id = uuid.uuid5(
            _PRODUCER_NS, f"{source_url}|{src_topic}|{address}|{topic}"
        ).bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="wharf-sink", daemon=True
        )
        self._thread.start()
        self._producer = Producer(
            [address],
            producer_id=self._producer_id,
            token=token,
            deadline_s=give_up_s,
            client_name=USER_AGENT,
        )

    def deliver(self, batch: SinkBatch) -> None:
        from shipper.transport import DeliveryError  # noqa: PLC0415 (lazy: only the wharf sink needs the shipper transport and the batch codec)

        parts = self._build(batch)
        fut = asyncio.run_coroutine_threadsafe(self._send(parts), self._loop)
        try:
            acks = fut.result(self._give_up_s + 5)
        except FutureTimeout:
            fut.cancel()
            raise SinkError(
                f"the sink {self.description} did not acknowledge a batch in "
                f"{self._give_up_s:.0f} s"
            ) from None
        except DeliveryError as exc:
            raise SinkError(f"the sink {self.description}: {exc}") from exc
        self.duplicates += sum(1 for a in acks if a.duplicate)

    def _build(self, batch: SinkBatch) -> list[tuple[str, bytes]]:
        from wharf import batch as wb  # noqa: PLC0415 (lazy: only the wharf sink needs the shipper transport and the batch codec)
        from wharf.record import Record  # noqa: PLC0415 (lazy: only the wharf sink needs the shipper transport and the batch codec)

        groups: dict[tuple[int, str], list[Hit]] = {}
        for rec in batch.records:
            groups.setdefault((rec.partition, rec.host), []).append(rec)
        out = []
        for (partition, host), recs in groups.items():
            file_id = f"replay:{self.src_topic}:{partition}:{host}"
            records = [
                Record(
                    ts=r.ts,
                    line=r.line,
                    host=host,
                    source=r.source,
                    fields=dict(r.fields),
                    level=r.level or None,
                    file_id=file_id,
                    offset=r.offset,
                )
                for r in recs
            ]
            self._seq += 1
            span = wb.Span(file_id, records[0].offset, records[-1].offset + 1)
            data = wb.build(
                records, producer_id=self._producer_id, producer_seq=self._seq, spans=[span]
            )
            out.append((host, data))
        return out

    async def _send(self, parts: list[tuple[str, bytes]]) -> list[Any]:
        return list(
            await asyncio.gather(*(self._producer.send(self.topic, b, key=k) for k, b in parts))
        )

    def sync(self) -> None:
        """Nothing to do: an ack means durable on the collector."""

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._producer.close(), self._loop).result(10)
        except (FutureTimeout, WharfError):
            pass
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def _describe_io_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the connection closed without an answer"
    return str(exc) or type(exc).__name__


def open_sink(
    spec: SinkSpec,
    *,
    topic: str,
    source_url: str,
    headers: list[tuple[str, str]],
    notify: Notify,
    give_up_s: float,
) -> Sink:
    """The sink for a parsed ``--sink``."""
    if spec.kind == "stdout":
        return StdoutSink()
    if spec.kind == "file":
        return FileSink(spec.path, notify)
    if spec.kind == "http":
        return HttpSink(spec.url, topic=topic, headers=headers, notify=notify, give_up_s=give_up_s)
    if spec.kind == "tcp":
        return TcpSink(spec.host, spec.port, notify=notify, give_up_s=give_up_s)
    token = os.environ.get("WHARF_SINK_TOKEN") or os.environ.get("WHARF_TOKEN", "")
    return WharfSink(
        spec.address,
        spec.topic,
        src_topic=topic,
        source_url=source_url,
        token=token,
        give_up_s=give_up_s,
    )
