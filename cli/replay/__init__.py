"""The pure parts of ``wharf replay``: sink addresses, pacing, the cross-partition merge and
sink batches. No sockets and no sleeping here: the CLI drives them (``cli/replay_cmd.py``,
``cli/sinks.py``). Records are ``wharf.api.Hit``s, printed by ``cli.render`` as grep prints
them."""

from cli.replay._batch import MAX_BATCH_BYTES, SinkBatch, SinkBatcher
from cli.replay._merge import DONE, IDLE, Cursor, Merger, NeedFetch
from cli.replay._options import DEFAULT_BATCH, MAX_BATCH, ReplayOptions
from cli.replay._pacing import (
    SpeedPacer,
    TokenBucket,
    backoff_delay,
    parse_rate,
    parse_retry_after,
    parse_speed,
)
from cli.replay._plan import Bounds, Plan, make_plan, select_partitions
from cli.replay._positions import OffsetSpec, offset_args, parse_offsets
from cli.replay._sinkurl import DEFAULT_WHARF_PORT, SinkSpec, parse_sink

__all__ = [
    "DEFAULT_BATCH",
    "MAX_BATCH",
    "ReplayOptions",
    "DEFAULT_WHARF_PORT",
    "DONE",
    "IDLE",
    "MAX_BATCH_BYTES",
    "SinkBatcher",
    "Bounds",
    "Cursor",
    "Merger",
    "NeedFetch",
    "OffsetSpec",
    "Plan",
    "SinkBatch",
    "SinkSpec",
    "SpeedPacer",
    "TokenBucket",
    "backoff_delay",
    "make_plan",
    "offset_args",
    "parse_offsets",
    "parse_rate",
    "parse_retry_after",
    "parse_sink",
    "parse_speed",
    "select_partitions",
]
