"""Loki push into a real collector child on loopback: ``python-logging-loki``'s LokiHandler
(JSON), snappy-compressed protobuf pushes built here with the generated ``logproto`` classes,
and garbage of every kind while a good client keeps being served; every record stored once,
every refusal counted in ``/metrics``."""

from __future__ import annotations

import gzip
import json
import logging
import random
from collections import Counter

import cramjam
import logging_loki
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from collector.inputs.loki import MISSING_LABELS
from collector.inputs.proto.push_pb2 import EntryAdapter, LabelPairAdapter, PushRequest
from tests.harness import wait_for
from tests.inputs.conftest import InputsCollector
from tests.inputs.http_inputs import input_counts, input_status, post, post_huge, send_raw

PUSH = "/loki/api/v1/push"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
T0 = 1_700_000_000_000_000_000
N = 200


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clients here use requests, which would send even loopback requests through a
    proxy named in the environment."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def push_request(streams: dict[str, list[tuple[int, str, dict[str, str]]]]) -> bytes:
    """A ``logproto.PushRequest`` as Promtail sends it: snappy block format."""
    req = PushRequest()
    for labels, entries in streams.items():
        s = req.streams.add(labels=labels)
        for ns, line, metadata in entries:
            s.entries.append(
                EntryAdapter(
                    timestamp=Timestamp(seconds=ns // 10**9, nanos=ns % 10**9),
                    line=line,
                    structuredMetadata=[
                        LabelPairAdapter(name=k, value=v) for k, v in metadata.items()
                    ],
                )
            )
    return snappy(req.SerializeToString())


def test_python_logging_loki_every_record_once(inputs_collector: InputsCollector) -> None:
    proc = inputs_collector([{"type": "loki", "name": "loki", "listen": "127.0.0.1:0"}])
    handler = logging_loki.LokiHandler(
        url=f"http://127.0.0.1:{proc.input_ports['loki']}{PUSH}",
        tags={"job": "shop", "host": "app-3"},
        version="1",
    )
    logger = logging.getLogger("wharf.test.loki")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        for i in range(N):
            level = (logging.INFO, logging.WARNING, logging.ERROR)[i % 3]
            logger.log(level, "checkout %d done", i, extra={"tags": {"region": f"r{i % 2}"}})
    finally:
        logger.removeHandler(handler)
        handler.close()

    counts = input_counts(proc, "loki")
    assert counts["received"] == counts["stored"] == N
    assert counts["malformed"] == counts["dropped"] == counts["refused"] == 0
    assert counts["bytes"] > 0
    assert input_status(proc, "loki")["stored"] == N
    proc.stop()
    records = proc.records("loki")
    assert Counter(r.line for r in records) == Counter(f"checkout {i} done" for i in range(N))
    by_line = {r.line: r for r in records}
    r7 = by_line["checkout 7 done"]  # 7 % 3 == 1: a warning
    assert (r7.host, r7.source, r7.level) == ("app-3", "shop", "warn")
    assert r7.fields == {
        "job": "shop",
        "host": "app-3",
        "severity": "warning",
        "logger": "wharf.test.loki",
        "region": "r1",
    }
    assert by_line["checkout 8 done"].level == "error"


def test_protobuf_snappy_pushes_every_entry_once(inputs_collector: InputsCollector) -> None:
    proc = inputs_collector([{"type": "loki", "name": "loki", "listen": "127.0.0.1:0"}])
    port = proc.input_ports["loki"]
    streams = {
        '{job="varlogs", host="web-1", level="info"}': [
            (T0 + i, f"web-1 request {i}", {"trace_id": f"{i:032x}"}) for i in range(100)
        ],
        '{filename="/var/log/db.log", hostname="db-2"}': [
            (T0 + i, f"db-2 query {i}", {}) for i in range(100)
        ],
        '{app="api", env="prod"}': [(T0 + i, f"api call {i}", {}) for i in range(100)],
    }
    body = push_request(streams)
    plain = post(port, PUSH, body, PROTOBUF)
    assert (plain.status, plain.body) == (204, b"")
    again = push_request({'{job="varlogs", host="web-1"}': [(T0, "sent with its coding", {})]})
    assert post(port, PUSH, again, {**PROTOBUF, "Content-Encoding": "snappy"}).status == 204
    zipped = push_request({'{job="varlogs", host="web-1"}': [(T0, "gzip around snappy", {})]})
    gz = {**PROTOBUF, "Content-Encoding": "gzip"}
    assert post(port, PUSH, gzip.compress(zipped), gz).status == 204

    counts = input_counts(proc, "loki")
    assert counts["received"] == counts["stored"] == 302
    proc.stop()
    records = proc.records("loki")
    assert len(records) == 302
    assert Counter(r.line for r in records).most_common(1)[0][1] == 1  # every entry once
    by_line = {r.line: r for r in records}
    web = by_line["web-1 request 42"]
    assert (web.ts, web.host, web.source, web.level) == (T0 + 42, "web-1", "varlogs", "info")
    assert web.fields == {
        "job": "varlogs",
        "host": "web-1",
        "level": "info",
        "trace_id": f"{42:032x}",
    }
    db = by_line["db-2 query 5"]
    assert (db.host, db.source) == ("db-2", "/var/log/db.log")
    api = by_line["api call 0"]
    assert (api.host, api.source) == ("127.0.0.1", '{app="api", env="prod"}')


def test_garbage_is_refused_and_counted_while_a_good_client_is_served(
    inputs_collector: InputsCollector,
) -> None:
    proc = inputs_collector(
        [{"type": "loki", "name": "loki", "listen": "127.0.0.1:0"}],
        extra='[auth]\nwrite_tokens = ["s3cret"]',
    )
    port = proc.input_ports["loki"]
    auth = {"Authorization": "Bearer s3cret"}
    served = 0

    def good() -> None:
        nonlocal served
        served += 1
        doc = {"streams": [{"stream": {"job": "good"}, "values": [[str(T0), f"good {served}"]]}]}
        answer = post(port, PUSH, json.dumps(doc).encode(), {**JSON, **auth})
        assert answer.status == 204, answer

    one = push_request({'{job="x"}': [(T0, "x", {})]})
    good()
    no_token = post(port, PUSH, one, PROTOBUF)
    assert no_token.status == 401
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert no_token.body == b"a write token is required (Authorization: Bearer TOKEN)\n"
    wrong = post(port, PUSH, one, {**PROTOBUF, "Authorization": "Bearer guess"})
    assert wrong.status == 401
    good()
    noise = random.Random(18).randbytes(4096)
    assert post(port, PUSH, noise, {**PROTOBUF, **auth}).status == 400
    not_proto = post(port, PUSH, snappy(b"\x0a\xff\xff\xff\x0f"), {**PROTOBUF, **auth})
    assert (not_proto.status, not_proto.headers["content-type"]) == (
        400,
        "text/plain; charset=utf-8",
    )
    assert not_proto.body.startswith(b"the body is not a Loki PushRequest")
    good()
    assert post(port, PUSH, b'{"streams": [', {**JSON, **auth}).status == 400
    bad_labels = post(port, PUSH, push_request({"job=x": [(T0, "x", {})]}), {**PROTOBUF, **auth})
    assert bad_labels.status == 400
    assert bad_labels.body.startswith(b"couldn't parse labels: ")
    good()
    half = push_request({"{}": [(T0, "no labels", {})], '{job="half"}': [(T0, "half kept", {})]})
    missing = post(port, PUSH, half, {**PROTOBUF, **auth})
    assert missing.status == 400
    assert missing.body.decode().startswith(MISSING_LABELS)
    brotli = post(port, PUSH, one, {**PROTOBUF, "Content-Encoding": "br", **auth})
    assert (brotli.status, brotli.body) == (400, b'Content-Encoding "br" not supported\n')
    good()
    claims_1gib = bytes([0x80, 0x80, 0x80, 0x80, 0x04]) + b"\x00\x00"
    bomb = post(port, PUSH, claims_1gib, {**PROTOBUF, **auth})
    assert bomb.status == 413
    assert bomb.body.startswith(b"request body too large: ")
    real_bomb = snappy(b"\0" * (100 << 20))  # 100 MiB of zeros in under 5 MiB
    assert len(real_bomb) < 5 << 20
    assert post(port, PUSH, real_bomb, {**PROTOBUF, **auth}).status == 413
    good()
    gz_bomb = gzip.compress(b"\0" * (100 << 20))
    assert post(port, PUSH, gz_bomb, {**JSON, "Content-Encoding": "gzip", **auth}).status == 413
    good()
    assert post_huge(port, PUSH, {**PROTOBUF, **auth}, 100 << 20).status in (413, 0)
    good()
    chunks = (b"\0" * (1 << 20) for _ in range(100))
    assert post(port, PUSH, chunks, {**PROTOBUF, **auth}).status in (413, 0)
    good()
    cut_short = (
        b"POST /loki/api/v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-protobuf\r\nAuthorization: Bearer s3cret\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    assert send_raw(port, cut_short + b"\0" * 500).status in (400, 0)
    good()
    assert send_raw(port, b"\x16\x03\x01" + noise[:200] + b"\r\n\r\n").status in (400, 0)
    good()

    # random bytes, not a PushRequest, bad JSON, bad labels, the entry without labels, br,
    # a body cut short, not HTTP (the connection may close before its handler counted it:
    # wait for that, boundedly)
    wait_for(lambda: input_counts(proc, "loki")["malformed"] == 8, 30, "8 malformed")
    counts = input_counts(proc, "loki")
    assert counts["refused"] == 2  # no token, wrong token
    # snappy claiming 1 GiB, 100 MiB of snappy, the gzip bomb, 100 MiB announced, chunked
    assert counts["dropped"] == 5
    assert counts["received"] == counts["stored"] == served + 1  # the half-kept stream
    log = proc.log.read_text()
    assert "input loki: 401" in log
    assert "Traceback" not in log
    proc.stop()
    expected = [f"good {i}" for i in range(1, served + 1)] + ["half kept"]
    assert sorted(proc.lines("loki")) == sorted(expected)
