"""Durable file replacement, shared by the store, consumer groups and the shipper's state; config
files read as text with an error that names them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from wharf.errors import InvalidArgument


def write_atomically(path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one, whole.

    Writes a temp file beside it, fsyncs it, renames it over ``path`` and fsyncs the directory
    (without the last step the rename itself may not survive a power cut).
    """
    tmp = path.with_name(path.name + ".tmp")
    chunks = [data] if isinstance(data, bytes | bytearray) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_config_text(path: Path) -> str:
    """The text of a config file, or ``InvalidArgument`` naming the file and what is wrong:
    unreadable (``cannot read: Permission denied``) or not UTF-8 (the line and the byte), never
    an ``OSError`` or ``UnicodeDecodeError`` with a traceback."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidArgument(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "a config file must be UTF-8"
        ) from exc
