"""Wharf's error tree and its one table of codes: errors as data.

Every class has a stable ``code`` (what travels: NACK and ERROR frames, HTTP error bodies,
metrics labels), a ``retriable`` flag (whether sending the same request again, perhaps on a new
connection, can help) and an HTTP ``status``. All three are declared in ``TABLE`` at the bottom of
this module and nowhere else, so ingest, the HTTP layer and the clients cannot drift apart; a peer
rebuilds the typed error from the code with ``error_from``.

``LocalError`` means the caller misused an API or gave bad input (fix the call); ``RemoteError``
means a peer or a file handed us garbage (h11's LocalProtocolError / RemoteProtocolError split,
applied to the whole tree). Errors are translated at every boundary with
``raise New(...) from exc`` so the cause stays attached.

A subclass defined outside this module (``WhereError``, the shipper's ``DeliveryError``) is not in
the table: it inherits the code, status and flag of its nearest ancestor that is, and travels as
that ancestor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import msgspec


class WharfError(Exception):
    """Base of every error Wharf raises on purpose.

    ``code``, ``status`` and ``retriable`` are declared here for type checkers; their values, for
    this class and every subclass below, come from ``TABLE``.
    """

    code: str
    status: int
    retriable: bool


# -- the caller's fault ---------------------------------------------------------------------


class LocalError(WharfError):
    """The caller asked for something invalid (bad name, bad offset, bad config)."""


class InvalidArgument(LocalError, ValueError):
    """Any other invalid argument; the message says which and why. (A ``ValueError`` too, so
    msgspec reports it with the path of the offending config key.)"""


class InvalidTopicName(LocalError):
    """A topic name outside ``[a-z0-9][a-z0-9._-]{0,63}``."""


class UnknownTopic(LocalError):
    """The topic does not exist."""


class UnknownGroup(InvalidArgument):
    """The consumer group has no committed offsets. (An ``InvalidArgument`` as it was when the
    HTTP layer defined it, so every ``except InvalidArgument`` keeps catching it.)"""


class TopicExists(LocalError):
    """The topic was to be created but exists already."""


class OffsetOutOfRange(LocalError):
    """An offset below the partition's start or past its end."""


DEFAULT_CHALLENGE: Final = 'Bearer realm="wharf"'


class Unauthorized(LocalError):
    """No credentials, or credentials that match no token. ``challenge`` is the HTTP
    ``WWW-Authenticate`` value telling the client how to authenticate."""

    def __init__(self, message: str, challenge: str = DEFAULT_CHALLENGE) -> None:
        super().__init__(message)
        self.challenge = challenge


class Forbidden(LocalError):
    """Valid credentials that do not allow this request (a read token on a write)."""


class NotFound(LocalError):
    """No such resource (an HTTP path no route serves)."""


