"""The embedded storage engine: topics, partitions, segments, indexes, retention, recovery."""

from collector.storage.partition import AppendResult, BatchRef, Partition
from collector.storage.store import Fsync, Store
from collector.storage.topic_config import TopicConfig
from wharf.api import PartitionInfo, TopicInfo

__all__ = [
    "AppendResult",
    "BatchRef",
    "Fsync",
    "Partition",
    "PartitionInfo",
    "Store",
    "TopicConfig",
    "TopicInfo",
]
