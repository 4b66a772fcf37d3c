"""What every network input is given and shares: its settings, its sink, its counters, TLS,
the write tokens, a rate-limited log of bad senders and a bound on open connections.

An input is a class built from an ``InputContext`` with two coroutines: ``start()`` opens its
listener and returns the port it got (``listen`` may say port 0), ``close()`` stops accepting,
ends its connections and returns once what they sent is handed to the sink (``Inputs`` then
closes the sink, which appends what is queued). Inputs never raise out of a connection: a
malformed message is counted (``malformed``), logged with its sender through ``Complaints``
and skipped, or the connection is closed with the protocol's error.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from collector.config import InputSettings
from collector.inputs.sink import Sink
from collector.metrics import InputCounters

log = logging.getLogger("collector.inputs")

# A bad sender is logged at most this often per input (with the count of what was not logged).
COMPLAIN_EVERY_S: Final = 10.0


def peer_ip(address: object) -> str:
    """A peer's IP address from a socket address (``peername``, ``request.remote``), with
    IPv4-mapped IPv6 addresses as plain IPv4: the ``host`` of records that name none."""
    host = str(address[0]) if isinstance(address, tuple) and address else str(address or "")
    if not host:
        return "unknown"
    return host.removeprefix("::ffff:") if "." in host else host


async def start_tls(
    ctx: InputContext, writer: asyncio.StreamWriter, peer: str, timeout_s: float
) -> bool:
    """TLS on a stream input's new connection, inside its slot; a failure (plaintext, a client
    that distrusts our certificate, silence) is counted as refused and complained about."""
    assert ctx.ssl_context is not None
    try:
        await writer.start_tls(ctx.ssl_context, ssl_handshake_timeout=timeout_s)
    except (OSError, TimeoutError) as exc:  # ssl.SSLError and ConnectionError are OSErrors
        ctx.counters.add("refused")
        ctx.complain(peer, f"TLS handshake failed ({exc or type(exc).__name__})")
        return False
    return True


class Complaints:
    """A rate-limited warning log of one input: the first complaint, then at most one every
    ``COMPLAIN_EVERY_S`` saying how many were not logged in between."""

    def __init__(
        self,
        label: str,
        every_s: float = COMPLAIN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.every_s = every_s
        self.clock = clock
        self._last = -every_s
        self._quiet = 0

    def __call__(self, peer: str, what: str) -> None:
        """Log that ``peer`` sent something wrong (``what``: what and why)."""
        now = self.clock()
        if now - self._last < self.every_s:
            self._quiet += 1
            return
        more = f" ({self._quiet} more not logged)" if self._quiet else ""
        log.warning("input %s: %s from %s%s", self.label, what, peer, more)
        self._last, self._quiet = now, 0


class Tokens:
    """The write tokens an HTTP input checks (``[auth] write_tokens``, replaced on reload)."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens: list[bytes] = []
        self.set(tokens)

    def set(self, tokens: list[str]) -> None:
        """Check these tokens from now on."""
        self._tokens = [t.encode() for t in tokens]

    @property
    def required(self) -> bool:
        """Whether requests must present a token."""
        return bool(self._tokens)

    def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization: Bearer TOKEN`` header holds a valid token (always true
        when none is configured); constant-time per token."""
        if not self._tokens:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode()
        return any(hmac.compare_digest(given, t) for t in self._tokens)


class ConnectionSlots:
    """At most ``max_connections`` open connections of one stream input; each one counted in
    ``wharf_input_open_connections``, each refusal in ``refused``."""

    def __init__(self, settings: InputSettings, counters: InputCounters) -> None:
        self.limit = settings.max_connections
        self.counters = counters
        self.open = 0

    def take(self) -> bool:
        """A slot for a new connection, or ``False`` (counted as refused): close it at once."""
        if self.open >= self.limit:
            self.counters.add("refused")
            return False
        self.open += 1
        self.counters.opened()
        return True

    def give_back(self) -> None:
        """The connection of a taken slot ended."""
        self.open -= 1
        self.counters.closed()


@dataclass
class InputContext:
    """What an input is built from."""

    settings: InputSettings
    sink: Sink
    counters: InputCounters
    ssl_context: ssl.SSLContext | None  # the collector's [tls], when the input's protocol is TLS
    tokens: Tokens  # HTTP inputs: [auth] write_tokens
    complain: Complaints = field(init=False)

    def __post_init__(self) -> None:
        self.complain = Complaints(self.settings.label)

    @property
    def label(self) -> str:
        """The input's name in metrics, logs and status."""
        return self.settings.label


class Input(Protocol):
    """A running network input."""

    async def start(self) -> int:
        """Listen; the bound port."""
        ...

    async def close(self) -> None:
        """Stop accepting, end connections, hand what they sent to the sink."""
        ...
