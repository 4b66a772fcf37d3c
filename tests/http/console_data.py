"""The data the console API tests (histogram, facets, paging, context) read, on either backend.

Real logs from ``../shared/data/logs`` (see its README for their sources):

- ``web``: the 10,000 Apache combined lines (elastic/examples), 3 partitions, one host each;
  a web server logs a request when it ends, so a partition is not quite in time order;
- ``sorted``: the same lines sorted by time, as a shipper reading them in order would send
  them (whole seconds: records fall on bucket edges), 2 partitions;
- ``auth``: the 7,121 sshd syslog lines, 1 partition;
- ``kafka``: both Kafka log4j logs (levels trace to error, lines without one), interleaved in
  runs of 50 lines so each partition holds two sources whose times are hours apart, 2 partitions;
- ``nginx``: the 500 nginx plus status objects (JSON with nested maps), 1 partition.

Batches of 400 records, so every topic spans many batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from collector.storage import Store
from collector.storage.jetstream import JetStreamStore
from tests.harness import LiveServer
from tests.http.conftest import _cluster_store, _drop
from tests.http.live import load, log_records, ndjson
from wharf.record import Record
from wharf.topics import partition_for

TOPICS = {"web": 3, "sorted": 2, "auth": 1, "kafka": 2, "nginx": 1}


def _interleaved(a: list[Record], b: list[Record], run: int) -> list[Record]:
    out: list[Record] = []
    for i in range(0, max(len(a), len(b)), run):
        out += a[i : i + run] + b[i : i + run]
    return out


def console_records() -> dict[str, list[Record]]:
    """Each topic's records in the order they are appended."""
    web = log_records("apache_combined.log", "clf")
    return {
        "web": web,
        "sorted": sorted(web, key=lambda r: r.ts),
        "auth": log_records("auth.log", "syslog"),
        "kafka": _interleaved(
            log_records("kafka_controller.log", "auto"),
            log_records("kafka_state_change.log", "auto"),
            50,
        ),
        "nginx": log_records("nginxplus_status.jsonl", "json"),
    }


def fill(store: Store | JetStreamStore, records: dict[str, list[Record]]) -> None:
    for topic, recs in records.items():
        load(store, topic, recs, partitions=TOPICS[topic], per_batch=400)


def serve_console_data(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The body of a module fixture parametrized with ``conftest.BACKENDS``."""
    records = console_records()
    if request.param == "jetstream":
        with _cluster_store(request) as c:
            fill(c, records)
            with LiveServer(c) as srv:
                yield srv
            _drop(c)
        return
    with Store(tmp_path_factory.mktemp("console") / "data") as s:
        fill(s, records)
        with LiveServer(s) as srv:
            yield srv


def flat(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """Query parameters from a dict whose list values repeat the parameter."""
    out: list[tuple[str, Any]] = []
    for k, v in params.items():
        out += [(k, item) for item in (v if isinstance(v, list) else [v])]
    return out


def count(srv: LiveServer, params: dict[str, Any]) -> int:
    """What ``/v1/search?count=1`` counts for ``params``."""
    done = ndjson(srv.url, "/v1/search", [*flat(params), ("count", 1)])[-1]
    assert done.get("done") is True, done
    return int(done["count"])


def positions(records: list[Record], partitions: int) -> Iterator[tuple[int, int, Record]]:
    """``(partition, offset, record)`` of each record as ``load`` stores them."""
    next_offset: dict[int, int] = {}
    for r in records:
        p = partition_for(r.host, partitions)
        o = next_offset.get(p, 0)
        next_offset[p] = o + 1
        yield p, o, r
