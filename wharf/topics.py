"""Topic names and the record → partition mapping, shared by the store, the CLI and shippers."""

from __future__ import annotations

import re
import zlib
from typing import Final

import msgspec

from wharf.errors import InvalidArgument, InvalidTopicName

_TOPIC_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_PARTITIONS: Final = 1024  # one open segment file per partition; far beyond one collector's need


def validate_topic(name: str) -> str:
    """Return ``name`` if it is a valid topic name, else raise ``InvalidTopicName`` saying why.

    Valid names match ``[a-z0-9][a-z0-9._-]{0,63}``: they can never be a path (no ``/``), never
    ``.`` or ``..`` (they must start with a letter or digit) and never collide by case.
    """
    if _TOPIC_RE.fullmatch(name):
        return name
    if not name:
        why = "it is empty"
    elif len(name) > 64:
        why = f"it has {len(name)} characters (at most 64)"
    elif name[0] in "._-":
        why = "it must start with a lowercase letter or digit"
    else:
        bad = next(c for c in name if not re.fullmatch(r"[a-z0-9._-]", c))
        why = f"character {bad!r} is not allowed (lowercase letters, digits, '.', '_', '-')"
    raise InvalidTopicName(f"invalid topic name {name!r}: {why}")


def validate_group(name: str) -> str:
    """A consumer group name: the topic name rules (``[a-z0-9][a-z0-9._-]{0,63}``)."""
    try:
        return validate_topic(name)
    except InvalidTopicName as exc:
        raise InvalidArgument(str(exc).replace("topic name", "group name", 1)) from None


def validate_partitions(count: int) -> int:
    """Return ``count`` if it is a usable partition count."""
    if not 1 <= count <= MAX_PARTITIONS:
        raise InvalidArgument(f"partition count {count} outside 1..{MAX_PARTITIONS}")
    return count


def partition_for(key: str, partitions: int) -> int:
    """The partition of a record key (the host by default): CRC-32 of its UTF-8, modulo.

    Stable across processes, versions and machines (unlike ``hash()``), so a host's lines always
    land in the same partition and stay in order.
    """
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


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
