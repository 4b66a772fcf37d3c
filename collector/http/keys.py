"""What the HTTP handlers share through the aiohttp application: the storage, settings, metrics,
thread pools and the live state of streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from collector.config import CollectorConfig
from collector.http.stream import Feed, Slots
from collector.metrics import Metrics
from collector.query.describe import IngestRate
from collector.query.tail import TailHub
from collector.storage.interface import GroupOffsets, Storage

# The connected shippers for ``/v1/status`` (called on the event loop).
SessionsProvider = Callable[[], Sequence[dict[str, Any]]]

STORE: Final = web.AppKey("store", Storage)
CONFIG: Final = web.AppKey("config", CollectorConfig)
METRICS: Final = web.AppKey("metrics", Metrics)
GROUPS: Final = web.AppKey("groups", GroupOffsets)
# Long scans (search) run here; short reads (tail, consume, group files) on IO_POOL, so a few
# big searches can never delay a live tail.
SCAN_POOL: Final = web.AppKey("scan_pool", ThreadPoolExecutor)
IO_POOL: Final = web.AppKey("io_pool", ThreadPoolExecutor)
SCAN_SLOTS: Final = web.AppKey("scan_slots", Slots)
# A streamed answer the client takes nothing of for this long is dropped (``[api]``).
SEND_TIMEOUT_S: Final = web.AppKey("send_timeout_s", float)
FEEDS: Final = web.AppKey("feeds", set[Feed])
CLOSING: Final = web.AppKey("closing", asyncio.Event)
TAIL_HUB: Final = web.AppKey("tail_hub", TailHub)
HEARTBEAT_S: Final = web.AppKey("tail_heartbeat_s", float)
PROGRESS_S: Final = web.AppKey("search_progress_s", float)
INGEST_RATE: Final = web.AppKey("ingest_rate", IngestRate)
SESSIONS: Final[web.AppKey[SessionsProvider | None]] = web.AppKey("sessions")
# The network inputs with their counts (``collector.inputs.Inputs.status``), for /v1/status.
INPUTS: Final[web.AppKey[SessionsProvider | None]] = web.AppKey("inputs")
STARTED_NS: Final = web.AppKey("started_ns", int)
# Where this collector keeps its own files (consumer groups), shown by ``/v1/status``.
DATA_DIR: Final = web.AppKey("data_dir", Path)


async def in_pool(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a short blocking read on the I/O pool."""
    return await asyncio.get_running_loop().run_in_executor(request.app[IO_POOL], fn, *args)
