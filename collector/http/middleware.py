"""Every request passes through: metrics, errors as data, auth.

Errors: every ``WharfError`` becomes ``{"error", "code", "retriable"}`` with the status the
error table in ``wharf.errors`` gives it; routing errors (404, 405) are Wharf errors too; anything
else is a 500 naming only the exception's type, logged with its traceback, never sent.

Auth (``collector.toml`` ``[auth]``): with read tokens set, every ``/v1`` request needs
``Authorization: Bearer <token>`` holding a read or a write token; topic creation and deletion
need a write token (or, when only read tokens are configured, a read token). Group commits and
resets are reads in this sense: a consumer owns its position. ``/healthz`` and ``/metrics`` are
open, and so is the web console's shell (``GET /``, ``GET /static/...``): it holds no data and
asks for a token when the API answers 401. A missing token is 401, a wrong one 403.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from collector.http.keys import CONFIG, METRICS
from collector.http.stream import json_answer
from wharf.api import error_row
from wharf.errors import (
    Forbidden,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    WharfError,
    http_headers,
    http_status,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(exc: BaseException) -> web.Response:
    """The JSON error answer for ``exc``."""
    answer = json_answer(error_row(exc), status=http_status(exc))
    answer.headers.update(http_headers(exc))
    return answer


@web.middleware
async def metrics_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests by route and status."""
    resp = await handler(request)
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    request.app[METRICS].http_requests.labels(name, str(resp.status)).inc()
    return resp


@web.middleware
async def errors_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as data (see the module docstring)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        text = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        message = f"{text}: {request.method} {request.path}"
        if exc.status == 404:
            return error_response(NotFound(message))
        if isinstance(exc, web.HTTPMethodNotAllowed):
            return error_response(MethodNotAllowed(message, exc.allowed_methods))
        return error_response(InvalidArgument(message))
    except WharfError as exc:
        return error_response(exc)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return error_response(InvalidArgument(f"invalid request body: {exc}"))
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(exc)


def _needs_write(request: web.Request) -> bool:
    return request.method in ("POST", "PUT", "DELETE") and request.path.startswith("/v1/topics")


def _matches(token: str, tokens: list[str]) -> bool:
    given = token.encode()
    found = False
    for t in tokens:  # every token compared, in constant time each
        found |= hmac.compare_digest(given, t.encode())
    return found


@web.middleware
async def auth_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer tokens on ``/v1`` (see the module docstring)."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    auth = request.app[CONFIG].auth
    write = _needs_write(request)
    if write and auth.write_tokens:
        allowed = auth.write_tokens
    elif auth.read_tokens:
        allowed = [*auth.read_tokens, *auth.write_tokens] if not write else auth.read_tokens
    else:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    if not _matches(token.strip(), allowed):
        what = "a write token" if write and auth.write_tokens else "a valid token"
        raise Forbidden(f"forbidden: this request needs {what}")
    return await handler(request)
