"""Fixtures: a real store in tmp_path, the collector API around it, and receivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage import Store
from tests.harness import LiveServer
from tests.replay.helpers import HttpReceiver, TcpReceiver, replay_api


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data") as s:
        yield s


@pytest.fixture
def server(store: Store) -> Iterator[LiveServer]:
    with replay_api(store) as srv:
        yield srv


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver()
    yield r
    r.close()


@pytest.fixture
def tcp_receiver() -> Iterator[TcpReceiver]:
    r = TcpReceiver()
    yield r
    r.close()
