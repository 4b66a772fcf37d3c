"""``wharf collector run`` as a child process on 127.0.0.1: start, SIGTERM, SIGKILL, restart on
the same data directory, the environment that points the CLI at it, what it stored.

Ports are handed over without a race: the child binds port 0 for both listeners and logs the
ports it got in its ``collector ready: ingest HOST:PORT, http HOST:PORT`` line (at
``--log-level info``), which ``start()`` reads back from its log file. After a restart the
ports are new: read ``address``/``url``/``env`` again. A test whose clients must find the
collector at the same address across restarts, or before it first starts, passes
``fixed_ports=True`` and gets two ports that no other process is handed (``ports.py``).
"""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from collector.storage import Store
from tests.harness.children import track, untrack
from tests.harness.cli import ROOT, WHARF, clean_env, run_wharf_bytes, run_wharf_text
from tests.harness.ports import ReservedPort, reserve_port
from tests.harness.wait import wait_for

# What ``collector.server`` logs once both listeners are open (the ports they really got).
READY = re.compile(rb"collector ready: ingest \S+:(?P<ingest>\d+), http \S+:(?P<http>\d+)")
# What it logs for each network input ([[inputs]]) before that line: its name and real port.
INPUT_READY = re.compile(rb"input (?P<name>\S+) ready: \S+ \S+:(?P<port>\d+)")
START_TIMEOUT_S = 30.0  # a collector starts in well under a second; this is for a loaded box
STOP_TIMEOUT_S = 60.0  # SIGTERM drains in-flight appends and fsyncs


class CollectorProcess:
    """``wharf collector run`` with its data in ``data``; ``start()`` returns once it is healthy.

    Its output (stdout and stderr, every start appended) goes to ``log``, by default
    ``<data>-collector.log`` next to ``data``. ``args`` are more arguments for
    ``collector run`` (``--config FILE``).
    """

    def __init__(
        self,
        data: Path,
        *,
        fixed_ports: bool = False,
        args: Sequence[str] = (),
        log: Path | None = None,
        ca: Path | None = None,
    ) -> None:
        self.data = data
        self.args = list(args)
        # The CA of the config's [tls] certificate: the HTTP API is then HTTPS (``ssl_context``).
        self.ssl_context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
        self.log = log if log is not None else data.parent / f"{data.name}-collector.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._reserved: list[ReservedPort] = []
        self._ports: tuple[int, int] | None = None
        self.input_ports: dict[str, int] = {}  # the network inputs' ports, by name (start())
        if fixed_ports:
            self._reserved = [reserve_port(), reserve_port()]
            self._ports = (self._reserved[0].port, self._reserved[1].port)
        track(self)  # after its ports: closed first, so it stops listening before they are freed

    # -- where it is ---------------------------------------------------------------------------

    @property
    def ingest_port(self) -> int:
        return self._known_ports()[0]

    @property
    def http_port(self) -> int:
        return self._known_ports()[1]

    @property
    def address(self) -> str:
        """The native ingest address, for producers and shipper configs."""
        return f"127.0.0.1:{self.ingest_port}"

    @property
    def url(self) -> str:
        """The HTTP API."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def env(self) -> dict[str, str]:
        """A clean environment in which the ``wharf`` CLI finds this collector."""
        return clean_env(WHARF_COLLECTOR=self.address, WHARF_HTTP=self.url)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the collector is not running"
        return self.proc.pid

    def _known_ports(self) -> tuple[int, int]:
        assert self._ports is not None, "no ports yet: start() the collector (or fixed_ports)"
        return self._ports

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> CollectorProcess:
        """Start the process and wait until ``/healthz`` answers on the ports it reported."""
        assert self.proc is None, "already running: stop() or kill() it first"
        track(self)
        listen, http = self._known_ports() if self._reserved else (0, 0)
        mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [*self._launcher(), WHARF, "collector", "run", "--data-dir", str(self.data),
                 "--listen", f"127.0.0.1:{listen}", "--http", f"127.0.0.1:{http}",
                 "--log-level", "info", *self.args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(),
            )  # fmt: skip
        try:
            ports = wait_for(
                lambda: self._reported_ports(mark), timeout, "the ready line", step=0.02
            )
            if self._reserved:
                assert ports == self._ports, (ports, self._ports)
            self._ports = ports
            wait_for(self._healthy, timeout, f"{self.url}/healthz")
        except AssertionError as exc:
            self._kill()
            raise AssertionError(f"collector did not start: {exc}{self.tail()}") from None
        return self

    def _launcher(self) -> list[str]:
        """What runs in front of ``wharf`` in the child's command line (nothing here)."""
        return []

    def _reported_ports(self, mark: int) -> tuple[int, int] | None:
        with self.log.open("rb") as f:
            f.seek(mark)
            text = f.read()
        found = READY.search(text)
        if found is not None:
            self.input_ports = {
                m["name"].decode(): int(m["port"]) for m in INPUT_READY.finditer(text)
            }
            return int(found["ingest"]), int(found["http"])
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"it exited with status {self.proc.returncode}")
        return None

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.url}/healthz", timeout=1, context=self.ssl_context
            ) as resp:
                return bool(resp.status == 200)
        except OSError:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"it exited with status {self.proc.returncode}") from None
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Send ``sig`` and wait: the exit status (``None`` if it was not started)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"collector still running {timeout:g} s after {sig!r}"
                ) from None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash, and wait for it to be gone."""
        self.stop(signal.SIGKILL)

    def restart(self, timeout: float = START_TIMEOUT_S) -> CollectorProcess:
        """Start again on the same data directory (after ``kill()`` or ``stop()``), on the same
        ports with ``fixed_ports``, else on new ones."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        self.proc = None
        return self.start(timeout)

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        """Kill it if it still runs; give back reserved ports."""
        self._kill()
        for port in self._reserved:
            port.release()
        untrack(self)

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def tail(self, size: int = 3000) -> str:
        """The end of its log, for failure messages."""
        if not self.log.exists():
            return ""
        return "\n--- collector log ---\n" + self.log.read_bytes()[-size:].decode(errors="replace")

    # -- the CLI against it ------------------------------------------------------------------

    def wharf(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``wharf ARGS`` against this collector; text output."""
        return run_wharf_text(list(args), {**self.env, **(env or {})}, stdin)

    def wharf_bytes(
        self, *args: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """``wharf()`` with byte input and output."""
        return run_wharf_bytes(list(args), self.env, stdin)

    def ship(self, topic: str, parser: str, path: Path | str, stdin: str | None = None) -> None:
        """``wharf ship``: returns once every record is acknowledged."""
        done = self.wharf("ship", "-t", topic, "-p", parser, str(path), stdin=stdin)
        assert done.returncode == 0, done.stderr

    # -- what it stored (read after stop) ----------------------------------------------------

    def records(self, topic: str) -> list[Any]:
        """Every stored record of ``topic``, partition by partition."""
        assert self.proc is None, "read the store after stopping the collector"
        out: list[Any] = []
        with Store(self.data) as store:
            if topic not in store.topics():
                return out
            for part in store.partitions(topic):
                for b in part.read(0, 1 << 40):
                    out.extend(b.records())
        return out

    def lines(self, topic: str) -> list[str]:
        """Every stored line of ``topic``."""
        return [r.line for r in self.records(topic)]
