"""The systemd units: `systemd-analyze verify` accepts them, `security` scores them, they say what
DESIGN and the Debian package say.

`verify` checks that every Exec*= binary exists, and `/usr/bin/wharf` only exists once the
package is installed. These tests verify a copy whose ExecStart= names the `wharf` script of the
environment running the tests, in a file of the same name (verify derives the unit name from it);
every other byte is the shipped unit's. `verify --root=` would avoid the rewrite but then needs a
whole systemd unit tree inside that root (sysinit.target and friends), which is a bigger fiction.
tests/packaging/test_deb.py verifies the installed units as they are, after `dpkg -i`.

`verify` reports most mistakes (unknown keys, unparsable values) as warnings with exit status 0,
so a clean result is exit status 0 *and* nothing on stderr. The negative cases below break a copy
on purpose to show that this check fails when it should.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "packaging" / "systemd"
NAMES = ["shipper", "collector"]
SHIPPED_EXEC = "ExecStart=/usr/bin/wharf "

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="needs systemd-analyze (Debian package: systemd)"
)


def _unit(name: str) -> Path:
    return UNITS / f"wharf-{name}.service"


def _wharf_script() -> Path:
    script = Path(sys.executable).parent / "wharf"
    if not (script.is_file() and os.access(script, os.X_OK)):
        pytest.fail(f"{script} is missing: install the project (pip install -e .) first")
    return script


def _installable_copy(tmp_path: Path, name: str, text: str | None = None) -> Path:
    unit = _unit(name)
    text = unit.read_text() if text is None else text
    assert text.count(SHIPPED_EXEC) == 1, "ExecStart= must start the installed /usr/bin/wharf"
    copy = tmp_path / unit.name
    copy.write_text(text.replace(SHIPPED_EXEC, f"ExecStart={_wharf_script()} "))
    return copy


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    # No pager, no colours, no attempt to reach a running systemd: the CI box may not have one.
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    # --man=no: the man page Documentation= names is installed by the package, not here.
    return _analyze("verify", "--man=no", str(unit))


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_verify_is_clean(tmp_path: Path, name: str) -> None:
    result = _verify(_installable_copy(tmp_path, name))
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("Restart=on-failure", "Restart=sometimes", "restart specifier"),
        ("NotifyAccess=main", "NotifyAcess=main", "Unknown key"),
        ("ExecReload=/bin/kill", "ExecReload=/bin/no-such-kill", "is not executable"),
        ("Type=notify", "Type=notify-forever", "service type"),
        ("[Service]", "[Servce]", "Unknown section"),
    ],
)
def test_verify_catches_a_broken_unit(
    tmp_path: Path, name: str, old: str, new: str, complaint: str
) -> None:
    text = _unit(name).read_text()
    assert old in text
    result = _verify(_installable_copy(tmp_path, name, text.replace(old, new, 1)))
    assert result.returncode != 0 or result.stderr
    assert complaint in result.stderr


@pytest.mark.parametrize("name", NAMES)
def test_security_exposure_stays_low(tmp_path: Path, name: str) -> None:
    # Exposure is 0 (locked down) to 10 (no hardening); --threshold is in tenths. The shipper
    # scores 1.4 today, the collector 1.3; 2.0 leaves room for systemd versions that weigh things
    # differently while still failing if a block of hardening goes missing.
    result = _analyze(
        "security",
        "--offline=yes",
        "--threshold=20",
        "--no-pager",
        str(_installable_copy(tmp_path, name)),
    )
    assert result.returncode == 0, result.stdout + result.stderr


# What both daemons share: how systemd knows they are up and alive, how they reload, and the
# sandbox.
COMMON = {
    "Documentation": ["man:wharf(1)"],
    "Type": ["notify"],
    "NotifyAccess": ["main"],
    "WatchdogSec": ["30"],
    "ExecReload": ["/bin/kill -HUP $MAINPID"],
    "Restart": ["on-failure"],
    "ProtectSystem": ["strict"],
    "PrivateTmp": ["yes"],
    "NoNewPrivileges": ["yes"],
    "DynamicUser": ["yes"],
    "CapabilityBoundingSet": [""],
    "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
    "MemoryDenyWriteExecute": ["yes"],
    "Environment": ["PYTHONDONTWRITEBYTECODE=1"],
}
OWN = {
    "shipper": {
        "ExecStart": ["/usr/bin/wharf shipper run --config /etc/wharf/shipper.toml"],
        "ProtectHome": ["read-only"],  # logs in home directories may be shipped
        "StateDirectory": ["wharf/shipper"],
        "SupplementaryGroups": ["adm wharf"],
        "MemoryMax": ["256M"],  # the shipper bounds its memory; the collector's grows with searches
    },
    "collector": {
        "ExecStart": ["/usr/bin/wharf collector run --config /etc/wharf/collector.toml"],
        "ProtectHome": ["yes"],
        "StateDirectory": ["wharf/collector"],
        "SupplementaryGroups": ["wharf"],
    },
}


@pytest.mark.parametrize("name", NAMES)
def test_the_unit_says_what_design_says(name: str) -> None:
    d = _directives(_unit(name).read_text())
    expected = {**COMMON, **OWN[name]}
    assert {key: d.get(key) for key in expected} == expected
    assert d["SystemCallFilter"][0] == "@system-service"
    for key in ("LimitNOFILE", "TimeoutStopSec", "TasksMax"):
        assert key in d


@pytest.mark.parametrize(
    ("name", "key"), [("shipper", "state_dir"), ("collector", "data_dir")]
)  # fmt: skip
def test_the_installed_config_writes_where_the_unit_lets_it(name: str, key: str) -> None:
    """ProtectSystem=strict leaves only StateDirectory= writable: the config the package installs
    must keep its state exactly there."""
    state = _directives(_unit(name).read_text())["StateDirectory"][0]
    installed = tomllib.loads((ROOT / "packaging" / "config" / f"{name}.toml").read_text())
    assert installed[key] == f"/var/lib/{state}"


@pytest.mark.parametrize("name", NAMES)
def test_every_directive_has_a_reason(name: str) -> None:
    """Each directive, or the block it belongs to, is preceded by a comment saying why."""
    lines = _unit(name).read_text().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        if not line or line.startswith(("#", "[")):
            continue
        j = i - 1
        while j >= 0 and lines[j] and not lines[j].startswith(("#", "[")):
            j -= 1
        if j < 0 or not lines[j].startswith("#"):
            uncommented.append(line)
    assert uncommented == []
