"""``wharf collector run`` as a child under resource limits, as a systemd unit's ``LimitNOFILE=``
or a shell's ``ulimit`` would start it: a tiny Python prelude sets them, then execs ``wharf``
(same pid, so everything ``CollectorProcess`` offers still applies)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.harness import CollectorProcess

_PRELUDE = (
    "import ast, os, resource, sys\n"
    "for which, pair in ast.literal_eval(sys.argv[1]).items():\n"
    "    resource.setrlimit(which, pair)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class LimitedCollector(CollectorProcess):
    """A ``CollectorProcess`` whose process starts with ``rlimits`` (``{resource.RLIMIT_*:
    (soft, hard)}``)."""

    def __init__(self, data: Path, *, rlimits: dict[int, tuple[int, int]], **kw: Any) -> None:
        super().__init__(data, **kw)
        self.rlimits = rlimits

    def _launcher(self) -> list[str]:
        """The prelude that sets the limits, then execs ``wharf`` (same pid)."""
        return [sys.executable, "-c", _PRELUDE, repr(self.rlimits)]
