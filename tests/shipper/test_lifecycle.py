"""A followed file's life cycle (``shipper.lifecycle``): the transition table itself, and the
moves ``FileTable`` makes on real files (renames, deletions, descriptor slots, a reload's
pause), each one checked against the table, indexed, announced and shown in ``repr``."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from shipper.config import InputConfig, ShipperConfig
from shipper.files import FileTable
from shipper.follower import Follower, InputRuntime
from shipper.lifecycle import (
    GONE_FROM_PATH,
    READABLE,
    TRANSITIONS,
    FileState,
    IllegalTransition,
    check,
    status_word,
)
from shipper.status import Stats

S = FileState


def test_the_table_names_every_state_and_only_released_is_final() -> None:
    assert set(TRANSITIONS) == set(FileState)
    assert TRANSITIONS[S.RELEASED] == frozenset()
    for state, targets in TRANSITIONS.items():
        assert state not in targets, f"{state} lists itself"
        if state is not S.RELEASED:
            assert S.RELEASED in targets, f"{state} can never be released"


def test_every_state_is_reached_from_following() -> None:
    seen, todo = {S.FOLLOWING}, [S.FOLLOWING]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(FileState)


def test_finished_and_paused_files_are_never_read_or_reattached() -> None:
    assert TRANSITIONS[S.FINISHED] == {S.RELEASED}
    assert TRANSITIONS[S.PAUSED] == {S.RELEASED}
    assert {S.FOLLOWING, S.WAITING, S.DETACHED} == READABLE
    assert {S.DETACHED, S.FINISHED} == GONE_FROM_PATH


@pytest.mark.parametrize(("old", "new"), list(itertools.product(FileState, FileState)))
def test_check_allows_exactly_the_listed_moves(old: FileState, new: FileState) -> None:
    if new in TRANSITIONS[old]:
        assert check(old, new, "/var/log/app.log") is new
    else:
        with pytest.raises(IllegalTransition) as err:
            check(old, new, "/var/log/app.log")
        message = str(err.value)
        assert "/var/log/app.log" in message
        assert f"from {old.value} to {new.value}" in message


def test_status_words_are_the_ones_wharf_shipper_status_always_showed() -> None:
    assert status_word(S.FOLLOWING, True) == "open"
    assert status_word(S.FOLLOWING, False) == "closed"
    assert status_word(S.PAUSED, True) == "open"
    assert status_word(S.WAITING, False) == "waiting"
    assert status_word(S.DETACHED, True) == "detached"
    assert status_word(S.FINISHED, False) == "finishing"


# -- FileTable on real files ---------------------------------------------------------------


def _table(logs: Path, moves: list[tuple[str, FileState]]) -> FileTable:
    """A file table over ``logs/*.log`` with one descriptor slot, recording every move."""
    cfg = ShipperConfig(
        inputs=[InputConfig(paths=[str(logs / "*.log")], topic="t")],
        state_dir=str(logs.parent / "state"),
        max_open_files=1,
    )

    def note(f: Follower) -> None:
        moves.append((os.path.basename(f.path), f.state))

    return FileTable(cfg, [InputRuntime.build(i) for i in cfg.inputs], Stats(), on_state=note)


def _adopt(files: FileTable, path: Path) -> Follower:
    inp = files.input_for(str(path))
    assert inp is not None
    f = files.adopt(str(path), inp)
    assert f is not None
    return f


def test_renames_deletions_and_descriptor_slots_move_files_through_the_table(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(b"one\ntwo\n")
    (logs / "b.log").write_bytes(b"three\n")
    moves: list[tuple[str, FileState]] = []
    files = _table(logs, moves)
    a = _adopt(files, logs / "a.log")
    assert a.state is S.FOLLOWING and a.fd is not None
    assert repr(a) == f"<Follower {logs / 'a.log'} following fd {a.fd} at 0 of 8 id {a.file_id}>"

    # Renamed to a name no input takes: detached, still open (it is read to its end).
    os.rename(logs / "a.log", logs / "a.old")
    assert files.check_path(a) is None
    assert a.state is S.DETACHED and a.path == str(logs / "a.old") and a.fd is not None
    assert files.in_state(S.DETACHED) == [a]
    assert "detached" in repr(a)
    assert [e.detached for e in files.state().files] == [True]

    # Renamed back to a followed name: the same follower goes on, same file id.
    file_id = a.file_id
    os.rename(logs / "a.old", logs / "a.log")
    assert files.adopt(str(logs / "a.log"), files.inputs[0]) is None
    assert a.state is S.FOLLOWING and a.file_id == file_id
    assert files.in_state(S.DETACHED) == []

    # Detached again (deleted this time, as the reader finds through the descriptor), it
    # holds the only descriptor slot: b, adopted over the limit, is closed and must wait.
    os.unlink(logs / "a.log")
    assert a.stat_size() == (8, True)
    files.detach(a)
    b = _adopt(files, logs / "b.log")
    assert b.fd is None and b.state is S.FOLLOWING
    assert not files.ensure_open(b)
    assert b.state is S.WAITING and files.in_state(S.WAITING) == [b]
    assert "waiting closed" in repr(b)
    assert [s.state for s in files.snapshot().files] == ["detached", "waiting"]

    # a is finished (its descriptor closes): b gets the slot and follows again.
    files.finish(a)
    assert a.state is S.FINISHED and a.fd is None
    assert files.ensure_open(b)
    assert b.state is S.FOLLOWING and b.fd is not None
    assert [s.state for s in files.snapshot().files] == ["finishing", "open"]

    # Released once acknowledged; releasing again changes nothing.
    files.release(a)
    files.release(a)
    assert a.state is S.RELEASED and a.key not in files.followers
    assert files.in_state(S.DETACHED, S.FINISHED) == []

    # A move the table does not list raises and leaves the state as it was.
    with pytest.raises(IllegalTransition, match="from following to finished"):
        files.finish(b)
    assert b.state is S.FOLLOWING

    # A reload removes b's input: paused, then retired with its position kept dormant.
    files.pause(b)
    saved = {e.file_id: e for e in files.state().files}[b.file_id]
    files.retire(b, saved)
    assert b.state is S.RELEASED and files.dormant[b.key] is saved

    assert moves == [
        ("a.old", S.DETACHED),
        ("a.log", S.FOLLOWING),
        ("a.log", S.DETACHED),
        ("b.log", S.WAITING),
        ("a.log", S.FINISHED),
        ("b.log", S.FOLLOWING),
        ("a.log", S.RELEASED),
        ("b.log", S.PAUSED),
        ("b.log", S.RELEASED),
    ]
