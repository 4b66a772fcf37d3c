"""Syslog over a byte stream (TCP, TLS): RFC 6587 framing as a pure state machine — bytes in,
messages out, no sockets (h11's shape). ``SyslogInput`` feeds it what each connection reads.

The framing is detected once per connection, from its first bytes (RFC 6587 section 3.4:
a MSGLEN starts with a digit, a syslog message with ``<``):

- ``MSGLEN SP`` (1 to 10 digits, the first not 0, then a space): **octet counting**
  (RFC 6587 3.4.1, RFC 5425 over TLS). rsyslog's ``omfwd`` counts its template's trailing
  newline inside the frame, so one trailing LF (and a CR before it) is removed from each
  message. LF, CR and NUL between two frames are skipped (senders that end a counted frame
  with a newline as well).
- anything else: **non-transparent framing** (RFC 6587 3.4.2): a message ends at a trailer,
  LF or NUL, whichever the connection sends first (rsyslog over TLS, ``logger`` over TCP, most
  senders use LF; some Java appenders use NUL so that a message may hold newlines). A CR
  before an LF is removed (CRLF senders). What is left when the stream ends is a message too
  (rsyslog's ``imtcp`` does the same). Empty messages are skipped.

Bounds: no message longer than ``max_message`` is ever held. A counted frame whose MSGLEN is
larger is skipped as its bytes arrive; a delimited message that grows past it is dropped and
the rest, up to the next trailer, skipped. Each such message is reported once, as ``Dropped``.
The pending bytes are thus at most ``max_message`` (plus one CR) between two ``feed`` calls.

A UDP datagram is one message, or several that a sender batched, one per line
(``split_datagram``).

An octet-counted stream that breaks its framing (no digit where a MSGLEN must start, more than
10 digits, no space after them) cannot be resynchronized: ``FramingError``, after which the
framer refuses more bytes (the caller closes the connection). A stream that ends inside a
counted frame is reported by ``end()`` the same way.
"""

from __future__ import annotations

import enum
import re
from typing import Final, NamedTuple

__all__ = ["Dropped", "Framer", "Framing", "FramingError", "split_datagram"]

# RFC 6587's MSGLEN has no stated bound; 10 digits reach 9,999,999,999, far past any
# max_message_bytes, and bound how long the detection and a header may wait for their space.
MAX_MSGLEN_DIGITS: Final = 10
_SEPARATORS: Final = frozenset(b"\n\r\0")
# In a datagram, a newline starts a new message only where a PRI follows it: a multi-line
# message (a stack trace sent whole) stays one message.
_NEXT_MESSAGE_RE: Final = re.compile(rb"\r?\n(?=<[0-9]{1,3}>)")


class FramingError(Exception):
    """The stream broke its framing (what, where): the connection cannot go on."""


class Dropped(NamedTuple):
    """A message longer than ``max_message`` was skipped; ``size`` is its length when the
    frame declared it (octet counting), else ``None`` (a delimited message: its length is
    not known before its end, which is never waited for)."""

    size: int | None


class Framing(enum.Enum):
    """How a connection frames its messages (decided by its first bytes)."""

    UNDECIDED = "undecided"
    OCTET_COUNTING = "octet-counting"
    NON_TRANSPARENT = "non-transparent"


