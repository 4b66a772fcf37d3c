"""packaging/logrotate/wharf-example: Debian's logrotate parses it and rotates the way it claims.

The rotation test runs the real `logrotate` on a copy whose glob points into tmp_path and whose
postrotate command writes a marker instead of signalling a service; when not running as root,
`create` keeps the mode but drops the owner (only root can chown to root:adm).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "packaging" / "logrotate" / "wharf-example"
GLOB = "/var/log/myapp/*.log"
RELOAD = "systemctl kill --kill-whom=main --signal=USR1 myapp.service >/dev/null 2>&1 || true"

LOGROTATE = shutil.which("logrotate") or (
    "/usr/sbin/logrotate" if os.access("/usr/sbin/logrotate", os.X_OK) else None
)
pytestmark = pytest.mark.skipif(LOGROTATE is None, reason="needs logrotate (Debian: logrotate)")


def _run(config: Path, state: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    assert LOGROTATE is not None
    return subprocess.run(
        [LOGROTATE, *flags, "--state", str(state), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_debug_parse_is_clean(tmp_path: Path) -> None:
    result = _run(EXAMPLE, tmp_path / "status", "--debug")
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower()


def test_rename_create_and_delayed_compression(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    marker = tmp_path / "reloaded"
    text = EXAMPLE.read_text()
    assert GLOB in text
    assert RELOAD in text
    text = text.replace(GLOB, f"{logs}/*.log").replace(RELOAD, f"echo x >> {marker}")
    if os.geteuid() != 0:
        text = text.replace("create 0640 root adm", "create 0640")
    config = tmp_path / "wharf-example"
    config.write_text(text)
    config.chmod(0o644)  # logrotate ignores group- or world-writable configs
    state = tmp_path / "status"

    app, other = logs / "app.log", logs / "other.log"
    app.write_text("first generation\n")
    other.write_text("other\n")
    first_inode = app.stat().st_ino

    result = _run(config, state, "--force")
    assert result.returncode == 0, result.stderr
    # Renamed (same inode, content intact), not copied and truncated; a new empty file in place.
    assert (logs / "app.log.1").stat().st_ino == first_inode
    assert (logs / "app.log.1").read_text() == "first generation\n"
    assert app.stat().st_size == 0
    assert app.stat().st_ino != first_inode
    assert app.stat().st_mode & 0o777 == 0o640
    # sharedscripts: one reload for both files.
    assert marker.read_text() == "x\n"

    app.write_text("second generation\n")
    result = _run(config, state, "--force")
    assert result.returncode == 0, result.stderr
    # delaycompress: the newest rotation stays plain for the shipper to finish; older is gzipped,
    # and neither matches the "*.log" glob the shipper follows.
    assert (logs / "app.log.1").read_text() == "second generation\n"
    assert (logs / "app.log.2.gz").exists()
    assert not (logs / "app.log.2").exists()
    assert sorted(p.name for p in logs.glob("*.log")) == ["app.log", "other.log"]
    assert marker.read_text() == "x\nx\n"
