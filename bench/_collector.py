"""What the benchmarks share: a free loopback port, and ``wharf collector run`` started on two
of them (the far end of the shipper and ingest benches, the server of the CLI bench)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CollectorProcess:
    """``wharf collector run`` with data in ``data`` on free loopback ports; back from the
    constructor once ``/healthz`` answers. ``log`` takes its output (else it is inherited)."""

    def __init__(self, data: Path, log: Path | None = None, timeout: float = 120) -> None:
        self.port, self.http = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.log = log
        out = log.open("ab") if log is not None else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "collector", "run", "--data-dir", str(data),
             "--listen", f"127.0.0.1:{self.port}", "--http", f"127.0.0.1:{self.http}",
             "--log-level", "warning"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
        )  # fmt: skip
        if out is not None:
            out.close()  # the child has its own copy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(
                        f"the collector exited ({self.proc.returncode}){self._tail()}"
                    ) from None
                time.sleep(0.05)
        self.proc.kill()
        raise SystemExit(f"the collector did not answer in {timeout:g} s{self._tail()}")

    def _tail(self, n: int = 2000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return ":\n" + self.log.read_bytes()[-n:].decode(errors="replace")

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
