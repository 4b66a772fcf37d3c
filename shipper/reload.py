"""SIGHUP: what a new config changes (``read_plan``, ``plan_reload``: pure, compares two
configs and builds the new inputs) and letting the removed inputs' files go (``retire``); the
daemon applies the rest (``Daemon.reload``). Nothing here knows the daemon: it sees the running
config and inputs, and the file table.

Inputs are compared whole (paths, parser, multiline, fields...): an input whose settings did
not change keeps running untouched, with its open files and partial lines; a changed input is
a removal plus an addition, and the files it shares with its old self resume at their saved
positions. Settings of the connection and the state directory take effect at the next restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from shipper.config import InputConfig, ShipperConfig, load_config
from shipper.files import FileTable
from shipper.follower import InputRuntime
from shipper.lifecycle import FileState
from wharf.errors import InvalidArgument

log = logging.getLogger(__name__)

# While removed inputs' last batches are acknowledged, their tracks are looked at this often.
_SETTLE_POLL_S: Final = 0.05

# Keys a running daemon cannot change under its feet (the connection, the identity, the
# directory that holds the checkpoints and the spool).
RESTART_KEYS = (
    "collectors",
    "token",
    "tls",
    "state_dir",
    "shipper_id",
    "host",
    "window",
    "spool_max_bytes",
    "memory_queue_bytes",
    "builders",
    "metrics_listen",
    "max_line_bytes",
    "reconnect_backoff_s",
)


@dataclass
class ReloadPlan:
    """The inputs after the reload, and what changed."""

    config: ShipperConfig
    inputs: list[InputRuntime]
    added: list[InputRuntime]
    removed: list[InputRuntime]
    restart_needed: list[str]


def _key(cfg: InputConfig) -> bytes:
    return msgspec.json.encode(cfg)


def plan_reload(old: ShipperConfig, new: ShipperConfig, running: list[InputRuntime]) -> ReloadPlan:
    """Decide which inputs to keep, start and stop; keep the restart-only keys as they were."""
    restart = [k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k)]
    effective = msgspec.structs.replace(new, **{k: getattr(old, k) for k in restart})
    by_key = {_key(i.config): i for i in running}
    inputs: list[InputRuntime] = []
    added: list[InputRuntime] = []
    for cfg in new.inputs:
        kept = by_key.pop(_key(cfg), None)
        if kept is None:
            kept = InputRuntime.build(cfg)
            added.append(kept)
        inputs.append(kept)
    return ReloadPlan(effective, inputs, added, list(by_key.values()), restart)


def read_plan(path: Path, running: ShipperConfig, inputs: list[InputRuntime]) -> ReloadPlan | None:
    """The plan for the config at ``path`` against the running one; ``None`` (and the reason
    logged) when it cannot be loaded: the running config stays."""
    try:
        new = load_config(path)
    except InvalidArgument as exc:
        log.error("reload failed, keeping the running config: %s", exc)
        return None
    return plan_reload(running, new, inputs)


async def retire(
    files: FileTable, removed: list[InputRuntime], cut_all: Callable[[], None], timeout_s: float
) -> None:
    """Let the files of ``removed`` inputs go: they stop being read (``PAUSED``), their pending
    batches leave (``cut_all``), and once their spans are acknowledged (or ``timeout_s``
    passed) they are released with their acknowledged positions kept as dormant checkpoints,
    so an input added back resumes where it stopped. Their rotated files (detached) are
    dropped. Every other file keeps its position and its open descriptor."""
    gone = set(removed)
    victims = [f for f in files.followers.values() if f.input in gone]
    paused = [f for f in victims if f.state in (FileState.FOLLOWING, FileState.WAITING)]
    for f in paused:
        files.pause(f)
    cut_all()
    deadline = time.monotonic() + timeout_s
    while any(f.track.busy for f in paused) and time.monotonic() < deadline:
        await asyncio.sleep(_SETTLE_POLL_S)
    saved = {e.file_id: e for e in files.state().files}
    for f in victims:
        # A detached file was not where its path says: no position to keep for that path.
        attached = f.state in (FileState.PAUSED, FileState.FOLLOWING, FileState.WAITING)
        files.retire(f, saved.get(f.file_id) if attached else None)
