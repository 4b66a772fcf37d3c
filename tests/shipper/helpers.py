"""Real processes for shipper tests: a collector and a shipper as subprocesses on loopback,
numbered-line writers, and a reader of what the collector stored."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from collector.storage import Store
from tests.collector.helpers import free_port, spawn_collector

ROOT = Path(__file__).resolve().parents[2]
NUM = re.compile(r"n=(\d+)")
# Every child process a test started; conftest kills the leftovers after each test, so a
# failing test never leaves a shipper or collector running.
LIVE: list[Any] = []


def wait_for(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``cond`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class CollectorProc:
    """``wharf collector run`` on fixed free ports (so it can be restarted on the same ones)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.http = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> CollectorProc:
        LIVE.append(self)
        self.proc = spawn_collector(self.data, self.port, self.http)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self.proc = None

    def lines(self, topic: str) -> list[str]:
        """Every stored line of ``topic`` (call after ``stop``)."""
        assert self.proc is None, "read the store after stopping the collector"
        out: list[str] = []
        with Store(self.data) as store:
            if topic not in store.topics():
                return out
            for part in store.partitions(topic):
                for b in part.read(0, 1 << 40):
                    out.extend(r.line for r in b.records())
        return out

    def records(self, topic: str) -> list[Any]:
        assert self.proc is None, "read the store after stopping the collector"
        out: list[Any] = []
        with Store(self.data) as store:
            if topic not in store.topics():
                return out
            for part in store.partitions(topic):
                for b in part.read(0, 1 << 40):
                    out.extend(b.records())
        return out


def write_config(
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


class ShipperProc:
    """``wharf shipper run`` as a child process; stderr goes to a log file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait_ready: bool = True) -> ShipperProc:
        LIVE.append(self)
        self.starts += 1
        self._mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "shipper",
                    "run",
                    "--config",
                    str(self.config),
                    "--log-level",
                    "info",
                ],
                cwd=ROOT,
                stderr=err,
                stdout=subprocess.DEVNULL,
            )
        if wait_ready:
            wait_for(
                lambda: "shipper ready" in self.output() or self._dead(),
                60,
                "the shipper to be ready",
            )
            assert not self._dead(), f"shipper exited: {self.output()[-2000:]}"
        return self

    def _dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def output(self, since_start: bool = True) -> str:
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

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def term(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def hup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(shipper_status(self.config))
        return result


def shipper_status(config: Path, fmt: str = "json", **env: str) -> str:
    """What ``wharf shipper status --config CONFIG -o FMT`` prints (it must exit 0)."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "shipper", "status", "--config", str(config), "-o", fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **env},
    ).stdout


class Scene(NamedTuple):
    """The usual setting of a shipper test: ``logs/`` holds the files to tail, a collector is
    running, ``state/`` is the shipper's, and its config is written (the shipper not started:
    tests often write files first)."""

    logs: Path
    state: Path
    col: CollectorProc
    config: Path
    shipper: ShipperProc


def scene(tmp_path: Path, inputs: list[dict[str, Any]], **knobs: Any) -> Scene:
    """A ``Scene`` under ``tmp_path``; input ``paths`` are globs relative to ``logs/``, other
    keyword arguments are config knobs (see ``write_config``)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    col = CollectorProc(tmp_path / "data").start()
    config = write_config(
        tmp_path / "shipper.toml",
        state_dir=state,
        collectors=[col.address],
        inputs=[{**inp, "paths": [str(logs / p) for p in inp["paths"]]} for inp in inputs],
        **knobs,
    )
    return Scene(logs, state, col, config, ShipperProc(config, tmp_path / "shipper.log"))


def line(n: int, width: int = 100) -> bytes:
    """Numbered line of ``width`` bytes, newline included."""
    head = f"n={n:09d} "
    return (head + "x" * (width - len(head) - 1) + "\n").encode()


def numbers(lines: Iterable[str]) -> list[int]:
    """Every ``n=`` number found, once per occurrence."""
    return [int(m.group(1)) for text in lines for m in NUM.finditer(text)]


def assert_exactly_once(found: list[int], expected: Iterable[int]) -> None:
    counts = collections.Counter(found)
    dup = sorted(n for n, c in counts.items() if c > 1)
    want = set(expected)
    missing = sorted(want - set(counts))
    extra = sorted(set(counts) - want)
    assert not dup, f"{len(dup)} numbers stored more than once, e.g. {dup[:10]}"
    assert not missing, f"{len(missing)} numbers missing, e.g. {missing[:10]}"
    assert not extra, f"{len(extra)} unexpected numbers, e.g. {extra[:10]}"


def proc_rss_peak_kb(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
    raise AssertionError("no VmHWM")


def proc_cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


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
    # Two consecutive observations, a status period apart, so a write that landed just after
    # one status snapshot is not missed.
    def twice() -> bool:
        if not caught_up(state_dir, min_files):
            return False
        time.sleep(0.7)
        return caught_up(state_dir, min_files)

    wait_for(twice, timeout, "the shipper to catch up", step=0.2)
