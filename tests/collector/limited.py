"""``wharf collector run`` as a child under resource limits, as a systemd unit's ``LimitNOFILE=``
or a shell's ``ulimit`` would start it: a tiny Python prelude sets them, then execs ``wharf``
(same pid, so everything ``CollectorProcess`` offers still applies)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness import CollectorProcess, wait_for
from tests.harness.children import track
from tests.harness.cli import ROOT, WHARF, clean_env
from tests.harness.collector import START_TIMEOUT_S

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

    def start(self, timeout: float = START_TIMEOUT_S) -> CollectorProcess:
        """``CollectorProcess.start`` with the prelude in front (ephemeral ports only)."""
        assert self.proc is None, "already running"
        track(self)
        mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _PRELUDE, repr(self.rlimits),
                 WHARF, "collector", "run", "--data-dir", str(self.data),
                 "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                 "--log-level", "info", *self.args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(),
            )  # fmt: skip
        try:
            self._ports = wait_for(
                lambda: self._reported_ports(mark), timeout, "the ready line", step=0.02
            )
            wait_for(self._healthy, timeout, f"{self.url}/healthz")
        except AssertionError as exc:
            self._kill()
            raise AssertionError(f"collector did not start: {exc}{self.tail()}") from None
        return self
