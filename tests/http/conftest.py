"""Fixtures: a real store in tmp_path and the real HTTP API around it on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage import Store
from collector.storage.workers import ScanWorkers
from tests.harness import LiveServer
from tests.http.live import load, log_records
from wharf.record import Record


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data") as s:
        yield s


@pytest.fixture
def server(store: Store) -> Iterator[LiveServer]:
    with LiveServer(store, heartbeat_s=0.3) as srv:
        yield srv


@pytest.fixture(scope="module")
def apache() -> list[Record]:
    return log_records("apache_combined.log", "clf")


@pytest.fixture(scope="module")
def auth() -> list[Record]:
    return log_records("auth.log", "syslog")


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory, apache: list[Record], auth: list[Record]
) -> Iterator[LiveServer]:
    """Read-only data for search tests: ``web`` (apache, 3 partitions) and ``auth`` (1).
    Every count goes through worker processes (``min_bytes=0``), as big ones do in a
    collector."""
    workers = ScanWorkers(2, min_bytes=0)
    try:
        with Store(tmp_path_factory.mktemp("loaded") / "data") as s:
            load(s, "web", apache, partitions=3)
            load(s, "auth", auth, partitions=1)
            with LiveServer(s, scan_workers=workers) as srv:
                yield srv
    finally:
        workers.close()
