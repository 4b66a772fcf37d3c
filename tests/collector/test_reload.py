"""SIGHUP on a real ``wharf collector run --config FILE`` process: new tokens and a rotated TLS
certificate apply at once, other changed keys are named as waiting for a restart, a bad file is
refused whole; and the systemd notifications a ``Type=notify`` unit relies on (READY, WATCHDOG,
RELOADING, STOPPING), read from a real notify socket.

The harness's ``CollectorProcess`` checks health over plain HTTP and hands the child a fixed
environment; these tests need TLS listeners and ``$NOTIFY_SOCKET``, so they start the process
themselves, the same way (port 0, the ports read back from the ready line).
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from collector.config import AuthSettings, ClusterSettings, CollectorConfig, TlsSettings
from collector.reload import plan_reload
from tests.collector.certs import make_certs
from tests.harness import ROOT, WHARF, clean_env, wait_for
from tests.harness.children import track, untrack
from tests.harness.cli import run_wharf_text
from tests.harness.collector import READY

TIMEOUT_S = 30.0  # generous: a failure detector, not a speed check


class Collector:
    """``wharf collector run --config CONFIG`` on port 0, its output in ``log``."""

    def __init__(self, tmp: Path, config: Path, env: dict[str, str] | None = None) -> None:
        self.log = tmp / "collector.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [WHARF, "collector", "run", "--config", str(config), "--data-dir",
                 str(tmp / "data"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=clean_env(**(env or {})),
            )  # fmt: skip
        track(self)
        found = wait_for(self._ready, TIMEOUT_S, "the collector's ready line")
        self.ingest, self.http = int(found["ingest"]), int(found["http"])

    def _ready(self) -> re.Match[bytes] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the collector exited {self.proc.returncode}{self.tail()}")
        return READY.search(self.log.read_bytes())

    def tail(self) -> str:
        return "\n--- collector log ---\n" + self.log.read_text(errors="replace")[-3000:]

    def reload(self, outcome: str) -> str:
        """SIGHUP, then the log written since, once it has a line containing ``outcome``."""
        mark = self.log.stat().st_size
        self.proc.send_signal(signal.SIGHUP)

        def written() -> str | None:
            text = self.log.read_bytes()[mark:].decode()
            return text if outcome in text else None

        try:
            return wait_for(written, TIMEOUT_S, f"{outcome!r} in the log")
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.tail()}") from None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(TIMEOUT_S)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        untrack(self)


def _config(path: Path, *, write: str, read: str, extra: str = "") -> Path:
    path.write_text(
        f'[auth]\nwrite_tokens = ["{write}"]\nread_tokens = ["{read}"]\n'
        f"[search]\nprocesses = 1\n{extra}"
    )
    return path


def _ship(c: Collector, token: str, sample: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env(WHARF_COLLECTOR=f"127.0.0.1:{c.ingest}", WHARF_TOKEN=token)
    return run_wharf_text(["ship", "-t", "app", "-p", "raw", str(sample)], env)


def _topics_status(c: Collector, token: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{c.http}/v1/topics", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sighup_swaps_tokens_and_names_what_needs_a_restart(tmp_path: Path) -> None:
    config = _config(tmp_path / "collector.toml", write="w-old", read="r-old")
    sample = tmp_path / "app.log"
    sample.write_text("one\ntwo\n")
    c = Collector(tmp_path, config)
    assert _ship(c, "w-old", sample).returncode == 0
    assert _topics_status(c, "r-old") == 200

    _config(
        config, write="w-new", read="r-new", extra='[storage]\nfsync = "never"\n[limits]\n'
        "max_connections = 8\n",
    )  # fmt: skip
    log = c.reload("reloaded:")
    assert "auth.read_tokens, auth.write_tokens applied" in log
    assert "storage.fsync changed; it takes effect at the next restart" in log
    assert "limits.max_connections changed; it takes effect at the next restart" in log
    assert "w-new" not in log and "r-new" not in log  # secrets stay out of the journal

    refused = _ship(c, "w-old", sample)
    assert refused.returncode == 2 and "token" in refused.stderr, refused.stderr
    assert _ship(c, "w-new", sample).returncode == 0
    assert (_topics_status(c, "r-old"), _topics_status(c, "r-new")) == (403, 200)
    assert c.stop() == 0


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[auth\n", "invalid TOML"),
        ('[auth]\nwrite_tokns = ["x"]\n', "write_tokns"),
        ('[tls]\ncert = "/etc/wharf/server.pem"\n', "must be given together"),
    ],
)
def test_a_bad_file_is_refused_whole(tmp_path: Path, text: str, why: str) -> None:
    config = _config(tmp_path / "collector.toml", write="w1", read="r1")
    sample = tmp_path / "app.log"
    sample.write_text("one\n")
    c = Collector(tmp_path, config)
    config.write_text(text)
    log = c.reload("reload refused")
    assert why in log
    assert _ship(c, "w1", sample).returncode == 0
    assert _topics_status(c, "r1") == 200


def _served_certificate(port: int) -> bytes:
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port), timeout=10))


def _file_certificate(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_sighup_rotates_the_tls_certificate_on_both_listeners(tmp_path: Path) -> None:
    first, second = make_certs(_dir(tmp_path / "ca1")), make_certs(_dir(tmp_path / "ca2"))
    live = _dir(tmp_path / "live")
    for name in ("cert", "key"):
        shutil.copy(first[name], live / f"server.{name}")
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[tls]\ncert = "{live / "server.cert"}"\nkey = "{live / "server.key"}"\n'
        "[search]\nprocesses = 1\n"
    )
    c = Collector(tmp_path, config)
    for port in (c.ingest, c.http):
        assert _served_certificate(port) == _file_certificate(first["cert"])

    # Renewed in place, as certbot does, then `systemctl reload`.
    for name in ("cert", "key"):
        shutil.copy(second[name], live / f"server.{name}")
    log = c.reload("reloaded:")
    assert "tls certificate sha256" in log
    for port in (c.ingest, c.http):
        assert _served_certificate(port) == _file_certificate(second["cert"])

    # A key that does not belong to the certificate: refused, the served one stays.
    shutil.copy(first["key"], live / "server.key")
    assert "tls:" in c.reload("reload refused")
    assert _served_certificate(c.ingest) == _file_certificate(second["cert"])
    assert c.stop() == 0


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


def test_systemd_notifications(tmp_path: Path) -> None:
    """What a ``Type=notify`` unit with ``WatchdogSec=`` and ``ExecReload=`` sees, in order."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(TIMEOUT_S)
    config = _config(tmp_path / "collector.toml", write="w", read="r")
    # systemd pings at half of WATCHDOG_USEC: every 50 ms here, so pings show up at once.
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"}
    with sock:
        c = Collector(tmp_path, config, env)

        def until(prefix: bytes) -> list[bytes]:
            seen = []
            for _ in range(1000):  # bounded: watchdog pings come in between
                message = sock.recv(4096)
                seen.append(message)
                if message.startswith(prefix):
                    return seen
            raise AssertionError(f"no {prefix!r} in {seen[-5:]}")

        ready = until(b"READY=1")[-1]
        assert ready == f"READY=1\nSTATUS=ingest :{c.ingest}, http :{c.http}".encode()
        assert until(b"WATCHDOG=1")
        c.proc.send_signal(signal.SIGHUP)
        reloading = until(b"RELOADING=1")[-1]
        assert reloading.split(b"\n")[1].startswith(b"MONOTONIC_USEC=")
        assert until(b"READY=1")
        assert c.stop() == 0
        assert until(b"STOPPING=1")


