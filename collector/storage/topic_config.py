"""Per-topic settings, stored as ``topic.toml`` beside the partitions."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Final

import msgspec

from wharf.errors import InvalidArgument
from wharf.fsutil import write_atomically
from wharf.topics import validate_partitions

DAY_MS: Final = 86_400_000
MIN_SEGMENT_BYTES: Final = 64 * 1024  # smaller segments would mean a file per few batches
MAX_SEGMENT_BYTES: Final = 2**31  # positions in the index are 32-bit


class TopicConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Topic settings. A negative retention means "keep forever" (as in Kafka)."""

    partitions: int = 1
    retention_ms: int = 7 * DAY_MS  # Kafka's default, by append time (see Partition)
    retention_bytes: int = -1  # per partition
    segment_bytes: int = 256 << 20  # smaller than Kafka's 1 GiB: faster recovery, finer retention
    segment_ms: int = DAY_MS

    def __post_init__(self) -> None:
        validate_partitions(self.partitions)
        if not MIN_SEGMENT_BYTES <= self.segment_bytes <= MAX_SEGMENT_BYTES:
            raise InvalidArgument(
                f"segment_bytes {self.segment_bytes} outside {MIN_SEGMENT_BYTES}..{MAX_SEGMENT_BYTES}"
            )
        if self.segment_ms <= 0:
            raise InvalidArgument(f"segment_ms must be positive, got {self.segment_ms}")

    def to_toml(self) -> str:
        """TOML text of the settings (flat integers only, so no TOML writer is needed)."""
        return "".join(f"{k} = {v}\n" for k, v in msgspec.structs.asdict(self).items())

    def save(self, path: Path) -> None:
        """Write ``topic.toml`` atomically."""
        write_atomically(path, self.to_toml().encode())

    @classmethod
    def load(cls, path: Path) -> TopicConfig:
        """Read ``topic.toml``; errors name the file and the key."""
        try:
            data = tomllib.loads(path.read_text())
            return msgspec.convert(data, cls)
        except (tomllib.TOMLDecodeError, msgspec.ValidationError, InvalidArgument) as exc:
            raise InvalidArgument(f"{path}: {exc}") from exc
