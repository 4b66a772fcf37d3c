"""Saving checkpoints from the daemon, and what happens when the disk refuses: the write is
tried again with backoff (``_CHECKPOINT_RETRY_S``) while shipping goes on, the problem is in
``status.warnings`` and the log (rate-limited) until a write works, and batches that must not
leave before a checkpoint names their file wait (``Delivery.held``). A mixin of ``Daemon``,
like ``shipper.reading``: it shares the daemon's state."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from shipper.checkpoint import CheckpointStore
from shipper.files import FileTable
from shipper.problems import Problems
from shipper.status import Stats

log = logging.getLogger(__name__)

# A failed checkpoint write is tried again after the first delay, doubling up to the second
# (seconds): a full disk or a read-only state_dir is usually an operator's to fix, and once it
# is fixed the next attempt comes within half a minute.
_CHECKPOINT_RETRY_S = (0.5, 30.0)


class CheckpointingMixin:
    """``Daemon``'s checkpoint writing (see the module docstring)."""

    state_dir: Path
    checkpoints: CheckpointStore
    files: FileTable
    problems: Problems
    stats: Stats
    kick: asyncio.Event
    ckpt_dirty: bool
    ckpt_urgent: bool
    last_ckpt: float
    ckpt_failures: int  # consecutive failed checkpoint writes
    ckpt_retry_at: float  # while they fail: the next attempt (monotonic)
    ckpt_failing_since: str
    status_dirty: bool

    def save_checkpoint(self, *, retry_now: bool = False) -> bool:
        """Write the acknowledged positions (atomically); ``False`` when the disk refused.

        A failure is reported (status, log) and the write is tried again by the ticker with
        backoff (``_CHECKPOINT_RETRY_S``); until then this returns ``False`` at once, unless
        ``retry_now`` (shutdown)."""
        now = time.monotonic()
        if self.ckpt_failures and now < self.ckpt_retry_at and not retry_now:
            return False
        try:
            self._write_checkpoint()
        except OSError as exc:
            self._checkpoint_failed(exc, now)
            return False
        if self.ckpt_failures:
            log.warning(
                "checkpoints are written again (after %d failed attempts)", self.ckpt_failures
            )
            self.ckpt_failures = 0
            self.problems.clear("checkpoint")
            self.status_dirty = True
            self.kick.set()
        return True

    def _write_checkpoint(self) -> None:
        self.checkpoints.save(self.files.state())
        for f in self.files.followers.values():
            f.track.persisted = True
        self.ckpt_dirty = False
        self.ckpt_urgent = False
        self.last_ckpt = time.monotonic()

    def _checkpoint_failed(self, exc: OSError, now: float) -> None:
        self.ckpt_failures += 1
        self.stats.checkpoint_errors += 1
        low, high = _CHECKPOINT_RETRY_S
        delay = min(high, low * 2 ** min(self.ckpt_failures - 1, 16))
        self.ckpt_retry_at = now + delay
        why = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        if self.ckpt_failures == 1:
            self.ckpt_failing_since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.problems.set(
            "checkpoint",
            f"cannot write checkpoints in {self.state_dir} since {self.ckpt_failing_since}: "
            f"{why}; {self.ckpt_failures} attempts, tried again with backoff (files already "
            "in a checkpoint are still shipped; new files wait)",
        )
        self.status_dirty = True
        if self.ckpt_failures == 1 or self.problems.may_log("checkpoint"):
            log.error(
                "cannot write checkpoints in %s: %s (attempt %d, next in %.1f s; files already "
                "in a checkpoint are still shipped, new files wait)",
                self.state_dir,
                why,
                self.ckpt_failures,
                delay,
            )
