"""Fixtures for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.children import closing_new_children, outlive_tests


@pytest.fixture(autouse=True)
def _close_children() -> Iterator[None]:
    """Kill whatever child process a test left running (a failed assertion skips its cleanup)."""
    with closing_new_children():
        yield


@pytest.fixture(scope="session")
def nats_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """One real nats-server (JetStream, R1) for this worker's whole session: the cluster
    backend's API and storage tests each use their own deployment name on it.
    ``WHARF_TEST_NATS_URL`` runs them against a server already running instead."""
    given = os.environ.get("WHARF_TEST_NATS_URL")
    if given:
        yield given.split(",")
        return
    from tests.harness.nats import NatsCluster  # noqa: PLC0415 (only tests that need NATS)

    with NatsCluster(tmp_path_factory.mktemp("nats"), n=1) as cluster:
        outlive_tests(cluster, *cluster.nodes)
        yield cluster.urls
