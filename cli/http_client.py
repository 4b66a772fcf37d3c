"""A small synchronous client for the collector's HTTP API, over the standard library only.

The base URL comes from ``--http URL``, then ``WHARF_HTTP``, then ``http://127.0.0.1:7080``; the
token from ``WHARF_TOKEN``. Streams (search, tail) are read line by line as they arrive.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from wharf.errors import WharfError

DEFAULT_HTTP: Final = "http://127.0.0.1:7080"
# Plain requests give up after this long; streams wait forever between lines unless told
# otherwise (a tail sends heartbeats, a search may be slow to find its first match).
DEFAULT_TIMEOUT_S: Final = 30.0
# One NDJSON line may not exceed this: a record's line is bounded by the shipper well below.
MAX_LINE_BYTES: Final = 80 << 20

Params = Sequence[tuple[str, str | int]]


class ApiError(WharfError):
    """The collector answered with an error status; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(WharfError):
    """The collector could not be reached, or the connection broke."""

    retriable = True


def resolve_base_url(flag: str | None = None) -> str:
    """``--http`` if given, then ``WHARF_HTTP``, then the default; checked and without a
    trailing slash."""
    url = (flag or os.environ.get("WHARF_HTTP") or DEFAULT_HTTP).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(0, f"collector URL {url!r} must look like http://HOST:PORT")
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise ApiError(0, f"collector URL {url!r} has an invalid port") from None
    return url


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

    # -- plain requests -----------------------------------------------------------------

    def get_json(self, path: str, params: Params = ()) -> Any:
        """``GET`` and decode the JSON answer."""
        return self._request("GET", path, params)

    def post_json(self, path: str, body: object) -> Any:
        """``POST`` a JSON body and decode the JSON answer."""
        return self._request("POST", path, (), json.dumps(body).encode())

    def delete(self, path: str) -> Any:
        """``DELETE`` and decode the JSON answer."""
        return self._request("DELETE", path, ())

    def _request(self, method: str, path: str, params: Params, body: bytes | None = None) -> Any:
        conn, resp = self._open(method, path, params, body, self.timeout)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(exc) from exc
        finally:
            conn.close()
        try:
            return json.loads(data)
        except ValueError:
            raise ApiError(resp.status, f"{self.base_url}: the answer is not JSON") from None

    # -- streams ------------------------------------------------------------------------

    def stream(self, path: str, params: Params = (), timeout: float | None = None) -> Iterator[Any]:
        """Decoded NDJSON lines as they arrive. The connection closes when the generator ends
        or is closed. An ``{"error": ...}`` line raises ``ApiError``."""
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
                try:
                    item = json.loads(line)
                except ValueError:
                    raise ApiError(
                        resp.status, f"{self.base_url}: a streamed line is not JSON"
                    ) from None
                if isinstance(item, dict) and "error" in item and "offset" not in item:
                    raise ApiError(resp.status, str(item["error"]))
                yield item
        finally:
            conn.close()

    # -- plumbing -----------------------------------------------------------------------

    def _open(
        self, method: str, path: str, params: Params, body: bytes | None, timeout: float | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
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
            raise ApiError(resp.status, _error_message(resp.status, data))
        return conn, resp

    def _broken(self, exc: BaseException) -> Unreachable:
        if isinstance(exc, socket.timeout | TimeoutError):
            why = "timed out"
        elif isinstance(exc, OSError) and exc.strerror:
            why = exc.strerror
        else:
            why = str(exc) or type(exc).__name__
        return Unreachable(f"cannot reach the collector at {self.base_url}: {why}")


def _error_message(status: int, data: bytes) -> str:
    try:
        message = json.loads(data)["error"]
    except (ValueError, KeyError, TypeError):
        message = data.decode("utf-8", "replace").strip()[:200] or "no details"
    return f"{message} (HTTP {status})"
