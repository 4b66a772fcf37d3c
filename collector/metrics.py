"""Prometheus metrics of one collector (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# What ``InputCounters`` counts, each a Prometheus counter ``wharf_input_<name>`` by input.
INPUT_COUNTERS: Final = {
    "received": "Records received (parsed from messages) by a network input.",
    "stored": "Records a network input appended and saw durable.",
    "bytes": "Bytes a network input received off the wire (before decompressing).",
    "malformed": "Messages a network input could not decode (counted, logged, skipped).",
    "dropped": "Records or messages a network input dropped: over-long, or UDP while the "
    "store was behind.",
    "refused": "Connections or requests a network input refused: over max_connections, "
    "bad credentials, or 503 while the store was behind.",
}


class Metrics:
    """Every metric the collector exports on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "wharf_ingest_open_connections", "Open native-protocol connections.", registry=r
        )
        self.http_refused = Counter(
            "wharf_http_connections_refused",
            "HTTP connections answered 503 at once: [api] max_connections were open.",
            registry=r,
        )
        self.connections_total = Counter(
            "wharf_ingest_connections", "Accepted native-protocol connections.", registry=r
        )
        self.protocol_errors = Counter(
            "wharf_ingest_protocol_errors",
            "Connections closed for breaking the protocol, by reason.",
            ["reason"],
            registry=r,
        )
        self.batches = Counter(
            "wharf_ingest_batches", "Batches acknowledged, by topic.", ["topic"], registry=r
        )
        self.records = Counter(
            "wharf_ingest_records", "Records stored, by topic.", ["topic"], registry=r
        )
        self.bytes = Counter(
            "wharf_ingest_bytes", "Batch bytes stored, by topic.", ["topic"], registry=r
        )
        self.duplicates = Counter(
            "wharf_ingest_duplicate_batches",
            "Batches acknowledged without storing (already stored), by topic.",
            ["topic"],
            registry=r,
        )
        self.nacks = Counter(
            "wharf_ingest_nacks", "Batches refused, by reason.", ["reason"], registry=r
        )
        self.append_seconds = Histogram(
            "wharf_ingest_append_seconds",
            "Time from a batch's arrival to its acknowledgement (durable).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.http_requests = Counter(
            "wharf_http_requests",
            "HTTP API requests, by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.searches = Counter(
            "wharf_http_searches",
            "Searches finished, by outcome (completed, cancelled by the client, failed).",
            ["outcome"],
            registry=r,
        )
        self.searches_active = Gauge(
            "wharf_http_searches_active", "Searches scanning right now.", registry=r
        )
        self.tails_active = Gauge(
            "wharf_http_tails_active", "Live tail streams open right now.", registry=r
        )
        self.scan_bytes = Counter(
            "wharf_search_bytes_read", "Stored bytes read by searches and tails.", registry=r
        )
        # The cluster backend (set from the storage's status when /metrics is scraped).
        part = ["topic", "partition"]
        self.cluster_servers = Gauge(
            "wharf_cluster_servers", "NATS servers the connection knows of.", registry=r
        )
        self.cluster_connected = Gauge(
            "wharf_cluster_connected", "1 while connected to a NATS server.", registry=r
        )
        self.cluster_index_lag = Gauge(
            "wharf_cluster_index_lag_batches",
            "Stream messages this collector's index cache has not read yet.",
            part,
            registry=r,
        )
        self.cluster_replicas_current = Gauge(
            "wharf_cluster_stream_replicas_current",
            "Replicas of a partition's stream that are current (the leader included).",
            part,
            registry=r,
        )
        self.cluster_has_leader = Gauge(
            "wharf_cluster_stream_has_leader",
            "1 while a partition's stream has a leader.",
            part,
            registry=r,
        )
        self.cluster_conflicts = Gauge(
            "wharf_cluster_append_conflicts",
            "Appends that lost a compare-and-set to another collector, since start.",
            part,
            registry=r,
        )

        self.inputs = {
            name: Counter(f"wharf_input_{name}", text, ["input", "type"], registry=r)
            for name, text in INPUT_COUNTERS.items()
        }
        self.input_connections = Gauge(
            "wharf_input_open_connections",
            "Open connections of a network input (TCP, TLS, HTTP).",
            ["input", "type"],
            registry=r,
        )

    def input_counters(self, label: str, kind: str) -> InputCounters:
        """The counters of input ``label`` (of type ``kind``)."""
        return InputCounters(self, label, kind)

    def observe_storage(self, status: dict[str, object]) -> None:
        """Set the cluster gauges from ``Storage.backend_status()`` (no-op when embedded)."""
        if status.get("backend") != "jetstream":
            return
        servers = status.get("servers")
        self.cluster_servers.set(len(servers) if isinstance(servers, list) else 0)
        self.cluster_connected.set(1 if status.get("connected") else 0)
        streams = status.get("streams")
        for row in streams if isinstance(streams, list) else []:
            labels = (str(row["topic"]), str(row["partition"]))
            if "error" in row:
                self.cluster_has_leader.labels(*labels).set(0)
                continue
            self.cluster_has_leader.labels(*labels).set(1 if row.get("leader") else 0)
            self.cluster_index_lag.labels(*labels).set(row.get("index_lag") or 0)
            replicas = row.get("replicas") or []
            current = sum(1 for x in replicas if x.get("current")) + (1 if row.get("leader") else 0)
            self.cluster_replicas_current.labels(*labels).set(current)
            self.cluster_conflicts.labels(*labels).set(row.get("conflicts") or 0)


class InputCounters:
    """One network input's counts: exported on ``/metrics`` and kept for ``/v1/status``."""

    def __init__(self, metrics: Metrics, label: str, kind: str) -> None:
        self._children = {name: c.labels(label, kind) for name, c in metrics.inputs.items()}
        self._open = metrics.input_connections.labels(label, kind)
        self.counts = dict.fromkeys(INPUT_COUNTERS, 0)
        self.connections = 0
        self._count_open: Callable[[], int] | None = None

    def add(self, name: str, n: int = 1) -> None:
        """Count ``n`` more of ``name`` (a key of ``INPUT_COUNTERS``)."""
        if n:
            self.counts[name] += n
            self._children[name].inc(n)

    def opened(self) -> None:
        """A connection opened."""
        self.connections += 1
        self._open.inc()

    def closed(self) -> None:
        """A connection closed."""
        self.connections -= 1
        self._open.dec()

    def count_connections(self, count_open: Callable[[], int]) -> None:
        """Read the open connections from ``count_open`` whenever they are shown (an HTTP
        input's server keeps the list of its connections; stream inputs call ``opened()`` and
        ``closed()`` instead)."""
        self._count_open = count_open
        self._open.set_function(count_open)

    def snapshot(self) -> dict[str, int]:
        """The counts and the open connections, for ``/v1/status``."""
        open_now = self._count_open() if self._count_open is not None else self.connections
        return {**self.counts, "connections": open_now}
