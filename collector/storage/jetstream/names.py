"""Names in NATS for Wharf's topics, partitions and buckets (pure).

A topic partition is one stream. Stream names may not contain ``.`` while topic names may, so
the topic is escaped one to one: topic names are lower case (``[a-z0-9][a-z0-9._-]*``), and
``.`` becomes ``D``, a letter no topic name holds. The partition number follows the last
``_`` (a topic may hold ``_`` too, a partition number never does). Everything a deployment
creates starts with its ``name`` (``[cluster] name``), so several Wharf clusters can share one
NATS system, and the tests one server.
"""

from __future__ import annotations

import re
from typing import Final

from wharf.errors import InvalidArgument

_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def validate_name(name: str) -> str:
    """A deployment name: lower-case letters, digits and ``-``, 1 to 32 characters."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"cluster name {name!r} must be 1 to 32 of [a-z0-9-], starting with a letter or digit"
        )
    return name


def stream_name(name: str, topic: str, partition: int) -> str:
    """The stream holding one partition: ``<name>_<topic, '.' as 'D'>_<partition>``."""
    return f"{name}_{topic.replace('.', 'D')}_{partition}"


def subject(name: str, topic: str, partition: int) -> str:
    """The one subject of a partition's stream."""
    return f"{name}.p.{stream_name(name, topic, partition)}"


def topics_bucket(name: str) -> str:
    """The KV bucket of topic settings: key = topic name, value = its settings (JSON)."""
    return f"{name}-topics"


def marks_bucket(name: str) -> str:
    """The KV bucket of high-water mark snapshots: key = stream name."""
    return f"{name}-marks"


def groups_bucket(name: str) -> str:
    """The KV bucket of consumer groups: key = group name, value = committed offsets (JSON)."""
    return f"{name}-groups"
