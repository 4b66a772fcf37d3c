"""OTLP/HTTP logs into a real collector child on loopback: the OpenTelemetry Python SDK
(logging handler → BatchLogRecordProcessor → OTLPLogExporter, protobuf, with and without gzip),
OTLP JSON by hand, and garbage of every kind while a good client keeps being served; every
record stored once, every refusal counted in ``/metrics``."""

from __future__ import annotations

import gzip
import json
import logging
import random
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.harness import CollectorProcess, wait_for
from tests.inputs.conftest import InputsCollector
from tests.inputs.http_inputs import input_counts, input_status, post, post_huge, send_raw

EXAMPLE = Path(__file__).parent / "data" / "otlp_logs_example.json"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
N = 300  # records per SDK pipeline


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clients here use requests, which would send even loopback requests through a
    proxy named in the environment."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def sdk_pipeline(
    endpoint: str,
    name: str,
    *,
    service: str,
    compression: Compression,
    headers: dict[str, str] | None = None,
    certificate_file: str | None = None,
) -> tuple[logging.Logger, LoggerProvider]:
    """A stdlib logger whose records the SDK exports to ``endpoint``, as an application
    instrumented with OpenTelemetry sends them."""
    provider = LoggerProvider(
        resource=Resource.create({"service.name": service, "host.name": f"{service}-host"})
    )
    exporter = OTLPLogExporter(
        endpoint=endpoint,
        compression=compression,
        headers=headers,
        certificate_file=certificate_file,
    )
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=64))
    logger = logging.getLogger(f"wharf.test.{name}")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(logger_provider=provider))
    return logger, provider


def emit_orders(logger: logging.Logger, service: str) -> str:
    """N warnings inside a span and one exception after it; the span's trace id (hex)."""
    tracer = TracerProvider().get_tracer("wharf.test")
    with tracer.start_as_current_span("orders") as span:
        for i in range(N):
            logger.warning("order %d placed", i, extra={"order_id": i, "shop": service})
    try:
        raise ValueError("card declined")
    except ValueError:
        logger.exception("payment failed", extra={"order_id": -1})
    return format(span.get_span_context().trace_id, "032x")


def flush(provider: LoggerProvider) -> None:
    assert provider.force_flush(60_000), "the SDK did not flush in time"
    provider.shutdown()


def one_record(line: str) -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.scope_logs.add().log_records.append(
        LogRecord(time_unix_nano=1_700_000_000_000_000_000, body=AnyValue(string_value=line))
    )
    return req.SerializeToString()


def test_sdk_exports_every_record_once_with_its_fields(inputs_collector: InputsCollector) -> None:
    proc = inputs_collector([{"type": "otlp", "name": "otel", "listen": "127.0.0.1:0"}])
    endpoint = f"http://127.0.0.1:{proc.input_ports['otel']}/v1/logs"
    traces = {}
    for service, compression in (
        ("checkout", Compression.Gzip),
        ("billing", Compression.NoCompression),
    ):
        logger, provider = sdk_pipeline(endpoint, service, service=service, compression=compression)
        traces[service] = emit_orders(logger, service)
        flush(provider)

    total = 2 * (N + 1)
    counts = input_counts(proc, "otel")
    assert counts["received"] == counts["stored"] == total
    assert counts["malformed"] == counts["dropped"] == counts["refused"] == 0
    assert counts["bytes"] > 0
    status = input_status(proc, "otel")
    assert (status["type"], status["protocol"], status["received"]) == ("otlp", "http", total)
    assert status["port"] == proc.input_ports["otel"]

    proc.stop()
    records = proc.records("otlp")
    seen = Counter((r.source, r.fields["order_id"]) for r in records)
    assert len(records) == total
    assert set(seen.values()) == {1}  # every record once
    for service, trace_id in traces.items():
        mine = {r.fields["order_id"]: r for r in records if r.source == service}
        assert sorted(mine) == list(range(-1, N))
        seventh = mine[7]
        assert (seventh.line, seventh.level, seventh.host) == (
            "order 7 placed",
            "warn",
            f"{service}-host",
        )
        assert seventh.fields["trace_id"] == trace_id
        assert len(seventh.fields["span_id"]) == 16
        assert seventh.fields["shop"] == service
        assert seventh.fields["severity_text"] == "WARN"
        assert seventh.fields["otel.scope.name"] == f"wharf.test.{service}"
        assert seventh.fields["telemetry.sdk.language"] == "python"
        failed = mine[-1]
        assert (failed.line, failed.level) == ("payment failed", "error")
        assert failed.fields["exception.type"] == "ValueError"
        assert "card declined" in failed.fields["exception.stacktrace"]
        assert "trace_id" not in failed.fields  # logged outside the span


