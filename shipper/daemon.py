"""``wharf shipper run``: the asyncio shell that drives discovery, reading, batching, delivery,
checkpoints and status. The logic lives in the pure pieces (``tail``, ``batcher``, ``outbox``,
``identity``); this module only schedules them.

Tasks: a *reader* (reads dirty files while the outbox has room), a *builder* (compresses cut
batches in a worker thread, in order), a *sender* (hands batches to the ``Producer`` within the
window and records acknowledgements), and a *ticker* that sleeps until the next timer is due
(linger, partial lines, rotated files, rescan, checkpoint, status, watchdog): with nothing to
do, the process sleeps.

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

from shipper.batcher import Batcher, Cut
from shipper.checkpoint import CheckpointStore
from shipper.checkpointing import CheckpointingMixin
from shipper.config import ShipperConfig, load_config
from shipper.delivery import Delivery
from shipper.discovery import Watcher
from shipper.files import FileTable
from shipper.follower import Follower, InputRuntime
from shipper.outbox import Outbox
from shipper.problems import Problems
from shipper.reading import ReadingMixin
from shipper.reload import apply_reload
from shipper.spool import Spool
from shipper.status import Stats, remove_stale_tmp, write_status
from shipper.status_report import build_report, serve_metrics
from shipper.transport import Producer
from wharf import sdnotify
from wharf.errors import InvalidArgument

log = logging.getLogger(__name__)

_DETACHED_POLL_S = 0.5  # renamed or deleted files get no inotify events: poll them
_FALLBACK_POLL_S = (0.25, 5.0)  # without inotify: per-file polling, backing off when idle
_STATUS_MAX_AGE_S = 30.0  # rewrite the status file at least this often, even when idle
_BUILD_AHEAD = 2  # cut batches waiting for the builder before reading pauses (bounds memory)
_PAUSED_EVENTS_S = 0.25  # while reading is paused, path events are handled this often
# A batch waits up to ``linger_s`` to fill while earlier ones are being delivered; once every
# file is read and nothing is in flight there is nothing to wait for, and it leaves after this
# (Kafka's producer: linger.ms = 5). Under load batches fill while the window is busy; at a
# trickle a line reaches the collector in milliseconds, not after a full linger.
_IDLE_LINGER_S = 0.005


class Daemon(ReadingMixin, CheckpointingMixin):
    """One shipper process (see the module docstring)."""

    def __init__(self, cfg: ShipperConfig, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.state_dir = Path(cfg.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        self.warnings: list[str] = []
        self.problems = Problems(cfg.problem_log_interval_s)
        self.checkpoints = CheckpointStore(self.state_dir)
        self.spool = (
            Spool(self.state_dir / "spool", cfg.spool_max_bytes) if cfg.spool_max_bytes else None
        )
        self.outbox = Outbox(self.spool, cfg.memory_queue_bytes)
        self.batcher = Batcher(cfg.batch_bytes, cfg.linger_s)
        self.inputs = [InputRuntime.build(i) for i in cfg.inputs]
        self.files = FileTable(cfg, self.inputs, self.stats)
        self.host = cfg.hostname()
        self.delivery = Delivery(
            files=self.files,
            outbox=self.outbox,
            stats=self.stats,
            host=self.host,
            before_send=self._before_send,
            after_ack=self._after_ack,
            on_fatal=self._on_fatal,
        )
        self.watcher: Watcher | None = None
        self.started_at = time.time()
        self.dirty: dict[Follower, None] = {}  # followers that may have bytes to read
        self.path_events: dict[str, bool] = {}
        self.pending_tails: set[Follower] = set()  # tails holding unemitted bytes
        self.tasks: list[asyncio.Task[None]] = []
        self.wake_reader = asyncio.Event()
        self.kick = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.stopping = False
        self.reloading = False
        self.fatal: str = ""
        self.ckpt_dirty = False
        self.ckpt_urgent = False
        self.last_ckpt = 0.0
        self.ckpt_failures = 0  # consecutive failed checkpoint writes
        self.ckpt_retry_at = 0.0  # while they fail: the next attempt (monotonic)
        self.ckpt_failing_since = ""
        self.status_dirty = True
        self.last_status = 0.0
        self.next_rescan = 0.0
        self.next_poll = 0.0
        self.poll_s = _FALLBACK_POLL_S[0]
        self.paused: set[Follower] = set()  # followers of inputs being removed by a reload
        self.waiting_fd: set[Follower] = set()  # followers waiting for a descriptor slot
        self._lock_fd: int | None = None
        self._metrics: object | None = None

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
        loaded = self.checkpoints.load()
        if loaded.warning:
            self._warn(loaded.warning)
        self.files.first_start = loaded.first_start
        if loaded.state is None and not loaded.first_start:
            self.files.state_lost = True
            self._warn(
                "checkpoint state lost: files that exist now are followed from their "
                + (
                    "end (on_state_loss = 'end'); lines written to them before this start and "
                    "not yet shipped are NOT sent, and nothing is sent twice"
                    if cfg.on_state_loss == "end"
                    else "beginning (on_state_loss = 'beginning'); lines already shipped are "
                    "sent again"
                )
            )
        spooled = self.spool.load() if self.spool is not None else []
        if self.spool is not None:
            self.stats.dropped_spool_corrupt += self.spool.dropped_corrupt
        self.files.restore(loaded.state, spooled)
        self.problems.unreadable(self.files.unreadable)
        self.outbox.restore(spooled)
        if spooled:
            self.delivery.seq = spooled[-1].seq + 1
            log.info("replaying %d spooled batches", len(spooled))
        # From here on, this is not the first start. A state_dir that takes no checkpoint now
        # is a setup error: say so and exit, rather than run without one.
        try:
            self._write_checkpoint()
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot write checkpoints: {exc.strerror}", exc.filename
            ) from exc
        for f in self.files.followers.values():
            self.dirty[f] = None
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
        loop = asyncio.get_running_loop()
        self.watcher = Watcher(loop, self._on_paths)
        self.watcher.start()
        if self.watcher.failed:
            self._warn(self.watcher.failed)
        self.watcher.watch(self._roots())
        self.next_rescan = time.monotonic() + cfg.rescan_interval_s
        d = self.delivery
        for name, coro in (
            ("reader", self._reader()),
            ("builder", d.builder()),
            ("sender", d.sender()),
            ("ticker", self._ticker()),
        ):
            self.tasks.append(self.supervised(coro, name))
        if cfg.metrics_listen:
            self._metrics = await serve_metrics(self, cfg.metrics_listen)
        self.wake_reader.set()
        sdnotify.notify("READY=1", f"STATUS=following {len(self.files.followers)} files")
        log.info(
            "shipper ready: %d files, %d inputs, collectors %s",
            len(self.files.followers),
            len(self.inputs),
            ", ".join(cfg.collectors),
        )

    async def shutdown(self) -> None:
        """Flush partial lines of files read to their end, wait for acks within
        ``shutdown_timeout_s``, spool what is left, save checkpoints."""
        sdnotify.notify("STOPPING=1")
        self.stopping = True
        if self.watcher is not None:
            self.watcher.stop()
        reader = self.tasks[0]
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged
            await reader
        now_ns = time.monotonic_ns()
        for f in list(self.pending_tails):
            # A partial last line is shipped. A file we are behind on, or a multiline event
            # still open (a trace being written) or a container line still missing fragments,
            # lies past the checkpoint and is re-read whole at the next start instead of being
            # cut in two here.
            if f.fd is not None and f.pos >= f.size and not f.tail.grouping:
                self._flush_tail(f, f.tail.flush(now_ns))
        for cut in self.batcher.cut_all():
            self.delivery.dispatch(cut)
        self.save_checkpoint(retry_now=True)
        self.delivery.release_held()
        deadline = time.monotonic() + self.cfg.shutdown_timeout_s
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
        if self._metrics is not None:
            await self._metrics.cleanup()  # type: ignore[attr-defined]
        if self.delivery.held:
            log.warning(
                "%d batches waited for a checkpoint write until the end: their lines are read "
                "again at the next start",
                len(self.delivery.held),
            )
        if not self.save_checkpoint(retry_now=True):
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

    # -- discovery -------------------------------------------------------------------------------

    def _roots(self) -> list[tuple[Path, bool]]:
        return [root for inp in self.inputs for root in inp.matcher.roots]

    def _on_paths(self, paths: dict[str, bool]) -> None:
        for p, structural in paths.items():
            f = self.files.by_path.get(p)
            if f is not None and not structural:
                self.dirty[f] = None
            else:
                self.path_events[p] = self.path_events.get(p, False) or structural
        self.wake_reader.set()

    def _note_unreadable(self, before: dict[str, str]) -> None:
        """Report paths that cannot be read (status and a rate-limited log line)."""
        if self.files.unreadable != before:
            self.status_dirty = True
        self.problems.unreadable(self.files.unreadable)

    def _handle_path_events(self) -> None:
        before = dict(self.files.unreadable)
        events, self.path_events = self.path_events, {}
        for p in events:
            f = self.files.by_path.get(p)
            if f is not None:
                self.dirty[f] = None
                if self.files.check_path(f) is not None:
                    self._adopt(p)
                self._note_detached(f)
            elif os.path.isdir(p):
                self.next_rescan = min(self.next_rescan, time.monotonic() + 0.1)
                self.kick.set()
            else:
                self._adopt(p)
        self._note_unreadable(before)

    def _adopt(self, path: str) -> None:
        if path in self.files.by_path:
            return
        inp = self.files.input_for(path)
        if inp is None:
            return
        f = self.files.adopt(path, inp)
        if f is not None:
            log.debug("following %s (file id %s)", path, f.file_id)
            self.dirty[f] = None
            self.ckpt_dirty = True
            self.status_dirty = True

    def rescan(self) -> None:
        """The slow, complete pass: new files, renames, deletions, growth inotify missed."""
        before = dict(self.files.unreadable)
        self.files.unreadable.clear()  # this pass finds again whatever still cannot be read
        for inp in self.inputs:
            for path in inp.matcher.scan(self.files.unreadable):
                if path not in self.files.by_path:
                    self._adopt(path)
        self._note_unreadable(before)
        for f in list(self.files.followers.values()):
            if f.detached or f in self.paused:
                continue
            try:
                st = os.stat(f.path)
            except OSError:
                st = None
            if st is None or (st.st_dev, st.st_ino) != f.key:
                self.dirty[f] = None
                replaced = self.files.check_path(f)
                if replaced is not None:
                    self._adopt(replaced)
                self._note_detached(f)
            elif st.st_size != f.pos:
                self.dirty[f] = None
        if self.files.close_idle(self.cfg.close_inactive_s):
            self.status_dirty = True
        self.files.prune_dormant()
        if self.watcher is not None:
            self.watcher.watch(self._roots())
        self.wake_reader.set()

    # -- reading ---------------------------------------------------------------------------------

    def _room(self) -> bool:
        return (
            self.outbox.has_room()
            and self.delivery.build_q.qsize() < _BUILD_AHEAD
            and not self.delivery.held
        )

    async def _wait_room(self) -> None:
        """Until ``_room``: woken by the outbox (an ack freed memory) or the builder (a batch
        left the build queue), never by polling, so reading resumes the moment it may."""
        while not self._room():
            if not self.outbox.has_room():
                await self.outbox.wait_room()
            elif self.delivery.held:
                await self.delivery.wait_released()
            else:
                await self.delivery.wait_built()

    async def _reader(self) -> None:
        while True:
            if self.path_events:
                self._handle_path_events()
            if not self.dirty:
                if self.batcher.pending:
                    self.kick.set()  # caught up: the ticker may cut early (``_linger``)
                self.wake_reader.clear()
                await self.wake_reader.wait()
                continue
            if not self._room():
                # Paused for room; renames and deletions are still handled while it lasts.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_PAUSED_EVENTS_S):
                        await self._wait_room()
                continue
            todo = list(self.dirty)
            self.dirty.clear()
            for i, f in enumerate(todo):
                if not self._room():
                    for g in todo[i:]:
                        self.dirty[g] = None
                    break
                if f in self.paused or self.files.followers.get(f.key) is not f:
                    continue
                try:
                    more = self._read_one(f)
                except OSError as exc:
                    log.warning("reading %s: %s", f.path, exc)
                    more = False
                if more:
                    self.dirty[f] = None
            await asyncio.sleep(0)

    # -- delivery hooks --------------------------------------------------------------------------

    def _before_send(self, cut: Cut) -> bool:
        by_id = self.files.by_id
        if self.ckpt_urgent or any(
            not track.persisted and track.file_id in by_id for track, _ in cut.tracks
        ):
            # A new file id, or a timer's cut, must be on disk before any batch carrying it
            # can reach a collector (see FileTrack.persisted and shipper.tail): until a
            # checkpoint write works, the batch waits (``Delivery.held``). A file no longer
            # followed (finished, or gone while the batch waited) is in no checkpoint to come.
            return self.save_checkpoint()
        return True

    def _after_ack(self) -> None:
        if not self.ckpt_dirty or (not self.outbox and self.batcher.pending):
            self.kick.set()  # a checkpoint to save, or a pending batch may leave (``_linger``)
        self.ckpt_dirty = True
        self.status_dirty = True

    def _on_fatal(self, message: str) -> None:
        self.fatal = message
        self.stop_requested.set()

    # -- timers --------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        watchdog = sdnotify.watchdog_interval_s()
        next_ping = time.monotonic()
        while True:
            now = time.monotonic()
            self._tick(now)
            if watchdog is not None and now >= next_ping:
                sdnotify.notify("WATCHDOG=1")
                next_ping = now + watchdog
            due = [self.next_rescan]
            if watchdog is not None:
                due.append(next_ping)
            linger = self.batcher.next_due(self._linger())
            if linger is not None:
                due.append(linger)
            partial_ns = int(self.cfg.partial_line_timeout_s * 1e9)
            for f in self.pending_tails:
                t = f.tail.next_due_ns(partial_ns)
                if t is not None:
                    due.append(t / 1e9)
            if self.files.detached:
                due.append(now + _DETACHED_POLL_S)
            if self.waiting_fd:
                due.append(now + 0.2)
            if self.ckpt_failures and (self.ckpt_dirty or self.ckpt_urgent or self.delivery.held):
                due.append(self.ckpt_retry_at)
            elif self.ckpt_dirty:
                due.append(self.last_ckpt + self.cfg.checkpoint_interval_s)
            if self.status_dirty:
                due.append(self.last_status + self.cfg.status_interval_s)
            due.append(self.last_status + _STATUS_MAX_AGE_S)
            if self.watcher is not None and not self.watcher.active:
                due.append(self.next_poll)
            delay = max(0.005, min(due) - time.monotonic())
            self.kick.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.kick.wait()

    def _linger(self) -> float:
        """How long a pending batch may wait to fill now (see ``_IDLE_LINGER_S``)."""
        idle = not self.dirty and not self.outbox and self.delivery.build_q.empty()
        return min(self.cfg.linger_s, _IDLE_LINGER_S) if idle else self.cfg.linger_s

    def _tick(self, now: float) -> None:
        for cut in self.batcher.due(now, self._linger()):
            self.delivery.dispatch(cut)
        now_ns = time.monotonic_ns()
        partial_ns = int(self.cfg.partial_line_timeout_s * 1e9)
        for f in list(self.pending_tails):
            due = f.tail.next_due_ns(partial_ns)
            if due is not None and due <= now_ns:
                self._flush_tail(f, f.tail.flush_due(now_ns, partial_ns))
        self._finish_detached(now, now_ns)
        if self.waiting_fd:
            for f in self.waiting_fd:
                self.dirty[f] = None
            self.waiting_fd.clear()
            self.wake_reader.set()
        if now >= self.next_rescan:
            self.next_rescan = now + self.cfg.rescan_interval_s
            self.rescan()
        if self.watcher is not None and not self.watcher.active and now >= self.next_poll:
            self._poll_all()
            self.next_poll = now + self.poll_s
        if self.ckpt_urgent or (
            self.ckpt_dirty and now - self.last_ckpt >= self.cfg.checkpoint_interval_s
        ):
            # A forced cut must be on disk before the batch holding it can reach a collector:
            # this runs before the builder gets another turn.
            self.save_checkpoint()
        if self.delivery.held:
            self.delivery.release_held()
        if now - self.last_status >= _STATUS_MAX_AGE_S or (
            self.status_dirty and now - self.last_status >= self.cfg.status_interval_s
        ):
            self.write_status()

    def _poll_all(self) -> None:
        found = False
        for f in self.files.followers.values():
            if f.fd is not None and f not in self.paused:
                try:
                    if os.fstat(f.fd).st_size != f.pos:
                        self.dirty[f] = None
                        found = True
                except OSError:
                    continue
        lo, hi = _FALLBACK_POLL_S
        self.poll_s = lo if found else min(hi, self.poll_s * 2)
        if found:
            self.wake_reader.set()

    def _finish_detached(self, now: float, now_ns: int) -> None:
        grace = self.cfg.rotated_grace_s
        for f in list(self.files.detached):
            if self.files.followers.get(f.key) is not f:
                self.files.detached.discard(f)
                continue
            if f.finished:
                if not f.track.busy and not self.batcher.holds(f.file_id):
                    self.files.release(f)
                    self.files.forget_track(f.track)
                    self.ckpt_dirty = True
                    self.status_dirty = True
                continue
            if f.at_eof_since is not None and now - f.at_eof_since >= grace and f.pos >= f.size:
                self._flush_tail(f, f.tail.flush(now_ns))
                f.finished = True
                self.status_dirty = True
                self.files.close(f)
                log.info("finished %s (%d bytes)", f.path, f.pos)
            else:
                self.dirty[f] = None
                self.wake_reader.set()

    def write_status(self) -> None:
        """Replace ``status.json``."""
        report = build_report(self)
        try:
            write_status(self.state_dir, report)
        except OSError as exc:
            if self.problems.may_log("status"):
                log.warning("cannot write the status file: %s", exc)
        self.status_dirty = False
        self.last_status = time.monotonic()
        sdnotify.notify(
            f"STATUS={report.followed_files} files, {report.connection}, "
            f"spool {report.spool_bytes} bytes"
        )

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)

    # -- reload ---------------------------------------------------------------------------------

    async def reload(self) -> None:
        """SIGHUP: re-read the config (see ``shipper.reload``)."""
        if self.config_path is None or self.stopping or self.reloading:
            return
        self.reloading = True
        try:
            await apply_reload(self, self.config_path)
        finally:
            self.reloading = False


def run(config_path: Path) -> int:
    """Load the config and run the daemon until it is told to stop."""
    cfg = load_config(config_path)
    return asyncio.run(Daemon(cfg, config_path).run())
