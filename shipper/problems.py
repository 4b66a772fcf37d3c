"""What is wrong right now, said where an operator looks: ``status.warnings`` and the log.

A problem that lasts (checkpoints that cannot be written, files or directories that cannot be
read) is listed in ``wharf shipper status`` for as long as it lasts and logged when it starts,
then at most once per ``problem_log_interval_s`` per kind: one line, not one per attempt or
per file. It leaves the status when it is over, and the log says that too.

A *warning* is news of something that happened (a lost checkpoint state, a reload setting that
waits for a restart): logged once, and the last ``MAX_WARNINGS`` stay in the status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Final

log = logging.getLogger(__name__)

# Paths listed one per line in the status; past this, one more line counts the rest (a glob
# over a directory tree nobody may read can match thousands).
MAX_LISTED_PATHS: Final = 10
# Past warnings the status lists, newest last.
MAX_WARNINGS: Final = 20


class Problems:
    """Current problems by key, and a log rate limit per kind (see the module docstring)."""

    def __init__(self, log_interval_s: float) -> None:
        self.log_interval_s = log_interval_s
        self.current: dict[str, str] = {}
        self.warnings: list[str] = []
        self._next_log: dict[str, float] = {}
        self._logged_paths: set[str] = set()

    def warn(self, message: str) -> None:
        """Log ``message`` and keep it for the status."""
        log.warning("%s", message)
        self.warnings.append(message)
        del self.warnings[:-MAX_WARNINGS]

    def may_log(self, kind: str) -> bool:
        """Whether a line about ``kind`` may be logged now (then not again for a while)."""
        now = time.monotonic()
        if now < self._next_log.get(kind, 0.0):
            return False
        self._next_log[kind] = now + self.log_interval_s
        return True

    def set(self, key: str, message: str) -> bool:
        """``key`` is a problem now, described by ``message``; whether that is news."""
        new = key not in self.current
        self.current[key] = message
        return new

    def clear(self, key: str) -> bool:
        """``key`` is fine again; whether it was a problem."""
        return self.current.pop(key, None) is not None

    def unreadable(self, paths: Mapping[str, str]) -> None:
        """Log the paths (path → reason) that could not be read and were not logged yet, in
        one line, if the rate limit allows (those it holds back are logged next time)."""
        self._logged_paths &= paths.keys()  # readable again: logged again if it breaks again
        new = [p for p in sorted(paths) if p not in self._logged_paths]
        if not new or not self.may_log("unreadable"):
            return
        first = new[0]
        if len(new) == 1:
            log.warning(
                "cannot read %s (%s): skipped until it can be read (tried again at every rescan)",
                first,
                paths[first],
            )
        else:
            log.warning(
                "cannot read %d paths, first %s (%s): skipped until they can be read (tried "
                "again at every rescan; `wharf shipper status` lists them)",
                len(new),
                first,
                paths[first],
            )
        self._logged_paths.update(new)

    def lines(self, unreadable: Mapping[str, str]) -> list[str]:
        """The status lines: every current problem, then the unreadable paths (capped), then
        the last warnings."""
        out = list(self.current.values())
        paths = sorted(unreadable)
        for path in paths[:MAX_LISTED_PATHS]:
            out.append(
                f"cannot read {path}: {unreadable[path]} (skipped; tried again at every rescan)"
            )
        if len(paths) > MAX_LISTED_PATHS:
            out.append(f"cannot read {len(paths) - MAX_LISTED_PATHS} more paths")
        return out + self.warnings
