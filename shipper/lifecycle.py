"""A followed file's life cycle: one state, and every move between states allowed in one table.

```
FOLLOWING  ⇄ WAITING       no descriptor slot free when it had bytes / a slot found
FOLLOWING,
WAITING    → DETACHED      renamed to a name no input takes, or deleted
DETACHED   → FOLLOWING     renamed back to a name an input takes
DETACHED   → FINISHED      read to its end, the grace period over, its held bytes flushed
FOLLOWING,
WAITING    → PAUSED        its input is being removed by a reload
any other  → RELEASED      its spans acknowledged (finished, paused), or it vanished unread
```

- ``FOLLOWING``: the path leads to the file; it is read whenever it changes. Its descriptor is
  open, or closed (idle, or evicted under ``max_open_files``) and reopened by path.
- ``WAITING``: following, but no descriptor slot was free when it had bytes to read; a timer
  tries again (``shipper.reader``).
- ``DETACHED``: the path no longer leads here (renamed to a name no input takes, or deleted).
  The descriptor keeps it readable: it is read to its end, plus a grace period for writers
  that have not reopened yet. A rotated copy read after a copytruncate starts here.
- ``FINISHED``: detached, read to its end, its held bytes flushed, its descriptor closed; it
  is released once every span it sent is acknowledged.
- ``PAUSED``: its input is being removed by a reload: no longer read; released (its position
  kept as a dormant checkpoint) once its spans are acknowledged.
- ``RELEASED``: no longer followed. Nothing leaves this state.

A follower's state is only ever changed through ``Follower.to`` (which ``FileTable`` calls and
indexes), and a move the table does not list raises ``IllegalTransition``: a bug, which stops
the daemon with its traceback (``shipper.daemon``) rather than letting a file be read twice or
never.

Whether a descriptor is open, and how far the file has been read (``at_eof_since``), are not
states: they change at every read and decide nothing about what may happen next.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final


class FileState(Enum):
    """Where a followed file is in its life cycle (see the module docstring)."""

    FOLLOWING = "following"
    WAITING = "waiting"
    DETACHED = "detached"
    FINISHED = "finished"
    PAUSED = "paused"
    RELEASED = "released"


_S = FileState

# Every allowed move; anything else is a bug. A state is not a move to itself: callers that
# may find a file already there (a second rename of a detached file) check first.
TRANSITIONS: Final[Mapping[FileState, frozenset[FileState]]] = MappingProxyType(
    {
        _S.FOLLOWING: frozenset({_S.WAITING, _S.DETACHED, _S.PAUSED, _S.RELEASED}),
        _S.WAITING: frozenset({_S.FOLLOWING, _S.DETACHED, _S.PAUSED, _S.RELEASED}),
        _S.DETACHED: frozenset({_S.FOLLOWING, _S.FINISHED, _S.RELEASED}),
        _S.FINISHED: frozenset({_S.RELEASED}),
        _S.PAUSED: frozenset({_S.RELEASED}),
        _S.RELEASED: frozenset(),
    }
)

# States in which the path no longer leads to the file (what a checkpoint calls ``detached``).
GONE_FROM_PATH: Final = frozenset({_S.DETACHED, _S.FINISHED})
# States in which the reader reads the file when it has bytes.
READABLE: Final = frozenset({_S.FOLLOWING, _S.WAITING, _S.DETACHED})


class IllegalTransition(RuntimeError):
    """A follower was asked to move between two states the table does not connect (a bug)."""


def check(old: FileState, new: FileState, what: str) -> FileState:
    """``new`` if ``old -> new`` is in ``TRANSITIONS``; else raise ``IllegalTransition`` naming
    ``what`` (the file) and both states."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[old])) or "none"
        raise IllegalTransition(
            f"{what}: a followed file cannot go from {old.value} to {new.value} "
            f"(from {old.value}: {allowed})"
        )
    return new


def status_word(state: FileState, descriptor_open: bool) -> str:
    """The ``state`` of a file in ``wharf shipper status``: open, closed, waiting, detached or
    finishing (a paused file shows as open or closed: it is still where it was)."""
    if state is _S.WAITING:
        return "waiting"
    if state is _S.FINISHED:
        return "finishing"
    if state is _S.DETACHED:
        return "detached"
    return "open" if descriptor_open else "closed"
