"""``[[inputs]]`` in collector.toml: defaults, and every problem named with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import load_config
from tests.inputs.conftest import inputs_toml
from wharf.errors import InvalidArgument


def problems(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "collector.toml"
    path.write_text(text)
    return dict(load_config(path).problems())


def test_defaults_per_type(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(
        inputs_toml([{"type": t} for t in ("syslog", "forward", "otlp", "loki")])
        + inputs_toml([{"type": "syslog", "protocol": "tcp"}])
    )
    config = load_config(path)
    assert [(i.label, i.listen_address, i.topic_name) for i in config.inputs] == [
        ("syslog-udp-514", "127.0.0.1:514", "syslog"),
        ("forward-tcp-24224", "127.0.0.1:24224", "forward"),
        ("otlp-http-4318", "127.0.0.1:4318", "otlp"),
        ("loki-http-3100", "127.0.0.1:3100", "loki"),
        ("syslog-tcp-514", "127.0.0.1:514", "syslog"),  # UDP and TCP share the port number
    ]
    assert list(config.problems()) == []


def test_every_problem_is_named_by_its_key(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        inputs_toml(
            [
                {"type": "syslog", "protocol": "http"},
                {"type": "forward", "listen": "0.0.0.0:24224"},
                {"type": "otlp", "listen": "localhost"},
                {"type": "loki", "topic": "Logs", "protocol": "https"},
                {"type": "syslog", "protocol": "tcp", "listen": "127.0.0.1:6514", "name": "a"},
                {"type": "syslog", "protocol": "tcp", "listen": "127.0.0.1:6514", "name": "a"},
                {"type": "syslog", "shared_key": "k", "listen": "127.0.0.1:7514"},
            ]
        ),
    )
    assert "is not one of udp, tcp, tls" in found["inputs[0].protocol"]
    assert "no shared_key is set" in found["inputs[1].listen"]
    assert "is not HOST:PORT" in found["inputs[2].listen"]
    assert "character 'L' is not allowed" in found["inputs[3].topic"]
    assert "needs [tls] cert and key" in found["inputs[3].protocol"]
    assert "used by another input" in found["inputs[5].listen"]
    assert "names two inputs" in found["inputs[5].name"]
    assert "only forward inputs" in found["inputs[6].shared_key"]


def test_remote_inputs_with_authentication_are_allowed(tmp_path: Path) -> None:
    text = '[auth]\nwrite_tokens = ["t"]\n\n' + inputs_toml(
        [
            {"type": "forward", "listen": "0.0.0.0:24224", "shared_key": "secret"},
            {"type": "otlp", "listen": "0.0.0.0:4318"},
        ]
    )
    assert problems(tmp_path, text) == {}


def test_unknown_type_and_key_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(inputs_toml([{"type": "gelf"}]))
    with pytest.raises(InvalidArgument, match=r"gelf|type"):
        load_config(path)
    path.write_text(inputs_toml([{"type": "syslog", "port": 514}]))
    with pytest.raises(InvalidArgument, match="port"):
        load_config(path)
