"""Every child process a test starts is closed by the end of that test, even when an assertion
skipped the test's own cleanup (``tests/conftest.py`` calls ``closing_new_children``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Closeable(Protocol):
    def close(self) -> None:
        """Kill the process if it still runs and release what it holds."""


# The helpers not closed yet, oldest first. A helper adds itself when created and removes
# itself in ``close()``.
LIVE: list[Closeable] = []


def track(child: Closeable) -> None:
    if not any(c is child for c in LIVE):
        LIVE.append(child)


def untrack(child: Closeable) -> None:
    LIVE[:] = [c for c in LIVE if c is not child]


# Helpers a session fixture owns: started inside whichever test first asked for them, they must
# outlive it (the fixture closes them at the end of the session).
SESSION: list[Closeable] = []


def outlive_tests(*children: Closeable) -> None:
    SESSION.extend(children)


@contextmanager
def closing_new_children() -> Iterator[None]:
    """Close, newest first, the helpers created inside the block and still open at its end;
    those created before (a module or session fixture's collector) are left alone."""
    before = list(LIVE)
    try:
        yield
    finally:
        kept = before + SESSION
        for child in reversed([c for c in LIVE if not any(c is k for k in kept)]):
            child.close()
