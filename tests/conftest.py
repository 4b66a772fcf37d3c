"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.children import closing_new_children


@pytest.fixture(autouse=True)
def _close_children() -> Iterator[None]:
    """Kill whatever child process a test left running (a failed assertion skips its cleanup)."""
    with closing_new_children():
        yield