def test_json_requests_and_partial_success(inputs_collector: InputsCollector) -> None:
    proc = inputs_collector([{"type": "otlp", "name": "otel", "listen": "127.0.0.1:0"}])
    port = proc.input_ports["otel"]

    ok = post(port, "/v1/logs", EXAMPLE.read_bytes(), JSON)
    assert (ok.status, ok.headers["content-type"]) == (200, "application/json")
    assert json.loads(ok.body) == {}  # full success: partial_success unset

    doc = json.loads(EXAMPLE.read_text())
    records: list[dict[str, Any]] = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    records.append({"timeUnixNano": "18446744073709551615", "body": {"stringValue": "2600 AD"}})
    partial = post(
        port,
        "/v1/logs",
        gzip.compress(json.dumps(doc).encode()),
        {**JSON, "Content-Encoding": "gzip"},
    )
    assert partial.status == 200
    answer = json.loads(partial.body)["partialSuccess"]
    assert answer["rejectedLogRecords"] == "1"  # int64 as a string, OTLP JSON
    assert "2262" in answer["errorMessage"]

    req = ExportLogsServiceRequest.FromString(one_record("good"))
    bad = req.resource_logs[0].scope_logs[0].log_records.add()
    bad.trace_id = b"\x01\x02"
    proto = post(port, "/v1/logs", req.SerializeToString(), PROTOBUF)
    assert (proto.status, proto.headers["content-type"]) == (200, "application/x-protobuf")
    response = ExportLogsServiceResponse.FromString(proto.body)
    assert response.partial_success.rejected_log_records == 1
    assert "trace_id of 2 bytes" in response.partial_success.error_message

    counts = input_counts(proc, "otel")
    assert counts["received"] == counts["stored"] == 3
    assert counts["malformed"] == 2  # the rejected records
    proc.stop()
    lines = Counter(r.line for r in proc.records("otlp"))
    assert lines == {"Example log record": 2, "good": 1}


