"""SIGHUP: what a new config changes (``plan_reload``, pure: compares two configs, builds the
new inputs) and applying it to the running daemon (``apply_reload``).

Inputs are compared whole (paths, parser, multiline, fields...): an input whose settings did
not change keeps running untouched, with its open files and partial lines; a changed input is
a removal plus an addition, and the files it shares with its old self resume at their saved
positions. Settings of the connection and the state directory take effect at the next restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from shipper.config import InputConfig, ShipperConfig, load_config
from shipper.follower import InputRuntime
from wharf import sdnotify
from wharf.errors import InvalidArgument

if TYPE_CHECKING:
    from shipper.daemon import Daemon

log = logging.getLogger(__name__)

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


async def apply_reload(d: Daemon, path: Path) -> None:
    """Re-read ``path`` into the running daemon: added inputs start, removed ones stop once
    their acknowledged positions are saved (kept as dormant positions, so an input added back
    resumes where it stopped); every other file keeps its position and its open descriptor."""
    try:
        new = load_config(path)
    except InvalidArgument as exc:
        log.error("reload failed, keeping the running config: %s", exc)
        return
    sdnotify.notify("RELOADING=1", f"MONOTONIC_USEC={sdnotify.monotonic_usec()}")
    plan = plan_reload(d.cfg, new, d.inputs)
    for key in plan.restart_needed:
        d._warn(f"reload: {key} changed; it takes effect at the next restart")
    removed = set(plan.removed)
    victims = [f for f in d.files.followers.values() if f.input in removed]
    d.paused.update(victims)
    for cut in d.batcher.cut_all():
        d.delivery.dispatch(cut)
    deadline = time.monotonic() + d.cfg.shutdown_timeout_s
    while any(f.track.busy for f in victims) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    saved = {e.file_id: e for e in d.files.state().files}
    for f in victims:
        d.files.release(f)
        d.pending_tails.discard(f)
        d.dirty.pop(f, None)
        if not f.detached:
            d.files.dormant[f.key] = saved[f.file_id]
    d.paused.difference_update(victims)
    d.inputs = plan.inputs
    d.files.inputs = d.inputs
    d.cfg = plan.config
    d.files.cfg = plan.config
    d.batcher.batch_bytes = plan.config.batch_bytes
    d.batcher.linger_s = plan.config.linger_s
    d.problems.log_interval_s = plan.config.problem_log_interval_s
    d.rescan()
    d.save_checkpoint()
    sdnotify.notify("READY=1")
    log.info(
        "reloaded: %d inputs (%d added, %d removed)",
        len(d.inputs),
        len(plan.added),
        len(plan.removed),
    )
