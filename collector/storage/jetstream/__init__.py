"""The cluster backend: topics stored in NATS JetStream (see ``store``)."""

from collector.storage.jetstream.store import JetStreamStore

__all__ = ["JetStreamStore"]