class Framer:
    """One connection's framing: ``feed(bytes)`` → complete messages (``bytes``, without their
    framing) and ``Dropped`` markers, in stream order; ``end()`` when the stream ends."""

    def __init__(self, max_message: int) -> None:
        if max_message < 1:
            raise ValueError(f"max_message must be at least 1, got {max_message}")
        self.max_message = max_message
        self.framing = Framing.UNDECIDED
        self.trailer: bytes | None = None  # non-transparent: b"\n" or b"\0" once seen
        self._buf = bytearray()  # a message's bytes so far, or a MSGLEN's digits
        self._need = -1  # octet counting: the body length being read (-1: reading a MSGLEN)
        self._skip = 0  # octet counting: bytes of an over-long frame still to skip
        self._discarding = False  # non-transparent: skipping to the next trailer
        self._broken: str | None = None

    def __repr__(self) -> str:
        return (
            f"<Framer {self.framing.value} pending={len(self._buf)} need={self._need} "
            f"skip={self._skip} discarding={self._discarding}>"
        )

    @property
    def error(self) -> str | None:
        """Why the framing broke (the next ``feed`` or ``end`` raises it), or ``None``."""
        return self._broken

    @property
    def pending(self) -> int:
        """Bytes held for a message not yet complete (at most ``max_message`` + 1)."""
        return len(self._buf)

    @property
    def mid_message(self) -> bool:
        """Whether the stream stopped inside a message (or inside the first bytes)."""
        return bool(self._buf or self._need >= 0 or self._skip or self._discarding)

    def feed(self, data: bytes) -> list[bytes | Dropped]:
        """The messages that ``data`` completes (raises ``FramingError``)."""
        if self._broken is not None:
            raise FramingError(self._broken)
        out: list[bytes | Dropped] = []
        if not data:
            return out
        if self.framing is Framing.UNDECIDED:
            self._buf += data
            if not self._decide():
                return out
            data = bytes(self._buf)
            self._buf.clear()
        if self.framing is Framing.NON_TRANSPARENT:
            self._feed_delimited(data, out)
            return out
        try:
            self._feed_counted(data, out)
        except FramingError:
            if out:
                return out  # the messages before the error; ``error`` says it, the next call
                # raises it
            raise
        return out

    def end(self) -> list[bytes | Dropped]:
        """The stream ended: its last message, if it was not cut inside a counted frame
        (raises ``FramingError`` then)."""
        if self._broken is not None:
            raise FramingError(self._broken)
        out: list[bytes | Dropped] = []
        buf = self._buf
        if self.framing is Framing.OCTET_COUNTING:
            if self._need >= 0:
                self._fail(f"the stream ended inside a frame: {len(buf)} of its {self._need} bytes")
            if buf:
                self._fail(f"the stream ended inside a MSGLEN ({bytes(buf)!r})")
        elif buf and not self._discarding:
            self._emit_delimited(bytes(buf), out)
        buf.clear()
        self._discarding = False
        return out

    def _fail(self, what: str) -> None:
        self._broken = what
        self._buf.clear()
        raise FramingError(what)

    def _decide(self) -> bool:
        """Settle the framing from the first bytes (in ``_buf``); ``False``: need more."""
        buf = self._buf
        if buf[0] in b"123456789":
            digits = 1
            while digits < len(buf) and digits <= MAX_MSGLEN_DIGITS and 48 <= buf[digits] <= 57:
                digits += 1
            if digits <= MAX_MSGLEN_DIGITS:
                if digits == len(buf):
                    return False  # only digits so far: a MSGLEN, or a message without PRI
                if buf[digits] == 32:
                    self.framing = Framing.OCTET_COUNTING
                    return True
        self.framing = Framing.NON_TRANSPARENT
        return True

    # -- octet counting ------------------------------------------------------------------------

    def _feed_counted(self, data: bytes, out: list[bytes | Dropped]) -> None:
        buf = self._buf
        pos, n = 0, len(data)
        while pos < n:
            if self._skip:
                k = min(self._skip, n - pos)
                self._skip -= k
                pos += k
                continue
            need = self._need
            if need >= 0:
                if not buf and n - pos >= need:  # the whole body is here: no copy into buf
                    self._emit_counted(data[pos : pos + need], out)
                    pos += need
                else:
                    k = min(need - len(buf), n - pos)
                    buf += data[pos : pos + k]
                    pos += k
                    if len(buf) < need:
                        continue
                    self._emit_counted(bytes(buf), out)
                    buf.clear()
                self._need = -1
                continue
            if not buf and data[pos] in _SEPARATORS:
                pos += 1
                continue
            room = MAX_MSGLEN_DIGITS + 1 - len(buf)  # digits still allowed, and the space
            sp = data.find(b" ", pos, pos + room)
            digits = data[pos : pos + room] if sp < 0 else data[pos:sp]
            if not (digits.isdigit() or not digits) or (not buf and digits[:1] == b"0"):
                self._fail(
                    f"expecting a MSGLEN (1 to {MAX_MSGLEN_DIGITS} digits, then a space) "
                    f"at {bytes(buf) + digits[:12]!r}"
                )
            if sp < 0:
                if len(digits) == room:
                    self._fail(f"a MSGLEN longer than {MAX_MSGLEN_DIGITS} digits")
                buf += digits
                pos = n
                continue
            text = bytes(buf) + digits
            buf.clear()
            if not text:
                self._fail("expecting a MSGLEN, got a space")
            pos = sp + 1
            length = int(text)
            if length > self.max_message:
                out.append(Dropped(length))
                self._skip = length
            else:
                self._need = length

    def _emit_counted(self, body: bytes, out: list[bytes | Dropped]) -> None:
        if body.endswith(b"\n"):
            body = body[:-2] if body.endswith(b"\r\n") else body[:-1]
        if body:
            out.append(body)

    # -- non-transparent framing ---------------------------------------------------------------

    def _feed_delimited(self, data: bytes, out: list[bytes | Dropped]) -> None:
        trailer = self.trailer
        if trailer is None:
            lf, nul = data.find(b"\n"), data.find(b"\0")
            if lf < 0 and nul < 0:
                self._hold(data, out)
                return
            trailer = self.trailer = b"\n" if nul < 0 or 0 <= lf < nul else b"\0"
        parts = data.split(trailer)
        last = parts.pop()
        if parts:  # a trailer came: it ends the message held or being skipped
            if self._discarding:
                self._discarding = False
                del parts[0]
            elif self._buf:
                parts[0] = bytes(self._buf) + parts[0]
                self._buf.clear()
            for part in parts:
                self._emit_delimited(part, out)
        self._hold(last, out)

    def _hold(self, part: bytes, out: list[bytes | Dropped]) -> None:
        """Keep the start of a message whose trailer has not come yet, within the limit (an
        LF-framed message may carry one more byte: its CR)."""
        if self._discarding or not part:
            return
        if len(self._buf) + len(part) > self.max_message + (self.trailer != b"\0"):
            out.append(Dropped(None))
            self._buf.clear()
            self._discarding = True
            return
        self._buf += part

    def _emit_delimited(self, message: bytes, out: list[bytes | Dropped]) -> None:
        if self.trailer != b"\0" and message.endswith(b"\r"):
            message = message[:-1]
        if len(message) > self.max_message:
            out.append(Dropped(None))  # as when it is cut off while held: any chunking alike
        elif message:
            out.append(message)


def split_datagram(data: bytes) -> list[bytes]:
    """The messages of one datagram: split at newlines followed by a ``<PRI>``, each without
    trailing newlines, CRs or NULs (old senders end a datagram with one); none empty."""
    parts = _NEXT_MESSAGE_RE.split(data) if b"\n<" in data else [data]
    out: list[bytes] = []
    for part in parts:
        message = part.rstrip(b"\r\n\0")
        if message:
            out.append(message)
    return out
