"""``HOST:PORT`` addresses, parsed once for every command and config that takes one.

``str.isdigit()`` is true for a superscript two, which ``int()`` then refuses, and ``int()``
itself takes other scripts' decimal digits (Arabic-Indic seven-zero-seven-zero is 7070): a port
is ASCII digits only, within 0-65535, so a bad address is this module's ``InvalidArgument`` (one
line, naming it) and never a ``ValueError`` or an ``OverflowError`` from deep in a socket call.
"""

from __future__ import annotations

from typing import Final

from wharf.errors import InvalidArgument

__all__ = ["MAX_PORT", "host_port_problem", "split_host_port"]

MAX_PORT: Final = 65535


def host_port_problem(addr: str) -> str | None:
    """What is wrong with ``addr`` as ``HOST:PORT`` (``[v6]:PORT`` too), or ``None``."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port:
        return f"{addr!r} is not HOST:PORT"
    if not (port.isascii() and port.isdigit()):
        return f"{addr!r} is not HOST:PORT: port {port!r} is not a number"
    if int(port) > MAX_PORT:
        return f"{addr!r} is not HOST:PORT: port {port} is past {MAX_PORT}"
    if not host.strip("[]"):
        return f"{addr!r} is not HOST:PORT: no host"
    return None


def split_host_port(addr: str, what: str = "address") -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)`` (brackets of ``[v6]`` removed); a bad address raises
    ``InvalidArgument`` as ``"<what> '<addr>' is not HOST:PORT..."``."""
    problem = host_port_problem(addr)
    if problem is not None:
        raise InvalidArgument(f"{what} {problem}")
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)
