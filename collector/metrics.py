"""Prometheus metrics of one collector (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric the collector exports on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "wharf_ingest_open_connections", "Open native-protocol connections.", registry=r
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
