"""A real collector for CLI tests: ``wharf collector run`` as a child process on loopback ports,
fed with ``wharf ship``, and the ``wharf`` CLI run against it as a child process too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.collector.helpers import free_port, spawn_collector

LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "logs"
ROOT = Path(__file__).resolve().parents[2]
WHARF = str(Path(sys.executable).with_name("wharf"))
HOST = socket.gethostname()  # what `wharf ship` stamps on records


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any WHARF_* or NO_COLOR of the caller's, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WHARF_") and k not in ("NO_COLOR", "FORCE_COLOR")
    }
    env["LC_ALL"] = "C.UTF-8"
    env.update(extra)
    return env


class Collector:
    """``wharf collector run`` on free loopback ports, with its data in ``data``."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port, self.http_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log = (data.parent / f"{data.name}-collector.log").open("wb")
        self.proc = spawn_collector(
            data,
            self.port,
            self.http_port,
            command=[WHARF],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )

    @property
    def env(self) -> dict[str, str]:
        """What a client needs to find this collector."""
        return clean_env(WHARF_COLLECTOR=f"127.0.0.1:{self.port}", WHARF_HTTP=self.url)

    def wharf(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI against this collector (a generous deadline, not a speed check)."""
        return subprocess.run(
            [WHARF, *args],
            capture_output=True,
            text=True,
            input=stdin,
            env={**self.env, **(env or {})},
            timeout=120,
            check=False,
        )

    def ship(self, topic: str, parser: str, path: Path | str, stdin: str | None = None) -> None:
        """``wharf ship``: returns once every record is acknowledged."""
        done = self.wharf("ship", "-t", topic, "-p", parser, str(path), stdin=stdin)
        assert done.returncode == 0, done.stderr

    def stop(self) -> int:
        """SIGTERM and wait: the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            self.log.close()


def gnu_grep(*args: str) -> subprocess.CompletedProcess[str]:
    """GNU grep in the C locale (byte semantics, as the sample logs are ASCII)."""
    return subprocess.run(
        ["grep", *args], capture_output=True, text=True, env={"LC_ALL": "C"}, timeout=60,
        check=False,
    )  # fmt: skip


def assert_one_error_line(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit 2, one ``wharf: ...`` line on stderr holding ``fragment``, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("wharf: "), done.stderr
    assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
