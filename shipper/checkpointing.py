"""Saving checkpoints, and what happens when the disk refuses: the write is tried again with
backoff (``_CHECKPOINT_RETRY_S``) while shipping goes on, the problem is in ``status.warnings``
and the log (rate-limited) until a write works, and batches that must not leave before a
checkpoint names their file wait (``Delivery.held``, through ``may_send``).

A ``Checkpointer`` knows when a save is owed: ``dirty`` (acknowledged positions moved, files
came or went: saved every ``checkpoint_interval_s``) or ``urgent`` (a forced boundary was cut:
saved before the batch holding it may leave). ``due`` is its row in the daemon's timer table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shipper.batcher import Cut
from shipper.checkpoint import CheckpointStore
from shipper.config import ShipperConfig
from shipper.files import FileTable
from shipper.problems import Problems
from shipper.status import Stats
from shipper.timers import AT_ONCE

log = logging.getLogger(__name__)

# A failed checkpoint write is tried again after the first delay, doubling up to the second
# (seconds): a full disk or a read-only state_dir is usually an operator's to fix, and once it
# is fixed the next attempt comes within half a minute.
_CHECKPOINT_RETRY_S = (0.5, 30.0)


class Checkpointer:
    """The daemon's checkpoint writes (see the module docstring)."""

    def __init__(
        self,
        cfg: ShipperConfig,
        store: CheckpointStore,
        files: FileTable,
        problems: Problems,
        stats: Stats,
        *,
        on_status: Callable[[], None],
        kick: Callable[[], None],
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.files = files
        self.problems = problems
        self.stats = stats
        self.on_status = on_status  # something the status shows changed
        self.kick = kick  # wake the timers (held batches may go now)
        self.dirty = False
        self.urgent = False
        self.last = 0.0  # monotonic time of the last write that worked
        self.failures = 0  # consecutive failed writes
        self.retry_at = 0.0  # while they fail: the next attempt (monotonic)
        self.failing_since = ""

    def __repr__(self) -> str:
        owed = "urgent" if self.urgent else "dirty" if self.dirty else "clean"
        failing = f", {self.failures} failed writes" if self.failures else ""
        return f"<Checkpointer {owed}{failing}>"

    @property
    def writes(self) -> int:
        """Checkpoints written since the start."""
        return self.store.writes

    def mark(self) -> None:
        """Positions or files changed: save within ``checkpoint_interval_s``."""
        self.dirty = True

    def mark_urgent(self) -> None:
        """A forced boundary was cut: save before the batch holding it may leave."""
        self.urgent = True

    def due(self, held: bool) -> float | None:
        """When the next save is due (the timer table's row); ``held``: whether batches wait
        for a checkpoint (then the save is owed now, or at the next retry)."""
        if self.failures:
            return self.retry_at if self.dirty or self.urgent or held else None
        if self.urgent or held:
            return AT_ONCE
        if self.dirty:
            return self.last + self.cfg.checkpoint_interval_s
        return None

    def may_send(self, cut: Cut) -> bool:
        """``Delivery``'s ``before_send``: whether ``cut`` may leave now."""
        by_id = self.files.by_id
        if self.urgent or any(
            not track.persisted and track.file_id in by_id for track, _ in cut.tracks
        ):
            # A new file id, or a timer's cut, must be on disk before any batch carrying it
            # can reach a collector (see FileTrack.persisted and shipper.tail): until a
            # checkpoint write works, the batch waits (``Delivery.held``). A file no longer
            # followed (finished, or gone while the batch waited) is in no checkpoint to come.
            return self.save()
        return True

    def save(self, *, retry_now: bool = False) -> bool:
        """Write the acknowledged positions (atomically); ``False`` when the disk refused.

        A failure is reported (status, log) and the write is tried again by the ticker with
        backoff (``_CHECKPOINT_RETRY_S``); until then this returns ``False`` at once, unless
        ``retry_now`` (shutdown)."""
        now = time.monotonic()
        if self.failures and now < self.retry_at and not retry_now:
            return False
        try:
            self.write()
        except OSError as exc:
            self._failed(exc, now)
            return False
        if self.failures:
            log.warning("checkpoints are written again (after %d failed attempts)", self.failures)
            self.failures = 0
            self.problems.clear("checkpoint")
            self.on_status()
            self.kick()
        return True

    def write(self) -> None:
        """Write now; ``OSError`` when the disk refuses (the first write of a start: a setup
        error the daemon reports and exits on)."""
        self.store.save(self.files.state())
        for f in self.files.followers.values():
            f.track.persisted = True
        self.dirty = False
        self.urgent = False
        self.last = time.monotonic()

    def _failed(self, exc: OSError, now: float) -> None:
        self.failures += 1
        self.stats.checkpoint_errors += 1
        low, high = _CHECKPOINT_RETRY_S
        delay = min(high, low * 2 ** min(self.failures - 1, 16))
        self.retry_at = now + delay
        why = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        if self.failures == 1:
            self.failing_since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        state_dir = self.store.dir
        self.problems.set(
            "checkpoint",
            f"cannot write checkpoints in {state_dir} since {self.failing_since}: "
            f"{why}; {self.failures} attempts, tried again with backoff (files already "
            "in a checkpoint are still shipped; new files wait)",
        )
        self.on_status()
        if self.failures == 1 or self.problems.may_log("checkpoint"):
            log.error(
                "cannot write checkpoints in %s: %s (attempt %d, next in %.1f s; files already "
                "in a checkpoint are still shipped, new files wait)",
                state_dir,
                why,
                self.failures,
                delay,
            )
