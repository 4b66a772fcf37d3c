"""Network inputs under test: a real collector child with ``[[inputs]]`` on loopback, port 0."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.harness import CollectorProcess


def inputs_toml(inputs: Sequence[dict[str, Any]], extra: str = "") -> str:
    """A collector.toml with ``extra`` (top-level keys and tables) and one ``[[inputs]]`` table
    per dict (values written as TOML: strings, numbers, booleans)."""
    out = [extra.strip(), ""] if extra.strip() else []
    for table in inputs:
        out.append("[[inputs]]")
        for key, value in table.items():
            out.append(f"{key} = {json.dumps(value)}")
        out.append("")
    return "\n".join(out)


class InputsCollector:
    """Starts collectors with the given inputs; each input needs a ``name`` (its port is found
    by it: ``port(name)``)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[CollectorProcess] = []

    def __call__(
        self, inputs: Sequence[dict[str, Any]], extra: str = "", **kwargs: Any
    ) -> CollectorProcess:
        n = len(self.started)
        config = self.tmp_path / f"collector-{n}.toml"
        config.write_text(inputs_toml(inputs, extra))
        proc = CollectorProcess(
            self.tmp_path / f"data-{n}", args=["--config", str(config)], **kwargs
        ).start()
        self.started.append(proc)
        return proc


@pytest.fixture
def inputs_collector(tmp_path: Path) -> Iterator[InputsCollector]:
    """``inputs_collector([{"type": "syslog", "name": "s", "listen": "127.0.0.1:0"}])`` → a
    running ``CollectorProcess``; its inputs' ports in ``proc.input_ports[name]``."""
    yield InputsCollector(tmp_path)
