"""The pure parts of ``wharf replay``: sink addresses, pacing, record formats, the
cross-partition merge and sink batches. No sockets and no sleeping here: the CLI drives them
(``wharf/cli/replay_cmd.py``, ``wharf/cli/sinks.py``)."""

from cli.replay._batch import MAX_BATCH_BYTES, Batcher, SinkBatch
from cli.replay._formats import FORMATS, Encoder, encoder_for, rfc3339_ns
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
    "FORMATS",
    "IDLE",
    "MAX_BATCH_BYTES",
    "Batcher",
    "Bounds",
    "Cursor",
    "Encoder",
    "Merger",
    "NeedFetch",
    "OffsetSpec",
    "Plan",
    "SinkBatch",
    "SinkSpec",
    "SpeedPacer",
    "TokenBucket",
    "backoff_delay",
    "encoder_for",
    "make_plan",
    "offset_args",
    "parse_offsets",
    "parse_rate",
    "parse_retry_after",
    "parse_sink",
    "parse_speed",
    "rfc3339_ns",
    "select_partitions",
]
