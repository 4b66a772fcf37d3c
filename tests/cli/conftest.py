"""One real collector for the CLI tests, holding the shared sample logs, each shipped with
``wharf ship`` (one host, one source per topic, so each topic is exactly one file)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.helpers import LOGS
from tests.harness import CollectorProcess

SHIPPED = {  # topic: (parser, file)
    "web": ("clf", "apache_combined.log"),
    "auth": ("syslog", "auth.log"),
    "kafka": ("auto", "kafka_controller.log"),
}


@pytest.fixture(scope="session")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """A running collector with the topics of ``SHIPPED``; read-only for the tests."""
    c = CollectorProcess(tmp_path_factory.mktemp("cli") / "data").start()
    try:
        for topic, (parser, name) in SHIPPED.items():
            c.ship(topic, parser, LOGS / name)
        yield c
    finally:
        assert c.stop() == 0
