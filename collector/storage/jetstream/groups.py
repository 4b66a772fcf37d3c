"""Consumer groups in a KV bucket (``interface.GroupOffsets``), shared by every collector.

One key per group, its value the committed offsets as JSON (the embedded store's group file).
A commit is a read-modify-write with compare-and-set on the key's revision, retried when
another collector committed in between, so two commits to different partitions of one group
through two collectors both land.
"""

from __future__ import annotations

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from collector.storage.jetstream.client import NatsClient
from wharf.errors import StoreError, UnknownGroup
from wharf.topics import validate_group

Offsets = dict[str, dict[str, int]]
_TIMEOUT_S = 15.0
_ATTEMPTS = 50


class KvGroups:
    """Groups in the KV bucket ``kv`` of ``client``'s connection."""

    def __init__(self, client: NatsClient, kv: object) -> None:
        self.client = client
        self.kv = kv

    def names(self) -> list[str]:
        async def keys() -> list[str]:
            try:
                return sorted(await self.kv.keys())  # type: ignore[attr-defined]
            except Exception as exc:  # nats-py raises NoKeysError for an empty bucket
                if type(exc).__name__ == "NoKeysError":
                    return []
                raise

        return self.client.run(keys(), _TIMEOUT_S)

    async def _get(self, group: str) -> tuple[Offsets, int]:
        try:
            entry = await self.kv.get(group)  # type: ignore[attr-defined]
        except KeyNotFoundError:
            raise UnknownGroup(f"no consumer group {group!r}") from None
        if entry.value is None:
            raise UnknownGroup(f"no consumer group {group!r}")
        return msgspec.json.decode(entry.value, type=Offsets), int(entry.revision or 0)

    def load(self, group: str) -> Offsets:
        validate_group(group)
        return self.client.run(self._get(group), _TIMEOUT_S)[0]

    def update(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        validate_group(group)

        async def commit() -> None:
            for _ in range(_ATTEMPTS):
                try:
                    current, revision = await self._get(group)
                except UnknownGroup:
                    current, revision = {}, 0
                current.setdefault(topic, {}).update({str(p): o for p, o in offsets.items()})
                value = msgspec.json.encode(current)
                try:
                    if revision:
                        await self.kv.update(group, value, last=revision)  # type: ignore[attr-defined]
                    else:
                        await self.kv.create(group, value)  # type: ignore[attr-defined]
                    return
                except KeyWrongLastSequenceError:
                    continue  # another collector committed in between: read again
            raise StoreError(f"group {group!r}: {_ATTEMPTS} commits in a row lost a race")

        self.client.run(commit(), _TIMEOUT_S)
