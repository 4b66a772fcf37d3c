"""A small synchronous client for the collector's HTTP API, over the standard library only.

Two layers. The transport (``http.client``, one connection per request, timeouts) turns
connection failures into ``Unreachable`` and error answers into the typed Wharf error their
body's ``code`` names (``wharf.errors.error_from``): an unknown topic raises ``UnknownTopic``,
an offset deleted by retention ``OffsetOutOfRange``. A body without a code (an older collector)
becomes an ``UnrecognizedError`` carrying the message and the HTTP status; ``is_error`` treats it
as the class with that status. Above it, one typed method per endpoint takes the request Structs
of ``wharf.api`` and returns its answer and row Structs: the CLI builds no URL and no parameter
list itself, and a request is checked when it is built, not again here.

The base URL comes from ``--http URL``, then ``WHARF_HTTP``, then ``http://127.0.0.1:7080``; the
token from ``WHARF_TOKEN``. Streams (search, tail) are read line by line as they arrive.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import msgspec

from wharf.api import (
    CommitRequest,
    CompactResult,
    ConsumeEnd,
    ConsumeRequest,
    ContextHit,
    CreateTopic,
    Facets,
    FacetsRequest,
    GroupInfo,
    GroupList,
    Histogram,
    HistogramRequest,
    Hit,
    OffsetAnswer,
    OffsetRequest,
    ResetRequest,
    Row,
    SearchRequest,
    TailRequest,
    TopicInfo,
    TopicList,
    TopicSizes,
    decode_row,
)
from wharf.errors import (
    ErrorBody,
    InvalidArgument,
    RemoteError,
    Unavailable,
    UnrecognizedError,
    WharfError,
    error_from,
)

DEFAULT_HTTP: Final = "http://127.0.0.1:7080"
# Plain requests give up after this long; streams wait forever between lines unless told
# otherwise (a tail sends heartbeats, a search may be slow to find its first match).
DEFAULT_TIMEOUT_S: Final = 30.0
# One NDJSON line may not exceed this: a record's line is bounded by the shipper well below.
MAX_LINE_BYTES: Final = 80 << 20
# Of an error answer that is not JSON, this much goes into the message.
_SNIPPET: Final = 200

Params = Sequence[tuple[str, str | int]]
T = TypeVar("T")

# The common row of each stream is decoded straight into its Struct; anything else (progress,
# done, heartbeat, error lines) falls back to ``decode_row``, which sorts rows by their keys.
_HIT: Final = msgspec.json.Decoder(Hit)
_CONTEXT_HIT: Final = msgspec.json.Decoder(ContextHit)
_ERROR_BODY: Final = msgspec.json.Decoder(ErrorBody)


class Unreachable(Unavailable):
    """The collector could not be reached, or the connection broke (retriable)."""


class Consumed(NamedTuple):
    """One consume answer: the records read, and where to continue."""

    records: list[Hit]
    end: ConsumeEnd


def is_error(exc: BaseException, cls: type[WharfError]) -> bool:
    """Whether ``exc`` is a ``cls``, or an error answer without a code (an older collector)
    with the HTTP status of ``cls`` (``UnknownGroup``: a 404 from ``/v1/groups/{g}``)."""
    if isinstance(exc, cls):
        return True
    return isinstance(exc, UnrecognizedError) and not exc.code and exc.status == cls.status


def resolve_base_url(flag: str | None = None) -> str:
    """``--http`` if given, then ``WHARF_HTTP``, then the default; checked and without a
    trailing slash."""
    url = (flag or os.environ.get("WHARF_HTTP") or DEFAULT_HTTP).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"collector URL {url!r} must look like http://HOST:PORT")
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise InvalidArgument(f"collector URL {url!r} has an invalid port") from None
    return url


def _seg(name: str) -> str:
    """One path segment: a topic or group name is never a path (``a/b`` stays one segment)."""
    return quote(name, safe="")


def _body(req: msgspec.Struct) -> bytes:
    """A request body without the fields left unset: ``null`` is not "use the default" to
    every collector version, an absent key is."""
    data = {k: v for k, v in msgspec.structs.asdict(req).items() if v is not None}
    return msgspec.json.encode(data)


class Client:
    """Talks to one collector. Not thread-safe; one connection per request."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.token = token if token is not None else os.environ.get("WHARF_TOKEN", "")
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path

    # -- search and tail ------------------------------------------------------------------

    def search(self, req: SearchRequest) -> Iterator[Row]:
        """``GET /v1/search``: hits (``ContextHit`` with context lines; ``PartitionCount`` or
        ``FileCount`` in the count and files modes), ``Progress`` lines when asked, then
        ``Done``. The connection closes when the iterator ends or is closed."""
        fast = _CONTEXT_HIT if req.context else None if req.count or req.files else _HIT
        return self._rows("/v1/search", req.to_params(), None, fast)

    def tail(self, req: TailRequest, stall_s: float | None = None) -> Iterator[Row]:
        """``GET /v1/tail``: ``Hit`` and ``Heartbeat`` rows, forever. ``stall_s``: give up
        (``Unreachable``) after that long without a line."""
        return self._rows("/v1/tail", req.to_params(), stall_s, _HIT)

    def histogram(self, req: HistogramRequest) -> Histogram:
        """``GET /v1/histogram``: exact records per time bucket, stacked by level."""
        return self._get("/v1/histogram", Histogram, req.to_params())

    def facets(self, req: FacetsRequest) -> Facets:
        """``GET /v1/facets``: the top values of ``req.field`` over every matching record."""
        return self._get("/v1/facets", Facets, req.to_params())

    # -- reading by offset ----------------------------------------------------------------

    def consume(self, topic: str, partition: int, req: ConsumeRequest) -> Consumed:
        """``GET /v1/topics/{t}/partitions/{p}/records``: the records from ``req.offset``, about
        ``req.max_bytes`` of them, and the ``ConsumeEnd`` saying where to continue."""
        path = f"/v1/topics/{_seg(topic)}/partitions/{partition}/records"
        records: list[Hit] = []
        for row in self._rows(path, req.to_params(), self.timeout, _HIT):
            if isinstance(row, ConsumeEnd):
                return Consumed(records, row)
            if not isinstance(row, Hit):
                raise RemoteError(f"{self.base_url}: unexpected row in a consume answer: {row!r}")
            records.append(row)
        raise Unreachable(f"{self.base_url}: a consume answer ended early")

    def offset_for_time(self, topic: str, partition: int, time_ns: int) -> OffsetAnswer:
        """``GET /v1/topics/{t}/partitions/{p}/offset``: the first offset stamped at or after
        ``time_ns``, clamped into the partition."""
        path = f"/v1/topics/{_seg(topic)}/partitions/{partition}/offset"
        return self._get(path, OffsetAnswer, OffsetRequest(time=time_ns).to_params())

    # -- topics ---------------------------------------------------------------------------

    def topics(self) -> TopicList:
        """``GET /v1/topics``: every topic with its sizes."""
        return self._get("/v1/topics", TopicList)

    def topic(self, name: str) -> TopicSizes:
        """``GET /v1/topics/{t}`` (``UnknownTopic`` if there is none)."""
        return self._get(f"/v1/topics/{_seg(name)}", TopicSizes)

    def create_topic(self, req: CreateTopic) -> TopicInfo:
        """``POST /v1/topics`` (``TopicExists`` if it does)."""
        return self._decode(self._request("POST", "/v1/topics", (), _body(req)), TopicInfo)

    def delete_topic(self, name: str) -> None:
        """``DELETE /v1/topics/{t}``: the topic and every record in it."""
        self._request("DELETE", f"/v1/topics/{_seg(name)}", ())

    def compact_topic(self, name: str) -> CompactResult:
        """``POST /v1/topics/{t}/compact``: answers once every sealed segment is compacted
        (minutes for a big topic: no read timeout)."""
        path = f"/v1/topics/{_seg(name)}/compact"
        return self._decode(self._request("POST", path, (), b"", patient=True), CompactResult)

    # -- consumer groups ------------------------------------------------------------------

    def groups(self) -> GroupList:
        """``GET /v1/groups``: the names of the groups with committed offsets."""
        return self._get("/v1/groups", GroupList)

    def group(self, name: str) -> GroupInfo:
        """``GET /v1/groups/{g}`` (``UnknownGroup`` before its first commit)."""
        return self._get(f"/v1/groups/{_seg(name)}", GroupInfo)

    def commit(self, group: str, req: CommitRequest) -> GroupInfo:
        """``POST /v1/groups/{g}/commit``."""
        path = f"/v1/groups/{_seg(group)}/commit"
        return self._decode(self._request("POST", path, (), _body(req)), GroupInfo)

    def reset(self, group: str, req: ResetRequest) -> GroupInfo:
        """``POST /v1/groups/{g}/reset`` (creates the group if it has no offsets yet)."""
        path = f"/v1/groups/{_seg(group)}/reset"
        return self._decode(self._request("POST", path, (), _body(req)), GroupInfo)

    # -- the rest -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /v1/status``, as the JSON object it is (its shape is the collector's to
        extend: health, version, topics, ingest rate, shippers)."""
        answer = self._json(self._request("GET", "/v1/status", ()))
        if not isinstance(answer, dict):
            raise RemoteError(f"{self.base_url}: GET /v1/status did not answer an object")
        return answer

    def stream(self, path: str, params: Params = (), timeout: float | None = None) -> Iterator[Any]:
        """Untyped: the JSON values of an NDJSON answer, for endpoints and parameters the typed
        methods do not cover (and for tests of the API itself). An ``{"error": ...}`` line
        raises the error its code names."""
        for line in self._lines(path, params, timeout):
            item = self._json(line)
            if isinstance(item, dict) and "error" in item and "offset" not in item:
                raise _error(item)
            yield item

    # -- plumbing -------------------------------------------------------------------------

    def _get(self, path: str, cls: type[T], params: Params = ()) -> T:
        return self._decode(self._request("GET", path, params), cls)

    def _decode(self, data: bytes, cls: type[T]) -> T:
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise RemoteError(f"{self.base_url}: unexpected answer: {exc}") from None
        except msgspec.DecodeError:
            raise RemoteError(f"{self.base_url}: the answer is not JSON") from None

    def _json(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            raise RemoteError(f"{self.base_url}: the answer is not JSON") from None

    def _request(
        self,
        method: str,
        path: str,
        params: Params,
        body: bytes | None = None,
        *,
        patient: bool = False,
    ) -> bytes:
        """One answer's body (``patient``: wait for it as long as it takes once sent)."""
        conn, resp = self._open(method, path, params, body, self.timeout, patient=patient)
        try:
            return resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(exc) from exc
        finally:
            conn.close()

    def _rows(
        self,
        path: str,
        params: Params,
        timeout: float | None,
        fast: msgspec.json.Decoder[Any] | None,
    ) -> Iterator[Row]:
        for line in self._lines(path, params, timeout):
            if fast is not None:
                try:
                    yield fast.decode(line)
                    continue
                except msgspec.ValidationError:
                    pass  # another row type (or an error line): sorted out below
                except msgspec.DecodeError:
                    raise RemoteError(f"{self.base_url}: a streamed line is not JSON") from None
            try:
                yield decode_row(line)
            except msgspec.DecodeError as exc:
                raise RemoteError(f"{self.base_url}: a streamed line is not a row: {exc}") from None

    def _lines(self, path: str, params: Params, timeout: float | None) -> Iterator[bytes]:
        """The lines of a streamed answer as they arrive; the connection closes when the
        generator ends or is closed."""
        conn, resp = self._open("GET", path, params, None, timeout)
        try:
            while True:
                try:
                    line = resp.readline(MAX_LINE_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise self._broken(exc) from exc
                if not line:
                    return
                if not line.endswith(b"\n"):
                    raise Unreachable(f"{self.base_url}: the stream ended in the middle of a line")
                yield line
        finally:
            conn.close()

    def _open(
        self,
        method: str,
        path: str,
        params: Params,
        body: bytes | None,
        timeout: float | None,
        *,
        patient: bool = False,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request and read the answer's head: within the client's timeout, or (when
        ``patient``) connecting and sending within it and the answer as late as it comes.
        ``timeout`` then applies to the body."""
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        url = self._prefix + path + (("?" + urlencode(list(params))) if params else "")
        headers = {"Accept": "application/json, application/x-ndjson"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, url, body=body, headers=headers)
            if patient and conn.sock is not None:
                conn.sock.settimeout(None)
            resp = conn.getresponse()
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._broken(exc) from exc
        if resp.status >= 400:
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException):
                data = b""
            finally:
                conn.close()
            raise _answer_error(resp.status, data)
        return conn, resp

    def _broken(self, exc: BaseException) -> Unreachable:
        if isinstance(exc, socket.timeout | TimeoutError):
            why = "timed out"
        elif isinstance(exc, OSError) and exc.strerror:
            why = exc.strerror
        else:
            why = str(exc) or type(exc).__name__
        return Unreachable(f"cannot reach the collector at {self.base_url}: {why}")


def _answer_error(status: int, data: bytes) -> WharfError:
    """The typed error of an error answer; its message ends with the HTTP status, as the user
    saw it before errors had codes."""
    try:
        body = _ERROR_BODY.decode(data)
    except msgspec.DecodeError:  # not the JSON error body: a proxy's page, an empty body
        text = data.decode("utf-8", "replace").strip()[:_SNIPPET] or "no details"
        body = ErrorBody(text)
    message = f"{body.error} (HTTP {status})"
    return error_from(body.code, message, retriable=body.retriable, status=status)


def _error(item: dict[str, Any]) -> WharfError:
    """The typed error of an ``{"error", "code"?, "retriable"?}`` line in a stream."""
    return error_from(
        str(item.get("code") or ""), str(item["error"]), retriable=bool(item.get("retriable"))
    )
