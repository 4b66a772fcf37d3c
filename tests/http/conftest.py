"""Fixtures: a real store and the real HTTP API around it on a loopback port.

The API suite runs against both backends: ``store`` and ``loaded`` are parametrized with the
embedded store (files in tmp_path) and the cluster backend (JetStream on a real nats-server
this worker starts; each test gets its own deployment ``name``, so nothing is shared). A test
about the embedded store's own files asks for it alone (``@embedded_only``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage import Store
from collector.storage.jetstream import JetStreamStore
from collector.storage.workers import ScanWorkers
from tests.harness import LiveServer
from tests.http.live import load, log_records
from wharf.record import Record

BACKENDS = ["embedded", pytest.param("jetstream", marks=pytest.mark.nats)]
embedded_only = pytest.mark.parametrize("store", ["embedded"], indirect=True)
_names = itertools.count()

AnyStore = Store | JetStreamStore


def _cluster_store(request: pytest.FixtureRequest) -> JetStreamStore:
    urls: list[str] = request.getfixturevalue("nats_urls")
    return JetStreamStore(urls, name=f"t{os.getpid()}-{next(_names)}", replicas=1)


def _drop(store: JetStreamStore) -> None:
    for topic in store.topics():
        store.delete_topic(topic)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    if request.param == "embedded":
        with Store(tmp_path / "data") as s:
            yield s
        return
    with _cluster_store(request) as c:
        yield c
        _drop(c)


@pytest.fixture
def server(store: AnyStore) -> Iterator[LiveServer]:
    with LiveServer(store, heartbeat_s=0.3) as srv:
        yield srv


@pytest.fixture(scope="module")
def apache() -> list[Record]:
    return log_records("apache_combined.log", "clf")


@pytest.fixture(scope="module")
def auth() -> list[Record]:
    return log_records("auth.log", "syslog")


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    apache: list[Record],
    auth: list[Record],
) -> Iterator[LiveServer]:
    """Read-only data for search tests: ``web`` (apache, 3 partitions) and ``auth`` (1).
    On the embedded store every count goes through worker processes (``min_bytes=0``), as
    big ones do in a collector."""
    if request.param == "jetstream":
        with _cluster_store(request) as c:
            load(c, "web", apache, partitions=3)
            load(c, "auth", auth, partitions=1)
            with LiveServer(c) as srv:
                yield srv
            _drop(c)
        return
    workers = ScanWorkers(2, min_bytes=0)
    try:
        with Store(tmp_path_factory.mktemp("loaded") / "data") as s:
            load(s, "web", apache, partitions=3)
            load(s, "auth", auth, partitions=1)
            with LiveServer(s, scan_workers=workers) as srv:
                yield srv
    finally:
        workers.close()
