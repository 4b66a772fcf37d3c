"""GNU grep, the oracle for what ``wharf grep``, ``/v1/search`` and the store's scan find."""

from __future__ import annotations

import subprocess

# The C locale: byte semantics and no locale-dependent case folding (the sample logs are
# ASCII, so this is also what a user's UTF-8 locale gives).
GREP_ENV = {"LC_ALL": "C"}


def gnu_grep(*args: str) -> subprocess.CompletedProcess[str]:
    """``grep ARGS`` in the C locale: its status and text output, whatever they are."""
    return subprocess.run(
        ["grep", *args], capture_output=True, text=True, env=GREP_ENV, timeout=60, check=False
    )


def gnu_grep_bytes(*args: str) -> subprocess.CompletedProcess[bytes]:
    """``gnu_grep`` with byte output."""
    return subprocess.run(
        ["grep", *args], capture_output=True, env=GREP_ENV, timeout=60, check=False
    )


def grep_lines(*args: str) -> list[str]:
    """The lines GNU grep prints (split on newlines only, as grep counts them); a grep error
    (status 2) fails the test."""
    done = gnu_grep(*args)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.split("\n")[:-1]
