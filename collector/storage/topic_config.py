"""Per-topic settings on disk: ``topic.toml`` beside the partitions (the settings themselves,
``TopicConfig``, are part of the API and live in ``wharf.topics``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec

from wharf.errors import InvalidArgument
from wharf.fsutil import write_atomically
from wharf.topics import TopicConfig

__all__ = ["TopicConfig", "load_topic_config", "save_topic_config"]


def _to_toml(config: TopicConfig) -> str:
    """TOML text of the settings (flat integers only, so no TOML writer is needed)."""
    return "".join(f"{k} = {v}\n" for k, v in msgspec.structs.asdict(config).items())


def save_topic_config(config: TopicConfig, path: Path) -> None:
    """Write ``topic.toml`` atomically."""
    write_atomically(path, _to_toml(config).encode())


def load_topic_config(path: Path) -> TopicConfig:
    """Read ``topic.toml``; errors name the file and the key."""
    try:
        data = tomllib.loads(path.read_text())
        return msgspec.convert(data, TopicConfig)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError, InvalidArgument) as exc:
        raise InvalidArgument(f"{path}: {exc}") from exc
