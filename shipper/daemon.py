"""``wharf shipper run``: the asyncio shell that puts the shipper's parts together and runs
them. Each part owns its state and says what it is in its ``repr``; this module only wires
them, starts their tasks and holds the timer table.

The parts: the ``FileTable`` (followed files, their life cycle: ``shipper.lifecycle``), the
``Scanner`` (inotify events, rescans, polling), the ``Reader`` (reads dirty files while there
is room), the ``Intake`` (events into batches, batches to delivery: ``wharf ship`` uses the
same), ``Delivery`` (builds, sends, acknowledges), the ``Checkpointer``, the ``StatusFile``
and the ``Timers``.

Tasks: the *reader*, the *builder* (builds cut batches off the reading thread, in order), the
*sender* (hands batches to the ``Producer`` within the window and records acknowledgements),
and the *ticker*, which sleeps on the timer table (linger, partial lines, rotated files,
descriptor slots, rescan, polling, checkpoint, status, watchdog): with nothing to do, the
process sleeps.

No task may die silently. What the disk can refuse is handled where it happens: a checkpoint
write that fails is tried again with backoff while shipping goes on (batches of files not yet
in a saved checkpoint wait for it), and it is in ``status.warnings`` and the log until it works
again. Anything else that ends a task (a bug) is logged with its traceback and stops the
process with exit status 2, so that systemd (``Restart=on-failure``) starts it again from its
checkpoints: nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from shipper.batcher import Batcher
from shipper.building import ProcessBuilders
from shipper.checkpoint import CheckpointStore
from shipper.checkpointing import Checkpointer
from shipper.config import ShipperConfig, load_config
from shipper.delivery import Delivery
from shipper.files import FileTable
from shipper.follower import Follower, InputRuntime
from shipper.intake import Intake
from shipper.lifecycle import FileState
from shipper.outbox import Outbox
from shipper.problems import Problems
from shipper.reader import Reader
from shipper.reload import read_plan, retire
from shipper.scanner import Scanner
from shipper.spool import Spool
from shipper.status import Stats, remove_stale_tmp
from shipper.status_report import (
    StatusFile,
    build_report,
    delivery_snapshot,
    metrics_of,
    serve_metrics,
)
from shipper.timers import Timers
from shipper.transport import Producer
from wharf import sdnotify
from wharf.errors import InvalidArgument

log = logging.getLogger(__name__)


class Daemon:
    """One shipper process (see the module docstring)."""

    def __init__(self, cfg: ShipperConfig, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.state_dir = Path(cfg.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        host = cfg.hostname()
        self.problems = Problems(cfg.problem_log_interval_s)
        self.timers = Timers()
        kick = self.timers.kick
        spool = (
            Spool(self.state_dir / "spool", cfg.spool_max_bytes) if cfg.spool_max_bytes else None
        )
        self.outbox = Outbox(spool, cfg.memory_queue_bytes)
        inputs = [InputRuntime.build(i) for i in cfg.inputs]
        self.files = FileTable(cfg, inputs, self.stats, on_state=self._state_changed)
        self.status = StatusFile(cfg, self.problems)
        self.checkpointer = Checkpointer(
            cfg,
            CheckpointStore(self.state_dir),
            self.files,
            self.problems,
            self.stats,
            on_status=self.status.mark,
            kick=kick,
        )
        self.delivery = Delivery(
            files=self.files,
            outbox=self.outbox,
            stats=self.stats,
            host=host,
            before_send=self.checkpointer.may_send,
            after_ack=self._after_ack,
            on_fatal=self._on_fatal,
        )
        self.batcher = Batcher(cfg.batch_bytes, cfg.linger_s)
        self.intake = Intake(self.batcher, self.delivery, self.stats, host, on_new_batch=kick)
        self.reader = Reader(
            cfg,
            self.files,
            self.intake,
            self.stats,
            self.checkpointer,
            self.status,
            kick=kick,
            housekeeping=self._housekeeping,
        )
        self.scanner = Scanner(
            cfg, self.files, self.reader, self.problems, self.checkpointer, self.status, kick=kick
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.stop_requested = asyncio.Event()
        self.stopping = False
        self.reloading = False
        self.fatal = ""
        self._lock_fd: int | None = None
        self._metrics: object | None = None

    def __repr__(self) -> str:
        return (
            f"<Daemon {len(self.files.followers)} files; {self.reader!r}; "
            f"{self.checkpointer!r}; {self.timers!r}>"
        )

    # -- life cycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, shut down cleanly. Returns the exit code."""
        loop = asyncio.get_running_loop()
        self._lock_state_dir()
        try:
            await self.start()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop_requested.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: self.supervised(self.reload(), "reload"))
            await self.stop_requested.wait()
            await self.shutdown()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
        if self.fatal:
            log.error("%s", self.fatal)
            return 2
        return 0

    def _lock_state_dir(self) -> None:
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InvalidArgument(
                f"another shipper is running with state_dir {self.state_dir}"
            ) from None
        self._lock_fd = fd

    async def start(self) -> None:
        """Load state, match it with the disk, start every task, tell systemd we are ready."""
        cfg = self.cfg
        self.delivery.producer_id = cfg.producer_id(self.state_dir)
        remove_stale_tmp(self.state_dir)
        loaded = self.checkpointer.store.load()
        if loaded.warning:
            self.problems.warn(loaded.warning)
        self.files.first_start = loaded.first_start
        if loaded.state is None and not loaded.first_start:
            self.files.state_lost = True
            self.problems.warn(
                "checkpoint state lost: files that exist now are followed from their "
                + (
                    "end (on_state_loss = 'end'); lines written to them before this start and "
                    "not yet shipped are NOT sent, and nothing is sent twice"
                    if cfg.on_state_loss == "end"
                    else "beginning (on_state_loss = 'beginning'); lines already shipped are "
                    "sent again"
                )
            )
        spool = self.outbox.spool
        spooled = spool.load() if spool is not None else []
        if spool is not None:
            self.stats.dropped_spool_corrupt += spool.dropped_corrupt
        self.files.restore(loaded.state, spooled)
        self.problems.unreadable(self.files.unreadable)
        self.outbox.restore(spooled)
        if spooled:
            self.delivery.seq = spooled[-1].seq + 1
            log.info("replaying %d spooled batches", len(spooled))
        # From here on, this is not the first start. A state_dir that takes no checkpoint now
        # is a setup error: say so and exit, rather than run without one.
        try:
            self.checkpointer.write()
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot write checkpoints: {exc.strerror}", exc.filename
            ) from exc
        for f in self.files.followers.values():
            self.reader.mark(f)
        self.delivery.producer = Producer(
            cfg.collectors,
            producer_id=self.delivery.producer_id,
            token=cfg.token,
            ssl_context=cfg.ssl_context(),
            window=cfg.window,
            client_name="wharf-shipper/0.1",
            backoff_s=cfg.reconnect_backoff_s,
        )
        self.delivery.window = asyncio.Semaphore(cfg.window)
        builders = None
        if cfg.builders:
            builders = ProcessBuilders(cfg.builders)
            await builders.start()
            self.delivery.builds = builders
        self.scanner.start(asyncio.get_running_loop())
        self._add_timers()
        d = self.delivery
        for name, coro in (
            ("reader", self.reader.run()),
            ("builder", d.builder()),
            ("sender", d.sender()),
            ("ticker", self.timers.run()),
        ):
            self.tasks.append(self.supervised(coro, name))
        if builders is not None:
            # A builder process that dies, even between jobs, stops the daemon (exit 2).
            self.tasks.append(self.supervised(builders.watch(), "builder processes"))
        if cfg.metrics_listen:
            self._metrics = await serve_metrics(cfg.metrics_listen, self._metrics_text)
        self.reader.wake.set()
        sdnotify.notify("READY=1", f"STATUS=following {len(self.files.followers)} files")
        log.info(
            "shipper ready: %d files, %d inputs, collectors %s",
            len(self.files.followers),
            len(self.files.inputs),
            ", ".join(cfg.collectors),
        )

    def _add_timers(self) -> None:
        """The timer table, in the order its actions run in one tick (``shipper.timers``)."""
        t, reader, scanner = self.timers, self.reader, self.scanner
        t.add("linger", self._linger_due, self._cut_lingering)
        t.add("partial lines", reader.partial_due, reader.flush_partial)
        t.add("rotated files", reader.finish_due, reader.finish_detached)
        t.add("descriptor slots", reader.waiting_due, reader.retry_waiting)
        t.add("rescan", scanner.rescan_due, scanner.rescan_now)
        t.add("poll", scanner.poll_due, scanner.poll)
        # After the timers that cut forced boundaries: a forced cut must be on disk before the
        # batch holding it can reach a collector, so this runs before the builder's next turn.
        t.add("checkpoint", self._checkpoint_due, self._checkpoint)
        t.add("status", self.status.due, lambda _: self.write_status())
        watchdog = sdnotify.watchdog_interval_s()
        if watchdog is not None:
            next_ping = [time.monotonic()]

            def ping(now: float) -> None:
                sdnotify.notify("WATCHDOG=1")
                next_ping[0] = now + watchdog

            t.add("watchdog", lambda: next_ping[0], ping)

    async def shutdown(self) -> None:
        """Flush partial lines of files read to their end, wait for acks within
        ``shutdown_timeout_s``, spool what is left, save checkpoints."""
        sdnotify.notify("STOPPING=1")
        self.stopping = True
        self.scanner.stop()
        reader = self.tasks[0]
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged
            await reader
        self.reader.flush_at_shutdown()
        self.intake.cut_all()
        self.checkpointer.save(retry_now=True)
        self.delivery.release_held()
        deadline = time.monotonic() + self.cfg.shutdown_timeout_s
        if not self.tasks[1].done():  # the builder (a dead one builds nothing more)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await self.delivery.build_q.join()
        if not self.fatal:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await self.outbox.wait_empty()
        self.delivery.closing = True
        left = len(self.outbox)
        if left:
            unspooled = self.outbox.spill_all()
            log.warning(
                "%d batches not acknowledged at exit: %d spooled, the rest is re-read from the "
                "files at the next start",
                left,
                left - unspooled,
            )
        for t in self.tasks[1:]:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.delivery.stop()
        await self.delivery.builds.close()
        if self._metrics is not None:
            await self._metrics.cleanup()  # type: ignore[attr-defined]
        if self.delivery.held:
            log.warning(
                "%d batches waited for a checkpoint write until the end: their lines are read "
                "again at the next start",
                len(self.delivery.held),
            )
        if not self.checkpointer.save(retry_now=True):
            log.error(
                "the last checkpoint could not be written: the next start resumes from the one "
                "before (lines sent since are sent again; the collector drops them)"
            )
        self.write_status()
        for f in list(self.files.open):
            self.files.close(f)
        log.info("shipper stopped")

    def supervised(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task that may not end by itself: if it does (an exception that
        nothing handled: a bug), the reason is logged with its traceback and the process stops
        with exit status 2, for systemd to restart it (see the module docstring)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and (self.stopping or task.get_name() == "reload"):
            return  # done: a reload, or a task that ends with the shutdown
        why = f"{type(exc).__name__}: {exc}" if exc is not None else "it returned"
        log.error("the %s task stopped (%s)", task.get_name(), why, exc_info=exc)
        self._on_fatal(f"internal error: the {task.get_name()} task stopped ({why}); exiting")

    # -- wiring ---------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        """Before each pass of the reader: the path events that came in."""
        self.scanner.handle_events()

    def _state_changed(self, f: Follower) -> None:
        """A file moved in its life cycle: the timers' due times may have moved too."""
        if f.state is FileState.RELEASED:
            self.reader.forget(f)
        self.timers.kick()

    def _after_ack(self) -> None:
        if not self.checkpointer.dirty or (not self.outbox and self.batcher.pending):
            self.timers.kick()  # a checkpoint to save, or a pending batch may leave (linger)
        self.checkpointer.mark()
        self.status.mark()

    def _on_fatal(self, message: str) -> None:
        self.fatal = message
        self.stop_requested.set()

    def _linger_due(self) -> float | None:
        return self.intake.linger_due(reading=bool(self.reader.dirty))

    def _cut_lingering(self, now: float) -> None:
        self.intake.cut_lingering(now, reading=bool(self.reader.dirty))

    def _checkpoint_due(self) -> float | None:
        return self.checkpointer.due(held=bool(self.delivery.held))

    def _checkpoint(self, now: float) -> None:
        if self.checkpointer.urgent or self.checkpointer.dirty:
            self.checkpointer.save()
        if self.delivery.held:
            self.delivery.release_held()

    # -- what the outside sees --------------------------------------------------------------

    def write_status(self) -> None:
        """Replace ``status.json``."""
        self.status.write(
            build_report(
                started_at=self.status.started_at,
                shipper_id=self.delivery.producer_id,
                host=self.intake.host,
                collectors=self.cfg.collectors,
                inotify=self.scanner.inotify,
                files=self.files.snapshot(),
                delivery=delivery_snapshot(self.outbox, self.delivery.producer),
                checkpoint_writes=self.checkpointer.writes,
                problems=self.problems,
                stats=self.stats,
            )
        )

    def _metrics_text(self) -> str:
        return metrics_of(
            self.stats,
            self.files.snapshot(),
            delivery_snapshot(self.outbox, self.delivery.producer),
        )

    # -- reload ---------------------------------------------------------------------------------

    async def reload(self) -> None:
        """SIGHUP: re-read the config. Added inputs start, removed ones stop once their
        acknowledged positions are saved (``shipper.reload``); settings that need a restart
        are reported and wait for it."""
        if self.config_path is None or self.stopping or self.reloading:
            return
        self.reloading = True
        try:
            plan = read_plan(self.config_path, self.cfg, self.files.inputs)
            if plan is None:
                return
            sdnotify.notify("RELOADING=1", f"MONOTONIC_USEC={sdnotify.monotonic_usec()}")
            for key in plan.restart_needed:
                self.problems.warn(f"reload: {key} changed; it takes effect at the next restart")
            await retire(self.files, plan.removed, self.intake.cut_all, self.cfg.shutdown_timeout_s)
            self._configure(plan.config, plan.inputs)
            self.scanner.rescan()
            self.checkpointer.save()
            sdnotify.notify("READY=1")
            log.info(
                "reloaded: %d inputs (%d added, %d removed)",
                len(plan.inputs),
                len(plan.added),
                len(plan.removed),
            )
        finally:
            self.reloading = False

    def _configure(self, cfg: ShipperConfig, inputs: list[InputRuntime]) -> None:
        """Hand a reloaded config to every part (the restart-only keys are the old ones)."""
        self.cfg = cfg
        self.files.inputs = inputs
        for part in (self.files, self.reader, self.scanner, self.checkpointer, self.status):
            part.cfg = cfg
        self.batcher.batch_bytes = cfg.batch_bytes
        self.batcher.linger_s = cfg.linger_s
        self.problems.log_interval_s = cfg.problem_log_interval_s


def run(config_path: Path) -> int:
    """Load the config and run the daemon until it is told to stop."""
    cfg = load_config(config_path)
    return asyncio.run(Daemon(cfg, config_path).run())