def test_garbage_is_refused_and_counted_while_a_good_client_is_served(
    inputs_collector: InputsCollector,
) -> None:
    proc = inputs_collector(
        [{"type": "otlp", "name": "otel", "listen": "127.0.0.1:0"}],
        extra='[auth]\nwrite_tokens = ["s3cret"]',
    )
    port = proc.input_ports["otel"]
    auth = {"Authorization": "Bearer s3cret"}
    served = 0

    def good() -> None:
        nonlocal served
        served += 1
        answer = post(port, "/v1/logs", one_record(f"good {served}"), {**PROTOBUF, **auth})
        assert answer.status == 200, answer

    def status_message(body: bytes) -> str:
        return str(status_pb2.Status.FromString(body).message)

    good()
    no_token = post(port, "/v1/logs", one_record("x"), PROTOBUF)
    assert no_token.status == 401
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert "write token is required" in status_message(no_token.body)
    good()
    wrong = post(port, "/v1/logs", one_record("x"), {**PROTOBUF, "Authorization": "Bearer guess"})
    assert wrong.status == 401
    good()
    noise = random.Random(18).randbytes(4096)
    random_body = post(port, "/v1/logs", noise, {**PROTOBUF, **auth})
    assert random_body.status == 400
    assert "not an OTLP ExportLogsServiceRequest" in status_message(random_body.body)
    good()
    truncated = post(port, "/v1/logs", one_record("cut")[:-3], {**PROTOBUF, **auth})
    assert truncated.status == 400
    good()
    bad_json = post(port, "/v1/logs", b'{"resourceLogs": [', {**JSON, **auth})
    assert bad_json.status == 400
    assert "not JSON" in json.loads(bad_json.body)["message"]
    good()
    text = post(port, "/v1/logs", b"hello", {"Content-Type": "text/plain", **auth})
    assert text.status == 415
    brotli = post(port, "/v1/logs", b"x", {**PROTOBUF, "Content-Encoding": "br", **auth})
    assert brotli.status == 415
    good()
    bomb = gzip.compress(b"\0" * (100 << 20))  # 100 MiB of zeros in ~100 KiB
    assert len(bomb) < 1 << 20
    bombed = post(port, "/v1/logs", bomb, {**PROTOBUF, "Content-Encoding": "gzip", **auth})
    assert bombed.status == 413
    good()
    huge = post_huge(port, "/v1/logs", {**PROTOBUF, **auth}, 100 << 20)
    assert huge.status in (413, 0)  # the answer, or a connection closed before it was read
    good()
    chunks = (b"\0" * (1 << 20) for _ in range(100))
    chunked = post(port, "/v1/logs", chunks, {**PROTOBUF, **auth})
    assert chunked.status in (413, 0)
    good()
    cut_short = (
        b"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        b"Authorization: Bearer s3cret\r\nContent-Length: 1000\r\n\r\n"
    )
    assert send_raw(port, cut_short + b"\0" * 500).status in (400, 0)
    good()
    not_http = send_raw(port, b"\x16\x03\x01" + noise[:200] + b"\r\n\r\n")
    assert not_http.status in (400, 0)
    good()

    # random, truncated protobuf, bad JSON, text/plain, br, a body cut short, not HTTP (the
    # connection may close before its handler counted it: wait for that, boundedly)
    wait_for(lambda: input_counts(proc, "otel")["malformed"] == 7, 30, "7 malformed")
    counts = input_counts(proc, "otel")
    assert counts["refused"] == 2  # no token, wrong token
    assert counts["dropped"] == 3  # the gzip bomb, 100 MiB announced, 100 MiB chunked
    assert counts["received"] == counts["stored"] == served
    log = proc.log.read_text()
    assert "input otel: 401" in log  # the first refusal logged, with its sender
    assert "Traceback" not in log
    proc.stop()
    assert sorted(proc.lines("otlp")) == sorted(f"good {i}" for i in range(1, served + 1))


def test_connections_over_the_limit_get_503_and_are_counted(
    inputs_collector: InputsCollector,
) -> None:
    proc: CollectorProcess = inputs_collector(
        [{"type": "otlp", "name": "otel", "listen": "127.0.0.1:0", "max_connections": 2}]
    )
    port = proc.input_ports["otel"]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2)]
    try:
        wait_for(lambda: input_status(proc, "otel")["connections"] == 2, 30, "two open connections")
        assert input_counts(proc, "otel")["connections"] == 2
        third = send_raw(port, b"")  # answered at once, before a request could be read
        assert third.status == 503
        assert third.headers["retry-after"] == "1"
        assert b"inputs[otel].max_connections" in third.body
    finally:
        for s in idle:
            s.close()
    wait_for(lambda: input_status(proc, "otel")["connections"] == 0, 30, "the connections closed")
    assert post(port, "/v1/logs", one_record("welcome"), PROTOBUF).status == 200
    assert input_counts(proc, "otel")["refused"] == 1
    proc.stop()
    assert proc.lines("otlp") == ["welcome"]
