"""The ``wharf`` command as tests run it: the console script of this interpreter's
environment (what users run; shell completion needs its name), in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHARF = str(Path(sys.executable).with_name("wharf"))


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


def run_wharf_text(
    args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end (a generous deadline, not a speed check)."""
    return subprocess.run(
        [WHARF, *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def run_wharf_bytes(
    args: list[str], env: dict[str, str], stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """``run_wharf_text`` for byte-exact output."""
    return subprocess.run(
        [WHARF, *args],
        capture_output=True,
        input=stdin,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
