"""debian/ and packaging/ agree with the code and with each other, without building anything:
one version everywhere, the installed configs valid, every file the package installs present,
every lintian override explained. (The package itself: test_deb.py, slow.)"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.harness import WHARF, clean_env

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = ROOT / "debian"


def _changelog_version() -> str:
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    found = re.fullmatch(r"wharf \((?P<version>[^)]+)\) \S+; urgency=\w+", first)
    assert found is not None, first
    return found["version"]


def test_one_version_for_pyproject_the_changelog_and_wharf_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _changelog_version() == pyproject  # a native package: no Debian revision
    done = subprocess.run(
        [WHARF, "--version"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"wharf {pyproject}\n", "")


@pytest.mark.parametrize("name", ["collector.toml", "shipper.toml"])
def test_the_installed_configs_check_clean(name: str) -> None:
    done = subprocess.run(
        [WHARF, "config", "check", str(ROOT / "packaging" / "config" / name)],
        capture_output=True, text=True, env=clean_env(), timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


@pytest.mark.parametrize("listing", ["wharf.install", "wharf.examples", "wharf.manpages"])
def test_every_file_the_package_installs_exists(listing: str) -> None:
    for line in (DEBIAN / listing).read_text().splitlines():
        source = line.split()[0]
        assert (ROOT / source).is_file(), f"{listing}: {source}"


def _override_tags() -> list[str]:
    lines = (DEBIAN / "wharf.lintian-overrides").read_text().splitlines()
    return sorted({line.split()[0] for line in lines if line and not line.startswith("#")})


def test_every_lintian_override_is_explained() -> None:
    """Each overridden tag has a comment above it in the overrides file and a row in
    packaging/README.md's lintian table."""
    lines = (DEBIAN / "wharf.lintian-overrides").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            j = i - 1
            while j >= 0 and lines[j] and not lines[j].startswith("#"):
                j -= 1
            assert j >= 0 and lines[j].startswith("#"), f"no reason above {line!r}"
    readme = (ROOT / "packaging" / "README.md").read_text()
    assert [tag for tag in _override_tags() if f"`{tag}`" not in readme] == []
