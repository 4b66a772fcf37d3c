"""The embedded storage engine: topics, partitions, segments, indexes, retention, recovery."""

from collector.storage.partition import AppendResult, BatchRef, Partition, PartitionInfo
from collector.storage.store import Fsync, Store, TopicInfo
from collector.storage.topic_config import TopicConfig

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
