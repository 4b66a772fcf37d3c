"""The daemon's timers as one table of (next due, action), and the ticker that sleeps on it.

Each timer is a name, a ``due`` function (the monotonic time it is next due, ``AT_ONCE``, or
``None`` for not at all) and an ``action``. The ticker runs, in table order, every action whose
timer is due, then sleeps until the earliest due time or until ``kick`` (something changed
that moves a due time earlier: a new batch starts lingering, a file was detached). A timer's
due time and the condition for running its action are one function, so they cannot drift
apart; and with nothing due, the process sleeps.

Order matters and is the table's: a timer that cuts a forced boundary (a partial line, the end
of a rotated file) comes before the checkpoint timer, which saves the boundary before the batch
that holds it can reach a collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

AT_ONCE: Final = -math.inf  # a due time that is always past
# The ticker never spins: a timer still due after its action (its condition holds until
# something else happens) is looked at again this much later, not at once.
MIN_SLEEP_S: Final = 0.005


@dataclass(frozen=True)
class Timer:
    """One row of the table."""

    name: str
    due: Callable[[], float | None]
    action: Callable[[float], None]  # called with the tick's monotonic time


class Timers:
    """The table and its ticker (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.table: list[Timer] = []
        self._kick = asyncio.Event()

    def __repr__(self) -> str:
        now = self.clock()
        rows = []
        for t in self.table:
            due = t.due()
            rows.append(f"{t.name}: {'never' if due is None else f'{max(0.0, due - now):.3f}s'}")
        return f"<Timers {'; '.join(rows)}>"

    def add(
        self, name: str, due: Callable[[], float | None], action: Callable[[float], None]
    ) -> None:
        """Append a timer (it runs after the ones added before it)."""
        if any(t.name == name for t in self.table):
            raise ValueError(f"a timer named {name!r} is in the table already")
        self.table.append(Timer(name, due, action))

    def kick(self) -> None:
        """Wake the ticker to look at the due times again."""
        self._kick.set()

    def next_due(self) -> float | None:
        """The earliest due time in the table (``None``: nothing is due ever)."""
        times = [d for d in (t.due() for t in self.table) if d is not None]
        return min(times) if times else None

    def run_due(self, now: float) -> list[str]:
        """Run every timer due at ``now``, in table order (each one's due time is asked right
        before it, so an action can make a later timer due in the same tick); return their
        names."""
        ran: list[str] = []
        for t in self.table:
            due = t.due()
            if due is not None and due <= now:
                t.action(now)
                ran.append(t.name)
        return ran

    async def run(self) -> None:
        """The ticker: run what is due, sleep until the next due time or a ``kick``."""
        while True:
            self.run_due(self.clock())
            due = self.next_due()
            delay = None if due is None else max(MIN_SLEEP_S, due - self.clock())
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._kick.wait()
