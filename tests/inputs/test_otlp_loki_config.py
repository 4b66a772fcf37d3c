"""The OTLP and Loki examples of ``config/collector.toml``: uncommented, they are a valid
configuration with every key an input takes, and each value shown is the default."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from collector.config import InputSettings, load_config
from tests.harness import ROOT

EXAMPLE = ROOT / "config" / "collector.toml"


def example_tables(kind: str) -> str:
    """The commented ``[[inputs]]`` example of ``type = kind``, uncommented."""
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index(f'#type = "{kind}"') - 1
    assert lines[start] == "#[[inputs]]"
    out = []
    for line in lines[start:]:
        if not line.startswith("#") or line.startswith("# "):
            break
        out.append(line[1:])
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("kind", ["otlp", "loki"])
def test_the_example_is_valid_complete_and_the_defaults(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(example_tables(kind))
    config = load_config(path)
    config.check()
    (given,) = config.inputs
    (table,) = tomllib.loads(path.read_text())["inputs"]
    forward_only = {"shared_key", "self_hostname"}
    assert set(table) == set(InputSettings.__struct_fields__) - forward_only  # every key
    defaults = InputSettings(type=given.type)
    assert given.listen == defaults.listen_address
    assert given.protocol == defaults.transport
    assert given.topic == defaults.topic_name
    assert given.name == defaults.label
    assert given.max_message_bytes == defaults.message_limit
    for name in ("max_connections", "linger_ms", "max_pending_bytes"):
        assert getattr(given, name) == getattr(defaults, name), name
    assert msgspec.structs.replace(given, listen="", protocol="", topic="", name="") == (
        msgspec.structs.replace(defaults, max_message_bytes=given.max_message_bytes)
    )
