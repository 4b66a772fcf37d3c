"""How fast ``wharf replay`` goes: ``--rate`` (a token bucket), ``--speed`` (the records' own
spacing, compressed), and the retry delays of network sinks. Pure: the caller supplies the
clock and does the sleeping, so every rule here is tested without waiting.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Final

from wharf.errors import InvalidArgument

Clock = Callable[[], float]

_NS_PER_S: Final = 1_000_000_000
_RATE_RE: Final = re.compile(
    r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:\s*/\s*(s|sec|second|m|min|minute|h|hr|hour))?"
)
_PER: Final = {
    **dict.fromkeys(("s", "sec", "second"), 1.0),
    **dict.fromkeys(("m", "min", "minute"), 60.0),
    **dict.fromkeys(("h", "hr", "hour"), 3600.0),
}
# Beyond this nothing in Python delivers records anyway; a larger number is a typo.
MAX_RATE: Final = 100_000_000.0
MAX_SPEED: Final = 1_000_000_000.0
# A token bucket lets this much of a second's worth of records go back to back, so the sink sees
# batches of a tenth of the rate instead of one request per record.
BURST_S: Final = 0.1


def parse_rate(text: str) -> float:
    """``500/s``, ``100/m``, ``2/h``, ``50`` (per second) → records per second."""
    m = _RATE_RE.fullmatch(text.strip().lower())
    if m is None:
        raise InvalidArgument(
            f"invalid rate {text!r}: use records per second like 500/s, or 100/m, 2/h, 50"
        )
    per_second = float(m.group(1)) / _PER[m.group(2) or "s"]
    if not 0 < per_second <= MAX_RATE:
        raise InvalidArgument(f"invalid rate {text!r}: it must be above 0 and at most 100000000/s")
    return per_second


def parse_speed(text: str) -> float:
    """``10``, ``10x``, ``0.5`` → a positive factor (2 means twice as fast as it happened)."""
    s = text.strip().lower().removesuffix("x")
    try:
        speed = float(s)
    except ValueError:
        speed = math.nan
    if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise InvalidArgument(
            f"invalid speed {text!r}: use a factor above 0, like 10 (ten times faster) or 0.5"
        )
    return speed


class TokenBucket:
    """At most ``rate`` records per second on average, ``burst`` at once.

    ``take(n)`` spends tokens and returns how long to wait before the records may go; the debt
    is kept, so the average holds however the caller batches.
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = time.monotonic):
        if rate <= 0:
            raise InvalidArgument(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = max(1.0, rate * BURST_S) if burst is None else max(1.0, burst)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def take(self, n: int = 1) -> float:
        """Spend ``n`` tokens; seconds to wait before using them (0 when they were there)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class SpeedPacer:
    """Deliver records with the spacing of their timestamps divided by ``speed``.

    The first record goes at once and anchors the replay clock; a record with timestamp ``ts``
    is due ``(ts - first_ts) / speed`` seconds later. A timestamp at or before the newest one
    seen (clock skew between hosts, a late line) is due at once: the replay never waits
    backwards. A gap longer than ``max_gap_s`` of replay time (a quiet night) is cut to
    ``max_gap_s`` and the clock shifted by the rest, so later spacing is kept.
    """

    def __init__(self, speed: float, max_gap_s: float, clock: Clock = time.monotonic) -> None:
        if speed <= 0 or max_gap_s < 0:
            raise InvalidArgument("speed must be positive and max_gap_s not negative")
        self.speed = speed
        self.max_gap_s = max_gap_s
        self._clock = clock
        self._anchor_wall = 0.0
        self._anchor_ts = 0
        self._last_ts: int | None = None
        self.gaps_cut = 0

    def delay(self, ts: int) -> float:
        """Seconds to wait before delivering a record stamped ``ts`` (ns)."""
        now = self._clock()
        if self._last_ts is None:
            self._anchor_wall, self._anchor_ts, self._last_ts = now, ts, ts
            return 0.0
        if ts <= self._last_ts:
            return 0.0
        gap_s = (ts - self._last_ts) / self.speed / _NS_PER_S
        if gap_s > self.max_gap_s:
            self._anchor_ts += round((gap_s - self.max_gap_s) * self.speed * _NS_PER_S)
            self.gaps_cut += 1
        self._last_ts = ts
        due = self._anchor_wall + (ts - self._anchor_ts) / self.speed / _NS_PER_S
        return max(0.0, due - now)


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with "equal jitter": half of ``min(cap, base * 2**attempt)`` for
    sure, plus up to the other half at random, so retries grow and never synchronize."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 32))
    return ceiling / 2 + rand() * ceiling / 2


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (delay in seconds, or an HTTP date) as seconds from ``now``
    (epoch seconds); ``None`` when absent or unreadable."""
    if value is None:
        return None
    v = value.strip()
    if v.isascii() and v.isdigit():  # not "²", which isdigit() takes and float() refuses
        return float(v)
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    delay: float = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, delay)
