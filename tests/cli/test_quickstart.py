"""The README's first command, ``scripts/quickstart.sh``, on a fresh clone: it creates the
virtualenv, starts a collector and a shipper, shows ``wharf tail`` until Ctrl-C, then stops
both daemons and prints what to try next. As the current user and, when that is root, as an
unprivileged one too (who cannot read every file under /var/log: those are skipped). And
``scripts/cluster.sh``, the same on three NATS servers and two collectors.

The clone is ``git clone`` of this repository, so it holds what is committed. To try
uncommitted work, set ``QUICKSTART_FROM_WORKTREE=1``: the working tree's files (tracked and
untracked, minus ignored ones) are copied instead.
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.cli.helpers import LOGS
from tests.harness import ROOT, clean_env, reserve_port

pytestmark = pytest.mark.slow

# The whole run, from nothing to the first line of `wharf tail`: a fresh virtualenv and pip
# install are most of it (a safety bound, not a speed requirement).
FIRST_LINE_S = 180
STOP_S = 120


def _fresh_copy(dest: Path) -> None:
    if os.environ.get("QUICKSTART_FROM_WORKTREE") == "1":
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.split(b"\0")  # fmt: skip
        for name in filter(None, files):
            src = ROOT / os.fsdecode(name)
            if src.is_file():
                (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / os.fsdecode(name))
        return
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True, timeout=120)


def _users() -> list[str | None]:
    if os.geteuid() != 0:
        return [None]
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return [None]
    return [None, "nobody"]


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stuck(pgid: int, tmp_path: Path) -> str:
    """What a script that did not stop was doing: its processes, and what it printed."""
    ps = subprocess.run(
        ["ps", "-o", "pid,ppid,pgid,stat,wchan:24,etime,args", "-g", str(pgid)],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return f"{ps}\nstderr:\n{(tmp_path / 'stderr.txt').read_text()}"


def _start(
    script: Path, clone: Path, env: dict[str, str], stderr: IO[str], user: str | None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", str(script)],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,  # a process group of its own, like a terminal's job
        user=user,
        group=None if user is None else pwd.getpwnam(user).pw_gid,
        extra_groups=None if user is None else [],
    )


@pytest.fixture
def place(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where the clone goes: ``tmp_path``, or for another user a directory that user can
    reach (pytest's own temporary root is private to us)."""
    if request.node.callspec.params["user"] is None:
        yield tmp_path
        return
    base = Path(tempfile.mkdtemp(prefix="wharf-quickstart-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("script_name", "user"),
    [("quickstart.sh", user) for user in _users()] + [("cluster.sh", None)],
    ids=lambda v: v or "me",
)
def test_quickstart_from_a_fresh_clone(place: Path, script_name: str, user: str | None) -> None:
    tmp_path = place
    cluster = script_name == "cluster.sh"
    work = tmp_path / "work"
    clone = work / "wharf"
    clone.mkdir(parents=True)
    _fresh_copy(clone)
    script = clone / "scripts" / script_name
    if not script.exists():
        pytest.fail(
            f"scripts/{script_name} is not committed yet (QUICKSTART_FROM_WORKTREE=1 runs it)"
        )
    (work / "shared").symlink_to(LOGS.parents[1], target_is_directory=True)  # ../shared
    home = tmp_path / "home"
    home.mkdir()
    # The script takes fixed addresses: ports no other test or bind(0) is handed (harness.ports).
    ports = [reserve_port().port for _ in range(7 if cluster else 2)]
    env = clean_env(
        QUICKSTART_INGEST=f"127.0.0.1:{ports[0]}",
        QUICKSTART_HTTP=f"127.0.0.1:{ports[1]}",
        HOME=str(home),
        COLUMNS="200",
    )
    if cluster:
        env["QUICKSTART_INGEST2"] = f"127.0.0.1:{ports[2]}"
        env["QUICKSTART_HTTP2"] = f"127.0.0.1:{ports[3]}"
        env["QUICKSTART_NATS_ROUTES"] = " ".join(map(str, ports[4:]))
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (tmp_path, work, clone, home, *clone.rglob("*")):
            os.lchown(path, entry.pw_uid, entry.pw_gid)
        env["USER"] = user
    stderr = (tmp_path / "stderr.txt").open("w")
    # A shell that starts with SIGINT ignored can never trap it (POSIX), and a test run started
    # from a background job or nohup has SIGINT ignored: the script gets a terminal's default
    # (a Python handler here becomes SIG_DFL in the child at exec).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = _start(script, clone, env, stderr, user)
    finally:
        signal.signal(signal.SIGINT, previous)
    got: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_lines, args=(proc.stdout, got), daemon=True).start()
    data = clone / ("wharf-cluster" if cluster else "wharf-data")
    daemons = ["collector", "shipper"]
    if cluster:
        daemons += ["collector2", "nats-n1", "nats-n2", "nats-n3"]
    try:
        first = got.get(timeout=FIRST_LINE_S)  # the first record `wharf tail` printed
        assert first, (tmp_path / "stderr.txt").read_text()
        pids = {name: int((data / f"{name}.pid").read_text()) for name in daemons}
        assert all(_alive(pid) for pid in pids.values())
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            assert proc.wait(STOP_S) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"the script did not stop after Ctrl-C:\n{_stuck(proc.pid, tmp_path)}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        proc.stdout.close()
        stderr.close()
    err = (tmp_path / "stderr.txt").read_text()
    deadline = time.monotonic() + 10  # both were waited for by the script; be generous
    while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids.values()), pids
    assert "stopping the shipper" in err and "stopping the collector" in err
    assert ".venv/bin/wharf grep " in err
    for log in ("collector.log", "shipper.log"):
        assert "Traceback" not in (data / log).read_text()
    assert (data / "shipper.toml").exists() and (data / "shipper-state").is_dir()
    if not cluster:
        assert ".venv/bin/wharf replay " in err
        assert (data / "topics" / "samples").is_dir()
        return
    assert "stopping the NATS servers" in err
    assert "Traceback" not in (data / "collector2.log").read_text()
    # the records are in the NATS cluster's streams, on every server
    for n in (1, 2, 3):
        assert list((data / "nats" / f"n{n}").rglob("wharf_samples_0")), f"n{n} has no stream"
