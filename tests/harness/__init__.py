"""The test harness: one way to start each real thing a test talks to, and to wait for it.

- ``CollectorProcess``: ``wharf collector run`` as a child (start, stop, kill -9, restart on the
  same data; ports reported by the child, or ``fixed_ports`` held across restarts);
- ``LiveServer``, ``IngestUnderTest``, ``LoopThread``: the in-process variant (HTTP API or
  ingest server on port 0 around a ``Store`` the test holds);
- ``ShipperProcess`` and ``write_shipper_config``, ``status_of``, ``wait_caught_up``,
  ``shipper_status``: ``wharf shipper run`` as a child and what it reports;
- ``wait_for``: poll a predicate with a deadline;
- ``gnu_grep``, ``gnu_grep_bytes``, ``grep_lines``: the GNU grep oracle;
- ``reserve_port``, ``listening_ports``: ports without the bind-close-rebind race;
- ``WHARF``, ``clean_env``: the CLI as a child process.

Every process helper is closed at the end of the test that created it (``tests/conftest.py``).
"""

from tests.harness.cli import ROOT, WHARF, clean_env
from tests.harness.collector import CollectorProcess
from tests.harness.grep import gnu_grep, gnu_grep_bytes, grep_lines
from tests.harness.inprocess import IngestUnderTest, LiveServer, LoopThread
from tests.harness.ports import ReservedPort, listening_ports, reserve_port
from tests.harness.shipper import (
    ShipperProcess,
    caught_up,
    shipper_status,
    status_of,
    wait_caught_up,
    write_shipper_config,
)
from tests.harness.wait import wait_for

__all__ = [
    "ROOT",
    "WHARF",
    "CollectorProcess",
    "IngestUnderTest",
    "LiveServer",
    "LoopThread",
    "ReservedPort",
    "ShipperProcess",
    "caught_up",
    "clean_env",
    "gnu_grep",
    "gnu_grep_bytes",
    "grep_lines",
    "listening_ports",
    "reserve_port",
    "shipper_status",
    "status_of",
    "wait_caught_up",
    "wait_for",
    "write_shipper_config",
]
