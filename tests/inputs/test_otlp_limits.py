"""The OTLP input in this process around a real store, for what a collector child cannot show:
HTTPS with the collector's certificate (the SDK trusting our CA), a sink without room answered
with 503 and Retry-After until room comes back, and a request still arriving when the input
closes."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.config import CollectorConfig, InputSettings, TlsSettings
from collector.server import server_ssl_context
from tests.collector.certs import make_certs
from tests.harness import wait_for
from tests.inputs.http_inputs import InputUnderTest, post
from tests.inputs.test_otlp import PROTOBUF, emit_orders, flush, one_record, sdk_pipeline

N = 300  # as emit_orders logs them, plus its one exception


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certs(tmp_path)


@pytest.fixture
def https_input(tmp_path: Path, certs: dict[str, Path]) -> Iterator[InputUnderTest]:
    config = CollectorConfig(tls=TlsSettings(cert=str(certs["cert"]), key=str(certs["key"])))
    settings = InputSettings(type="otlp", name="otel", listen="127.0.0.1:0", protocol="https")
    under_test = InputUnderTest(
        tmp_path / "data",
        settings,
        ssl_context=server_ssl_context(config),
        tokens=["s3cret"],
    )
    yield under_test
    under_test.close()


def test_the_sdk_exports_over_https_with_a_token(
    https_input: InputUnderTest, certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets these variables override the exporter's own CA file (its session.verify).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    logger, provider = sdk_pipeline(
        f"https://127.0.0.1:{https_input.port}/v1/logs",
        "https",
        service="vault",
        compression=Compression.Gzip,
        headers={"Authorization": "Bearer s3cret"},
        certificate_file=str(certs["ca"]),
    )
    emit_orders(logger, "vault")
    flush(provider)
    records = https_input.records()
    assert sorted(r.fields["order_id"] for r in records) == list(range(-1, N))
    assert https_input.ctx.counters.counts["stored"] == N + 1

    trusting = ssl.create_default_context(cafile=str(certs["ca"]))
    plain = post(https_input.port, "/v1/logs", one_record("x"), PROTOBUF)
    assert plain.status in (400, 0)  # HTTP to an HTTPS port: never served
    no_token = post(https_input.port, "/v1/logs", one_record("x"), PROTOBUF, tls=trusting)
    assert no_token.status == 401
    assert len(https_input.records()) == N + 1


def test_a_full_sink_gets_503_with_retry_after_until_it_has_room(tmp_path: Path) -> None:
    """503 while the records of other requests hold the memory, 200 once they are stored;
    413 for a request that could never fit."""
    settings = InputSettings(
        type="otlp",
        name="otel",
        listen="127.0.0.1:0",
        max_message_bytes=1 << 20,
        max_pending_bytes=1 << 20,
    )
    under_test = InputUnderTest(tmp_path / "data", settings)
    budget = under_test.ctx.sink.budget
    try:
        # The test takes the whole budget, as records still being appended would.
        under_test.loop.run(budget.acquire(budget.capacity))
        busy = post(under_test.port, "/v1/logs", one_record("wait"), PROTOBUF)
        assert busy.status == 503
        assert busy.headers["retry-after"] == "1"
        assert under_test.ctx.counters.counts["refused"] == 1

        async def give_back() -> None:
            budget.release(budget.capacity)

        under_test.loop.run(give_back())
        assert post(under_test.port, "/v1/logs", one_record("room"), PROTOBUF).status == 200
        # A small request whose records would take more than the whole budget could never
        # be let in: 413, not a 503 to be retried forever.
        big = [f"{i:06d} short line" for i in range(6000)]
        assert sum(len(line) + 256 for line in big) > budget.capacity
        req = ExportLogsServiceRequest()
        logs = req.resource_logs.add().scope_logs.add().log_records
        for line in big:
            logs.add(time_unix_nano=1, body={"string_value": line})
        body = req.SerializeToString()
        assert len(body) < settings.message_limit // 4
        too_many = post(under_test.port, "/v1/logs", body, PROTOBUF)
        assert too_many.status == 413
        assert under_test.ctx.counters.counts["dropped"] == 1
        assert [r.line for r in under_test.records()] == ["room"]
        assert under_test.ctx.counters.counts["stored"] == 1
    finally:
        under_test.close()


def test_closing_ends_a_request_still_arriving_without_an_answer(tmp_path: Path) -> None:
    """The collector stopping while a body is still arriving: the request ends at once with
    no answer (its client sends it again; nothing of it is stored) rather than holding the
    shutdown, and no new connection is taken."""
    settings = InputSettings(type="otlp", name="otel", listen="127.0.0.1:0")
    under_test = InputUnderTest(tmp_path / "data", settings)
    body = one_record("in flight")
    head = (
        f"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    listening = under_test.input._listening
    assert listening is not None
    server = listening.runner.server
    assert server is not None
    try:
        with socket.create_connection(("127.0.0.1", under_test.port), timeout=30) as sock:
            sock.sendall(head + body[:5])
            wait_for(lambda: server.requests_count == 1, 30, "the request's handler to start")
            under_test.loop.run(under_test.input.close())
            assert sock.recv(65536) == b""  # closed, no answer
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", under_test.port), timeout=5)
        assert under_test.records() == []
        assert under_test.ctx.counters.counts == dict.fromkeys(under_test.ctx.counters.counts, 0)
    finally:
        under_test.close()
