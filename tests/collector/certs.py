"""A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_certs(directory: Path) -> dict[str, Path]:
    """Create ``ca.pem``, ``server.pem`` and ``server.key`` (SAN IP:127.0.0.1) in ``directory``."""
    d = directory
    run = lambda *args: subprocess.run(args, cwd=d, check=True, capture_output=True)  # noqa: E731
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=wharf-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    )
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
