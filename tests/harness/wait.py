"""One way to wait in tests: poll a predicate until it holds, fail with a message otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Between two polls. Small next to what tests wait for (a process start, a batch acknowledged),
# large enough that polling a log file or a socket costs nothing on a busy machine.
DEFAULT_STEP_S = 0.05


def wait_for(
    predicate: Callable[[], T | None], timeout: float, message: str, *, step: float = DEFAULT_STEP_S
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; after ``timeout``
    seconds fail with ``message`` (what was awaited). The deadline is generous on purpose: it
    turns a broken run into a failure instead of a hang, it is not a speed check."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(step)
