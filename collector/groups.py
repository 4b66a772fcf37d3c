"""Consumer groups: committed offsets per topic partition, one JSON file per group.

    DATA/groups/<group>.json   {"group": "g", "offsets": {"topic": {"0": 120, "1": 55}}}

Files are replaced atomically (temp file, fsync, rename, fsync of the directory), so a crash
leaves either the old or the new offsets, never a torn file. Group names follow the topic name
rules, so a name can never be a path.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec

from collector.storage.interface import GroupOffsets, Storage
from wharf.api import CommitRequest, GroupInfo, GroupOffset, ResetRequest
from wharf.errors import InvalidArgument, RemoteError, UnknownGroup
from wharf.fsutil import write_atomically
from wharf.topics import validate_group

Offsets = dict[str, dict[str, int]]  # topic -> partition (as text, JSON keys) -> next offset


class CorruptGroupFile(RemoteError):
    """A group file that is not what this module writes (edited by hand, or a bad disk)."""


class _GroupFile(msgspec.Struct, forbid_unknown_fields=True):
    group: str
    offsets: Offsets = {}


__all__ = ["GroupStore", "commit", "describe", "reset", "validate_group"]


class GroupStore:
    """The embedded ``GroupOffsets``: reads and writes group files. One lock serializes read-modify-write of any group."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "groups"
        self._lock = threading.Lock()
        self._decoder = msgspec.json.Decoder(_GroupFile)

    def names(self) -> list[str]:
        """Groups with a file, sorted."""
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json"))

    def load(self, group: str) -> Offsets:
        """The committed offsets of ``group`` (``UnknownGroup`` if it has none)."""
        path = self.dir / f"{validate_group(group)}.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UnknownGroup(f"no consumer group {group!r}") from None
        try:
            return self._decoder.decode(data).offsets
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CorruptGroupFile(f"{path}: damaged group file: {exc}") from exc

    def update(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Set the committed offsets of some partitions of ``topic``."""
        validate_group(group)
        with self._lock:
            try:
                current = self.load(group)
            except UnknownGroup:
                current = {}
            current.setdefault(topic, {}).update({str(p): o for p, o in offsets.items()})
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomically(
                self.dir / f"{group}.json", msgspec.json.encode(_GroupFile(group, current))
            )


def describe(store: Storage, groups: GroupOffsets, group: str) -> GroupInfo:
    """Committed offset, partition bounds and lag of every partition of the group's topics.

    A partition with no commit shows ``committed: null`` and its whole content as lag. Topics
    deleted since the commit are left out.
    """
    committed = groups.load(group)
    rows = []
    total = 0
    for topic in sorted(committed):
        if topic not in store.topics():
            continue
        for info in store.describe(topic).partitions:
            c = committed[topic].get(str(info.partition))
            lag = info.end_offset - max(c if c is not None else 0, info.start_offset)
            lag = max(lag, 0)
            total += lag
            rows.append(
                GroupOffset(topic, info.partition, c, info.start_offset, info.end_offset, lag)
            )
    return GroupInfo(group, rows, total)


def commit(store: Storage, groups: GroupOffsets, group: str, req: CommitRequest) -> GroupInfo:
    """Record ``req.offset`` as the next offset ``group`` reads from that partition."""
    validate_group(group)
    part = store.partition(req.topic, req.partition)
    end = part.durable_offset
    if not 0 <= req.offset <= end:
        raise InvalidArgument(
            f"offset {req.offset} is outside partition {req.partition} of {req.topic!r} "
            f"(0..{end}; the end offset means 'everything read')"
        )
    groups.update(group, req.topic, {req.partition: req.offset})
    return describe(store, groups, group)


def reset(store: Storage, groups: GroupOffsets, group: str, req: ResetRequest) -> GroupInfo:
    """Move the group's offsets for a topic to an offset, a time, the start or the end.

    Offsets are clamped into each partition's ``[start, end]`` as Kafka's reset tool does.
    """
    validate_group(group)
    targets = [v for v in (req.to_offset, req.to_time, req.to) if v is not None]
    if len(targets) != 1:
        raise InvalidArgument("give exactly one of to_offset, to_time, to ('earliest'|'latest')")
    parts = (
        store.partitions(req.topic)
        if req.partition is None
        else [store.partition(req.topic, req.partition)]
    )
    offsets: dict[int, int] = {}
    for part in parts:
        start, end = part.start_offset, part.durable_offset
        if req.to == "earliest":
            offset = start
        elif req.to == "latest":
            offset = end
        elif req.to_time is not None:
            offset = part.offset_for_time(req.to_time)
        else:
            assert req.to_offset is not None
            offset = req.to_offset
        offsets[part.number] = min(max(offset, start), end)
    groups.update(group, req.topic, offsets)
    return describe(store, groups, group)