class MethodNotAllowed(LocalError):
    """The resource exists but not with this method; ``allowed`` goes into the ``Allow``
    header."""

    def __init__(self, message: str, allowed: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class LocalProtocolError(LocalError):
    """This end misused the wire protocol: a frame its role may not send in the connection's
    state, a frame past a limit, or any call on a connection that has already failed."""


# -- a peer's or a file's fault -------------------------------------------------------------


class RemoteError(WharfError):
    """Bytes from a peer or from disk are not what they must be."""


class CorruptBatch(RemoteError):
    """A batch's bytes fail a structural check or the checksum. ``where`` names file and position."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        self.where = where


class BatchTooLarge(CorruptBatch):
    """A batch exceeds one of the named limits in ``wharf.batch``."""


class ProtocolError(RemoteError):
    """The peer sent bytes that break the wire protocol (h11's RemoteProtocolError). The I/O
    layer sends an ERROR frame with the code and closes the connection."""


class BadFrame(ProtocolError):
    """A frame of an unknown type or whose payload does not decode."""


class UnexpectedFrame(ProtocolError):
    """A frame the peer's role may not send in the connection's current state."""


class FrameTooLarge(ProtocolError):
    """A length prefix past the frame limit of the connection's state."""


class UnsupportedVersion(ProtocolError):
    """The peer speaks a protocol version this end does not."""


class TruncatedFrame(ProtocolError):
    """The peer closed the connection in the middle of a frame."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection between frames (or it was closed here)."""


class HandshakeTimeout(ProtocolError):
    """The peer did not complete its handshake in time (slowloris)."""


class FrameTimeout(ProtocolError):
    """The peer started a frame and did not finish it in time."""


class IdleTimeout(ProtocolError):
    """The peer sent nothing, not even a ping, for too long."""


# -- nobody's fault: try again --------------------------------------------------------------


class StoreError(WharfError):
    """The store could not write (disk full, I/O error). Resending later can help."""


class StoreClosed(WharfError):
    """The store was closed while the operation waited; retry against a reopened store."""


class Unavailable(WharfError):
    """The collector could not be reached, refused the connection for now, or the connection
    broke: a client should retry, with backoff, on this or another collector."""


class TooManyConnections(Unavailable):
    """The collector is at its connection limit."""


class UnrecognizedError(WharfError):
    """An error whose code this version does not know (sent by a newer peer). It keeps the code,
    and the flag and status the peer gave, so it can be passed on unchanged."""

    def __init__(
        self, message: str, code: str, *, retriable: bool = False, status: int = 500
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable
        self.status = status


# -- the table ------------------------------------------------------------------------------

# One row per class: the only place codes, HTTP statuses and retriable flags are written down.
# A tuple of rows rather than attributes in each class body, so the whole vocabulary reads at a
# glance, in one column each, and a duplicate code shows up next to its twin. Codes are stable:
# peers, dashboards (metrics labels) and scripts match on them, so a code is never renamed, only
# added. Some predate the table and stay as they were on the wire ("too_large", "invalid_topic",
# "closed", "truncated", the timeouts).
# fmt: off
TABLE: Final[tuple[tuple[type[WharfError], str, int, bool], ...]] = (
    # class               code                     HTTP   retriable
    (WharfError,          "internal_error",        500,   False),
    (LocalError,          "invalid_request",       400,   False),
    (InvalidArgument,     "invalid_argument",      400,   False),
    (InvalidTopicName,    "invalid_topic",         400,   False),
    (UnknownTopic,        "unknown_topic",         404,   False),
    (UnknownGroup,        "unknown_group",         404,   False),
    (TopicExists,         "topic_exists",          409,   False),
    (OffsetOutOfRange,    "offset_out_of_range",   416,   False),
    (Unauthorized,        "unauthorized",          401,   False),
    (Forbidden,           "forbidden",             403,   False),
    (NotFound,            "not_found",             404,   False),
    (MethodNotAllowed,    "method_not_allowed",    405,   False),
    (LocalProtocolError,  "local_protocol_error",  500,   False),  # our bug, not the client's
    (RemoteError,         "remote_error",          500,   False),  # over HTTP: our data is bad
    (CorruptBatch,        "corrupt_batch",         500,   False),
    (BatchTooLarge,       "too_large",             500,   False),
    (ProtocolError,       "protocol_error",        400,   False),
    (BadFrame,            "bad_frame",             400,   False),
    (UnexpectedFrame,     "unexpected_frame",      400,   False),
    (FrameTooLarge,       "frame_too_large",       413,   False),
    (UnsupportedVersion,  "unsupported_version",   400,   False),
    (TruncatedFrame,      "truncated",             400,   True),   # a new connection can help
    (ConnectionClosed,    "closed",                400,   True),
    (HandshakeTimeout,    "handshake_timeout",     408,   True),
    (FrameTimeout,        "frame_timeout",         408,   True),
    (IdleTimeout,         "idle_timeout",          408,   True),
    (StoreError,          "store_error",           503,   True),
    (StoreClosed,         "store_unavailable",     503,   True),
    (Unavailable,         "unavailable",           503,   True),
    (TooManyConnections,  "too_many_connections",  503,   True),
)
# fmt: on


def _index(table: Iterable[tuple[type[WharfError], str, int, bool]]) -> dict[str, type[WharfError]]:
    """Give every class its row's values and map codes to classes, refusing any duplicate at
    import time (a duplicate code would make ``error_from`` rebuild the wrong class)."""
    by_code: dict[str, type[WharfError]] = {}
    for cls, code, status, retriable in table:
        if code in by_code or cls in by_code.values():
            raise RuntimeError(f"wharf.errors.TABLE: {cls.__name__}/{code!r} listed twice")
        cls.code, cls.status, cls.retriable = code, status, retriable
        by_code[code] = cls
    return by_code


_BY_CODE: Final[Mapping[str, type[WharfError]]] = _index(TABLE)


# -- helpers --------------------------------------------------------------------------------


def code_of(exc: BaseException) -> str:
    """The stable code of ``exc``; ``internal_error`` for an exception that is not ours."""
    return exc.code if isinstance(exc, WharfError) else WharfError.code


def http_status(exc: BaseException) -> int:
    """The HTTP status answering ``exc``; 500 for an exception that is not ours."""
    return exc.status if isinstance(exc, WharfError) else WharfError.status


def http_headers(exc: BaseException) -> dict[str, str]:
    """Headers an HTTP error answer must carry for ``exc`` (``WWW-Authenticate`` with a 401,
    ``Allow`` with a 405); empty for every other error."""
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": exc.challenge}
    if isinstance(exc, MethodNotAllowed) and exc.allowed:
        return {"Allow": ", ".join(exc.allowed)}
    return {}


def error_from(
    code: str, message: str, *, retriable: bool | None = None, status: int | None = None
) -> WharfError:
    """The typed error for ``code`` received from a peer, carrying ``message``.

    For a code in ``TABLE`` the table decides everything, ``retriable`` and ``status`` are
    ignored (aiokafka's rule: the class, not the wire, says whether a retry helps). For a code
    this version does not know, an ``UnrecognizedError`` keeps the code and takes ``retriable``
    and ``status`` as the peer gave them (default: not retriable, 500).
    """
    cls = _BY_CODE.get(code)
    if cls is None:
        return UnrecognizedError(
            message,
            code,
            retriable=bool(retriable),
            status=status if status is not None else WharfError.status,
        )
    return cls(message)


class ErrorBody(msgspec.Struct, frozen=True):
    """The JSON body of an HTTP error answer: ``{"error": message, "code": ..., "retriable": ...}``.

    ``error`` comes first and holds the message alone, as it did before codes existed: clients
    and scripts read ``{"error": ...}``. ``code`` and ``retriable`` have defaults so a body from an
    older collector (``error`` only) still decodes.
    """

    error: str
    code: str = ""
    retriable: bool = False

    def to_error(self, status: int | None = None) -> WharfError:
        """The typed error this body describes (``status``: the answer's, for unknown codes)."""
        return error_from(self.code, self.error, retriable=self.retriable, status=status)


def error_body(exc: WharfError) -> ErrorBody:
    """The HTTP error body for ``exc``: its message, code and retriable flag."""
    return ErrorBody(str(exc), exc.code, exc.retriable)
