"""What the benchmarks share: ``wharf collector run`` (the far end of the shipper and ingest
benches, the server of the CLI bench), started by the test harness's launcher
(``tests/harness/collector.py``): the child binds port 0 and reports its ports."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import CollectorProcess as _Collector  # noqa: E402  (ROOT on the path first)


class CollectorProcess:
    """``wharf collector run`` with data in ``data`` on loopback ports the child picked; back
    from the constructor once ``/healthz`` answers. Its output goes to ``log`` (else to a
    temporary file removed by ``stop()``); a failed start exits with the log's end. ``args``:
    more arguments for ``collector run`` (``--config FILE``)."""

    def __init__(
        self,
        data: Path,
        log: Path | None = None,
        timeout: float = 120,
        args: Sequence[str] = (),
    ) -> None:
        self._own_log = log is None
        if log is None:
            fd, name = tempfile.mkstemp(prefix="wharf-bench-collector-", suffix=".log")
            os.close(fd)
            log = Path(name)
        self.log = log
        self._collector = _Collector(data, log=log, args=args)
        try:
            self._collector.start(timeout)
        except AssertionError as exc:
            self._forget_log()
            raise SystemExit(str(exc)) from None
        self.proc = self._collector.proc
        self.port, self.http = self._collector.ingest_port, self._collector.http_port
        self.url = self._collector.url

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit status."""
        try:
            code = self._collector.stop(timeout=timeout)
        except AssertionError:  # it was killed after the timeout
            code = -signal.SIGKILL
        finally:
            self._collector.close()
            self._forget_log()
        return -1 if code is None else code

    def _forget_log(self) -> None:
        if self._own_log:
            self.log.unlink(missing_ok=True)
