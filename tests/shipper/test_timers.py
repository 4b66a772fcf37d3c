"""The timer table (``shipper.timers``): one due function and one action per row, run in table
order; the ticker sleeps until the earliest due time or a kick. And two real rows: the
checkpoint writer's (with a disk that refuses writes) and the status file's."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from shipper.checkpoint import CheckpointStore
from shipper.checkpointing import Checkpointer
from shipper.config import ShipperConfig
from shipper.files import FileTable
from shipper.problems import Problems
from shipper.status import Stats
from shipper.status_report import StatusFile
from shipper.timers import AT_ONCE, Timers

HANG_S = 10.0  # a ticker that never runs a due timer fails here instead of hanging


def test_due_timers_run_in_table_order_and_the_others_do_not() -> None:
    t = Timers(clock=lambda: 100.0)
    ran: list[str] = []
    t.add("later", lambda: 150.0, lambda now: ran.append("later"))
    t.add("second", lambda: 99.0, lambda now: ran.append("second"))
    t.add("never", lambda: None, lambda now: ran.append("never"))
    t.add("first", lambda: AT_ONCE, lambda now: ran.append(f"first at {now:g}"))
    assert t.run_due(100.0) == ["second", "first"]
    assert ran == ["second", "first at 100"]
    assert t.next_due() == AT_ONCE
    assert "later: 50.000s" in repr(t) and "never: never" in repr(t)


def test_an_action_can_make_a_later_row_due_in_the_same_tick() -> None:
    """A forced cut (an earlier row) makes a checkpoint urgent (a later row): saved in the
    same tick, before the batch can leave."""
    t = Timers()
    urgent: list[bool] = []
    saved: list[float] = []
    t.add("cut", lambda: AT_ONCE if not urgent else None, lambda now: urgent.append(True))
    t.add("save", lambda: AT_ONCE if urgent else None, lambda now: saved.append(now))
    assert t.run_due(5.0) == ["cut", "save"] and saved == [5.0]
    assert t.next_due() is not None  # "save" still due: nothing cleared it


def test_a_name_is_used_once() -> None:
    t = Timers()
    t.add("rescan", lambda: None, lambda now: None)
    with pytest.raises(ValueError, match="'rescan'"):
        t.add("rescan", lambda: None, lambda now: None)


def test_the_ticker_sleeps_until_due_and_wakes_on_a_kick() -> None:
    async def main() -> list[str]:
        t = Timers()
        ran: list[str] = []
        soon = [time.monotonic() + 0.05]
        armed: list[float] = []
        both = asyncio.Event()

        def fire(name: str, due: list[float]) -> None:
            due.clear()  # not due again
            ran.append(name)
            if len(ran) == 2:
                both.set()

        t.add("soon", lambda: soon[0] if soon else None, lambda now: fire("soon", soon))
        t.add("kicked", lambda: armed[0] if armed else None, lambda now: fire("kicked", armed))
        ticker = asyncio.get_running_loop().create_task(t.run())
        try:
            async with asyncio.timeout(HANG_S):
                while not ran:
                    await asyncio.sleep(0.01)
                # Nothing is due now and the ticker sleeps for good: only a kick makes it
                # look at "kicked" again.
                armed.append(AT_ONCE)
                t.kick()
                await both.wait()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        return ran

    assert asyncio.run(main()) == ["soon", "kicked"]


# -- two rows of the daemon's table ---------------------------------------------------------


def test_the_checkpoint_row_retries_a_refused_write_with_backoff(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    cfg = ShipperConfig(state_dir=str(state), checkpoint_interval_s=1.0)
    stats, problems = Stats(), Problems(60.0)
    files = FileTable(cfg, [], stats)
    kicks: list[int] = []
    status = StatusFile(cfg, problems)
    ck = Checkpointer(
        cfg,
        CheckpointStore(state),
        files,
        problems,
        stats,
        on_status=status.mark,
        kick=lambda: kicks.append(1),
    )
    assert ck.due(held=False) is None  # nothing owed
    ck.mark()
    assert ck.due(held=False) == ck.last + 1.0
    assert ck.due(held=True) == AT_ONCE  # batches wait for it: now
    ck.mark_urgent()
    assert ck.due(held=False) == AT_ONCE

    blocker = state / "checkpoints.json.tmp"  # every write now fails (EISDIR), root or not
    blocker.mkdir()
    assert not ck.save()
    assert ck.failures == 1 and stats.checkpoint_errors == 1
    assert ck.due(held=False) == ck.retry_at  # not at once: after the backoff
    assert not ck.save()  # before the retry time: not even tried
    assert ck.failures == 1
    assert any("cannot write checkpoints" in line for line in problems.lines({}))
    assert "urgent, 1 failed writes" in repr(ck)

    blocker.rmdir()
    assert ck.save(retry_now=True)
    assert ck.failures == 0 and not ck.dirty and not ck.urgent and kicks == [1]
    assert ck.due(held=False) is None
    assert not any("checkpoint" in line for line in problems.lines({}))
    assert (state / "checkpoints.json").exists()


def test_the_status_row_is_due_soon_after_a_change_and_at_least_every_30_s(
    tmp_path: Path,
) -> None:
    cfg = ShipperConfig(state_dir=str(tmp_path), status_interval_s=1.0)
    status = StatusFile(cfg, Problems(60.0))
    status.last, status.dirty = 500.0, False
    assert status.due() == 530.0
    status.mark()
    assert status.due() == 501.0
