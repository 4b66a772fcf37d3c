"""Checkpoints: per followed file, the offset of the first byte the collector has not acked.

Written atomically (temp file, fsync, rename, fsync of the directory) after acks, never
before: a crash at any moment leaves either the old or the new file, and the collector drops
whatever is re-sent from an older offset. The file before the last one is kept as
``checkpoints.prev`` (hard link, then rename), so even a state file damaged on disk after the
fact (an editor, a bad block, a full disk truncating it) falls back to a recent copy instead of
to nothing.

Format: one header line ``WHARF-CHECKPOINT 1 <crc32> <length>``, then JSON. The checksum
catches a torn or edited file; a file that fails it is never half-trusted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from wharf.fsutil import fsync_dir

log = logging.getLogger(__name__)

FILE_NAME: Final = "checkpoints.json"
PREV_NAME: Final = "checkpoints.prev"
_MAGIC: Final = "WHARF-CHECKPOINT"
# Fault injection for crash tests: sleep this long at each step of a save, so a SIGKILL can be
# aimed at the middle of a checkpoint write. Unset in production.
_PAUSE_ENV: Final = "WHARF_FAULT_CHECKPOINT_PAUSE_S"
_VERSION: Final = 1


class FileCheckpoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One file's saved position and the identity it was saved under."""

    file_id: str
    path: str
    dev: int
    ino: int
    offset: int  # first byte not yet acknowledged
    check: int = 0  # identity.check_before(offset)
    head_len: int = 0
    head: str = ""
    source: str = ""  # the path records carry (the path the file was first found at)
    input: str = ""
    # Offsets where an event was cut by a timer (partial line, multiline timeout, end of a
    # rotated file) rather than by the text: a re-read must cut there too, or an event the
    # collector already holds in part would be re-sent whole and dropped as a duplicate.
    forced: list[int] = []
    # Offsets (``offset`` or later) where the dropped rest of an over-long line cut by a timer
    # begins: reading resumed there drops it again instead of shipping it as a line.
    skips: list[int] = []
    detached: bool = False  # renamed away or deleted: finish it, then forget it
    rotations: int = 0


class State(msgspec.Struct, kw_only=True):
    """The whole checkpoint file."""

    files: list[FileCheckpoint] = []
    started_once: bool = True  # present: this is not the very first start


@dataclass
class Loaded:
    """What ``load`` found: the state (``None``: none usable) and what went wrong, if anything."""

    state: State | None
    first_start: bool
    warning: str = ""


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(State)


def encode(state: State) -> bytes:
    """Header line plus JSON body."""
    body = _enc.encode(state)
    head = f"{_MAGIC} {_VERSION} {zlib.crc32(body)} {len(body)}\n".encode()
    return head + body


def decode(data: bytes) -> State:
    """Parse a checkpoint file; ``ValueError`` says what is wrong with it."""
    if not data:
        raise ValueError("the file is empty")
    nl = data.find(b"\n")
    if nl < 0:
        raise ValueError("no header line")
    parts = data[:nl].decode("ascii", "replace").split()
    if len(parts) != 4 or parts[0] != _MAGIC:
        raise ValueError("not a Wharf checkpoint file")
    if parts[1] != str(_VERSION):
        raise ValueError(f"unknown checkpoint version {parts[1]}")
    body = data[nl + 1 :]
    if not (parts[3].isascii() and parts[3].isdigit()) or int(parts[3]) != len(body):
        raise ValueError(f"body is {len(body)} bytes, the header says {parts[3]}: torn or cut")
    if not (parts[2].isascii() and parts[2].isdigit()) or int(parts[2]) != zlib.crc32(body):
        raise ValueError("checksum mismatch: the file was damaged or edited")
    try:
        return _dec.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"bad JSON: {exc}") from exc


class CheckpointStore:
    """Reads and writes ``state_dir/checkpoints.json`` (and its previous copy)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / FILE_NAME
        self.prev = state_dir / PREV_NAME
        self.writes = 0
        self._pause = float(os.environ.get(_PAUSE_ENV, "0") or 0)

    def load(self) -> Loaded:
        """The newest usable state, with a warning when the newest file was not usable."""
        problems: list[str] = []
        for path in (self.path, self.prev):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                problems.append(f"{path}: missing")
                continue
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror}")
                continue
            try:
                state = decode(data)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
                continue
            warning = ""
            if path == self.prev:
                warning = (
                    f"checkpoint state {problems[0]}; resuming from the previous copy "
                    f"{self.prev} (lines after it are re-sent; the collector drops the ones "
                    "it has)"
                )
            return Loaded(state, first_start=False, warning=warning)
        if not self.path.exists() and not self.prev.exists():
            return Loaded(None, first_start=True)
        return Loaded(
            None,
            first_start=False,
            warning="no usable checkpoint state (" + "; ".join(problems) + ")",
        )

    def save(self, state: State) -> None:
        """Write atomically; keep the file it replaces as the previous copy."""
        data = encode(state)
        tmp = self.dir / (FILE_NAME + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            cut = len(data) // 2 if self._pause else len(data)
            for i, part in enumerate((data[:cut], data[cut:])):
                if i and self._pause:
                    time.sleep(self._pause)  # a kill here leaves a torn temp file
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if self._pause:
            time.sleep(self._pause)
        if self.path.exists():
            # Keep the current file as the fallback: link it under a temp name, then rename over
            # the old fallback, so every moment has a complete previous copy.
            prev_tmp = self.dir / (PREV_NAME + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                prev_tmp.unlink()
            try:
                os.link(self.path, prev_tmp)
                os.replace(prev_tmp, self.prev)
            except OSError as exc:
                log.warning("could not keep the previous checkpoint copy: %s", exc)
            if self._pause:
                time.sleep(self._pause)
        os.replace(tmp, self.path)
        fsync_dir(self.dir)
        self.writes += 1
