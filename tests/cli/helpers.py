"""What the CLI tests share besides the harness: the sample logs, the host name ``wharf ship``
stamps, and the shape of a user error."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "logs"
HOST = socket.gethostname()  # what `wharf ship` stamps on records


def assert_one_error_line(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit 2, one ``wharf: ...`` line on stderr holding ``fragment``, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("wharf: "), done.stderr
    assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
