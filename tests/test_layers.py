"""The layers are enforced: ``lint-imports`` (run by ``make lint``) passes on the tree and fails,
naming the import, as soon as a module imports upward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("parsers", "wharf", "shipper", "collector", "cli")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the exit status is what the tests look at
    )


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    kept = _lint(root)
    assert kept.returncode == 0, kept.stdout + kept.stderr  # the copy is clean to begin with

    record = root / "wharf" / "record.py"
    record.write_text(record.read_text() + "\nimport collector.storage  # upward: core -> server\n")
    broken = _lint(root)
    assert broken.returncode == 1, broken.stdout
    assert "BROKEN" in broken.stdout
    assert "wharf.record -> collector.storage" in broken.stdout


def test_the_query_engine_may_not_import_aiohttp(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    merge = root / "collector" / "query" / "merge.py"
    merge.write_text(merge.read_text() + "\nimport aiohttp.web  # the engine must not know HTTP\n")
    broken = _lint(root)
    assert broken.returncode == 1, broken.stdout
    assert "collector.query.merge -> aiohttp" in broken.stdout
