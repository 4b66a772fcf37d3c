"""Wharf's error tree. Each class says whether retrying the same operation can help.

``LocalError`` means the caller misused an API or gave bad input (fix the call); ``RemoteError``
means a peer or a file handed us garbage. Errors are translated at every boundary with
``raise New(...) from exc`` so the cause stays attached.
"""

from __future__ import annotations


class WharfError(Exception):
    """Base of every error Wharf raises on purpose."""

    retriable: bool = False


class LocalError(WharfError):
    """The caller asked for something invalid (bad name, bad offset, bad config)."""


class InvalidTopicName(LocalError):
    """A topic name outside ``[a-z0-9][a-z0-9._-]{0,63}``."""


class UnknownTopic(LocalError):
    """The topic does not exist."""


class TopicExists(LocalError):
    """The topic was to be created but exists already."""


class OffsetOutOfRange(LocalError):
    """An offset below the partition's start or past its end."""


class InvalidArgument(LocalError, ValueError):
    """Any other invalid argument; the message says which and why. (A ``ValueError`` too, so
    msgspec reports it with the path of the offending config key.)"""


class RemoteError(WharfError):
    """Bytes from a peer or from disk are not what they must be."""


class CorruptBatch(RemoteError):
    """A batch's bytes fail a structural check or the checksum. ``where`` names file and position."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        self.where = where


class BatchTooLarge(CorruptBatch):
    """A batch exceeds one of the named limits in ``wharf.batch``."""


class StoreError(WharfError):
    """The store could not write (disk full, I/O error). Resending later can help."""

    retriable = True


class StoreClosed(WharfError):
    """The store was closed while the operation waited; retry against a reopened store."""

    retriable = True
