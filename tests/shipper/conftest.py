"""Kill whatever child process a test left running (a failed assertion skips its cleanup)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.shipper.helpers import LIVE


@pytest.fixture(autouse=True)
def _reap_children() -> Iterator[None]:
    yield
    while LIVE:
        p = LIVE.pop()
        if hasattr(p, "close"):
            p.close()
        else:
            p.stop(9)
