"""The Debian package, built once per test run by ``make deb`` (the contract) for every test that
asks for it, whichever pytest-xdist worker runs that test."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What `make deb` runs besides make: dpkg-buildpackage checks the rest of Build-Depends itself.
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "dh_virtualenv")
# dh-virtualenv downloads the dependencies from PyPI and builds wharf: about a minute here; the
# deadline only turns a hung build into a failure.
BUILD_TIMEOUT_S = 1200


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI (``.ci/run`` sets CI=true and installs the
    tools), so a broken CI setup cannot pass by skipping the package."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """``dist/wharf_<version>_<arch>.deb``, built from this checkout into a temporary directory
    that every xdist worker of this run shares (an flock makes the others wait for the first)."""
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        _unavailable(f"needs {', '.join(missing)} (apt-get install dh-virtualenv debhelper)")
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the run's directory, above each worker's own
    out = shared / "deb"
    with (shared / "deb.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the build below, bounded, is done
        status = out / "status"
        if not status.exists():
            out.mkdir(exist_ok=True)
            with (out / "build.log").open("wb") as log:
                done = subprocess.run(
                    ["make", "-C", str(ROOT), "deb", f"DIST={out}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=BUILD_TIMEOUT_S,
                    check=False,
                )
            status.write_text(str(done.returncode))
    if status.read_text() != "0":
        tail = (out / "build.log").read_text(errors="replace")[-4000:]
        pytest.fail(f"make deb failed:\n{tail}")
    (package,) = out.glob("wharf_*.deb")
    return package
