"""``wharf shipper run`` as a child process, its config, and what it says about itself (the
status file, ``wharf shipper status``, the metrics port)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.harness.children import track, untrack
from tests.harness.cli import ROOT, WHARF, clean_env
from tests.harness.ports import listening_ports
from tests.harness.wait import wait_for

START_TIMEOUT_S = 60.0


def write_shipper_config(
    path: Path,
    *,
    state_dir: Path,
    collectors: list[str],
    inputs: list[dict[str, Any]],
    **knobs: Any,
) -> Path:
    """A shipper.toml with fast test timings unless overridden."""
    base: dict[str, Any] = {
        "linger_s": 0.2,
        "rescan_interval_s": 1.0,
        "rotated_grace_s": 1.0,
        "partial_line_timeout_s": 1.0,
        "checkpoint_interval_s": 0.2,
        "status_interval_s": 0.3,
        "shutdown_timeout_s": 10.0,
        "reconnect_backoff_s": [0.05, 0.5],
    }
    base.update(knobs)
    lines = [f"collectors = {json.dumps(collectors)}", f"state_dir = {json.dumps(str(state_dir))}"]
    for k, v in base.items():
        lines.append(f"{k} = {json.dumps(v)}")
    for inp in inputs:
        lines.append("[[inputs]]")
        for k, v in inp.items():
            if isinstance(v, dict):
                body = ", ".join(f"{kk} = {json.dumps(vv)}" for kk, vv in v.items())
                lines.append(f"{k} = {{ {body} }}")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


class ShipperProcess:
    """``wharf shipper run --config CONFIG`` as a child process; stderr goes to ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._mark = 0
        track(self)

    def start(self, wait_ready: bool = True) -> ShipperProcess:
        """Start it; with ``wait_ready``, return once it logged ``shipper ready``."""
        track(self)
        self.starts += 1
        self._mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [WHARF, "shipper", "run", "--config", str(self.config), "--log-level", "info"],
                cwd=ROOT,
                stderr=err,
                stdout=subprocess.DEVNULL,
                env=clean_env(),
            )
        if wait_ready:
            wait_for(
                lambda: "shipper ready" in self.output() or self.exited(),
                START_TIMEOUT_S,
                "the shipper to be ready",
            )
            assert not self.exited(), f"shipper exited: {self.output()[-2000:]}"
        return self

    def exited(self) -> bool:
        """It was started and is gone."""
        return self.proc is not None and self.proc.poll() is not None

    def output(self, since_start: bool = True) -> str:
        """Its log, from its last start (or all of it)."""
        if not self.log.exists():
            return ""
        data = self.log.read_bytes()
        return (
            data[self._mark :].decode(errors="replace")
            if since_start
            else data.decode(errors="replace")
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def metrics_port(self) -> int:
        """The port of its ``/metrics`` (configure ``metrics_listen = "127.0.0.1:0"``): the one
        port the process listens on, read once it is ready."""
        (port,) = listening_ports(self.pid)
        return port

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def term(self, timeout: float = 60) -> int:
        """SIGTERM (flush and exit) and wait: the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def hup(self) -> None:
        """SIGHUP: reload the config."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def close(self) -> None:
        """Kill it if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None
        untrack(self)

    def status(self) -> dict[str, Any]:
        """``wharf shipper status -o json``, parsed."""
        result: dict[str, Any] = json.loads(shipper_status(self.config))
        return result


def shipper_status(config: Path, fmt: str = "json", **env: str) -> str:
    """What ``wharf shipper status --config CONFIG -o FMT`` prints (it must exit 0)."""
    return subprocess.run(
        [WHARF, "shipper", "status", "--config", str(config), "-o", fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=clean_env(**env),
    ).stdout


def status_of(state_dir: Path) -> dict[str, Any]:
    """The daemon's status file, parsed (no subprocess)."""
    try:
        result: dict[str, Any] = json.loads((state_dir / "status.json").read_bytes())
    except (FileNotFoundError, ValueError):
        return {}
    return result


def caught_up(state_dir: Path, min_files: int = 1) -> bool:
    """Everything read is acknowledged and no rotated file is left to finish."""
    st = status_of(state_dir)
    if not st or st.get("followed_files", 0) < min_files:
        return False
    if st["queued_batches"] or st["inflight_batches"] or st["spool_batches"]:
        return False
    return all(f["lag_bytes"] == 0 and f["state"] in ("open", "closed") for f in st["files"])


def wait_caught_up(state_dir: Path, timeout: float = 60, min_files: int = 1) -> None:
    """Wait until the shipper of ``state_dir`` has every line it read acknowledged."""

    # Two consecutive observations, a status period apart, so a write that landed just after
    # one status snapshot is not missed.
    def twice() -> bool:
        if not caught_up(state_dir, min_files):
            return False
        time.sleep(0.7)
        return caught_up(state_dir, min_files)

    wait_for(twice, timeout, "the shipper to catch up", step=0.2)