def test_without_a_config_file_sighup_is_not_a_reload(tmp_path: Path) -> None:
    """No --config: nothing to re-read, so no handler; SIGHUP keeps its default meaning."""
    command = [WHARF, "collector", "run", "--data-dir", str(tmp_path / "data"),
               "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]  # fmt: skip
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_env()
    ) as proc:
        try:
            assert proc.stdout is not None
            for _ in range(100):  # bounded: a handful of log lines come before the ready one
                if READY.search(proc.stdout.readline()):
                    break
            proc.send_signal(signal.SIGHUP)
            assert proc.wait(TIMEOUT_S) == -signal.SIGHUP
        finally:
            if proc.poll() is None:
                proc.kill()


def test_plan_keeps_restart_keys_and_takes_live_ones() -> None:
    old = CollectorConfig(
        listen="127.0.0.1:1", auth=AuthSettings(write_tokens=["a"]),
        tls=TlsSettings(cert="c1", key="k1", client_ca="ca1"),
    )  # fmt: skip
    new = CollectorConfig(
        listen="127.0.0.1:2", auth=AuthSettings(read_tokens=["b"]),
        tls=TlsSettings(cert="c2", key="k2", client_ca="ca2"),
    )  # fmt: skip
    plan = plan_reload(old, new)
    assert plan.live == ["auth.read_tokens", "auth.write_tokens", "tls.cert", "tls.key"]
    assert plan.restart_needed == ["listen", "tls.client_ca"]
    assert plan.config.listen == "127.0.0.1:1"
    assert plan.config.auth == new.auth
    assert plan.config.tls == TlsSettings(cert="c2", key="k2", client_ca="ca1")


def test_plan_turning_tls_on_or_off_waits_for_a_restart() -> None:
    plain, tls = CollectorConfig(), CollectorConfig(tls=TlsSettings(cert="c", key="k"))
    for old, new in ((plain, tls), (tls, plain)):
        plan = plan_reload(old, new)
        assert (plan.live, plan.restart_needed) == ([], ["tls.cert", "tls.key"])
        assert plan.config.tls == old.tls


def test_plan_names_a_table_added_or_removed_once() -> None:
    clustered = CollectorConfig(cluster=ClusterSettings(nats=["nats://127.0.0.1:4222"]))
    for old, new in ((CollectorConfig(), clustered), (clustered, CollectorConfig())):
        assert plan_reload(old, new).restart_needed == ["cluster"]
