"""The forward input in a real collector child, with real senders on loopback: fluent-logger
from PyPI (Message mode, its sender and its logging handler) and the npm ``fluent-logger``
(Message, PackedForward and CompressedPackedForward, ``requireAckResponse``, the shared key,
TLS). Every record is read back (``/v1/search``, or the store after the collector stopped) and
must be there exactly once with its fields; counts are read from ``/metrics``. Acks only after
durability: every record the npm client saw acknowledged is there after a SIGKILL."""

from __future__ import annotations

import json
import logging
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fluent import asynchandler, handler, sender

from collector.config import CollectorConfig
from tests.collector.certs import make_certs
from tests.harness import CollectorProcess, wait_for
from tests.inputs.conftest import InputsCollector
from tests.inputs.forward_client import (
    TIMEOUT_S,
    RawForward,
    counts,
    get,
    message,
    node_send,
    npm_fluent_logger,
    search,
    wait_counts,
)

KEY = "s3cret-shared-key"


@pytest.fixture(scope="module")
def npm_modules() -> Path:
    return npm_fluent_logger()


def forward_input(name: str = "fw", **settings: Any) -> dict[str, Any]:
    return {"type": "forward", "name": name, "listen": "127.0.0.1:0", **settings}


def start(
    inputs_collector: InputsCollector, *inputs: dict[str, Any], **kw: Any
) -> CollectorProcess:
    return inputs_collector(list(inputs or [forward_input()]), **kw)


def node_events(n: int, label: str = "web", **extra: Any) -> list[dict[str, Any]]:
    """``n`` events with distinct messages, EventTimes 1 s + i ms apart, a level and a number."""
    return [
        {
            "label": label,
            "data": {"message": f"{label} event {i}", "level": "ERROR", "seq": i, **extra},
            "time": [1_700_000_000 + i // 1000, (i % 1000) * 1_000_000 + 7],
        }
        for i in range(n)
    ]


def assert_once(records: list[dict[str, Any]], lines: list[str]) -> None:
    """Every line of ``lines`` stored exactly once, nothing else."""
    got = Counter(r["line"] for r in records)
    assert got == Counter(lines), (
        f"missing {sorted(set(lines) - set(got))[:5]}, "
        f"twice {[k for k, v in got.items() if v > 1][:5]}, "
        f"extra {sorted(set(got) - set(lines))[:5]}"
    )


def test_python_fluent_logger_message_mode(inputs_collector: InputsCollector) -> None:
    """fluent-logger's FluentSender (integer and EventTime times) and its logging handler: every
    event stored once, the message as the line, the tag as source and field, the rest as
    fields, the peer's address as host unless the record names one."""
    proc = start(inputs_collector)
    port = proc.input_ports["fw"]
    plain = sender.FluentSender("py", host="127.0.0.1", port=port)
    precise = sender.FluentSender("py", host="127.0.0.1", port=port, nanosecond_precision=True)
    for i in range(150):
        assert plain.emit_with_time("plain", 1_700_000_000 + i, {"msg": f"plain {i}", "n": i})
        assert precise.emit("precise", {"log": f"precise {i}\n", "host": "web-7", "n": i})
    plain.close()
    precise.close()
    log = logging.getLogger("test_forward.handler")
    log.propagate = False
    h = handler.FluentHandler("py.logging", host="127.0.0.1", port=port)
    h.setFormatter(handler.FluentRecordFormatter({"where": "%(module)s", "lvl": "%(levelname)s"}))
    log.addHandler(h)
    try:
        for i in range(50):
            log.warning({"message": f"handler {i}", "user": "ann"})
    finally:
        log.removeHandler(h)
        h.close()
    wait_counts(proc, "fw", lambda c: c["stored"] == 350, "350 records stored")
    records = search(proc, "forward")
    assert_once(
        records,
        [f"plain {i}" for i in range(150)]
        + [f"precise {i}" for i in range(150)]
        + [f"handler {i}" for i in range(50)],
    )
    by_line = {r["line"]: r for r in records}
    p = by_line["plain 7"]
    assert p["ts"] == (1_700_000_000 + 7) * 10**9
    assert (p["host"], p["source"], p["fields"]) == (
        "127.0.0.1",
        "py.plain",
        {"n": 7, "tag": "py.plain"},
    )
    q = by_line["precise 3"]  # the trailing newline is not part of the line
    assert (q["host"], q["source"], q["fields"]) == (
        "web-7",
        "py.precise",
        {"n": 3, "tag": "py.precise"},
    )
    assert q["ts"] % 10**9 != 0 or q["ts"] > p["ts"]  # EventTime: the sender's clock, in ns
    w = by_line["handler 4"]
    assert w["source"] == "py.logging"
    assert w["fields"]["user"] == "ann" and w["fields"]["lvl"] == "WARNING"
    assert w["fields"]["where"] == "test_forward"
    assert w["level"] == "warn"
    c = counts(proc, "fw")
    assert (c["received"], c["stored"], c["malformed"], c["dropped"]) == (350, 350, 0, 0)
    assert c["bytes"] > 350 * 10


def test_python_async_handler_survives_a_collector_restart(
    inputs_collector: InputsCollector,
) -> None:
    """fluent-logger's asynchronous handler sends from its own thread; after a graceful stop
    of the collector what it sent is stored (the sink is drained on SIGTERM)."""
    proc = start(inputs_collector)
    log = logging.getLogger("test_forward.async")
    log.propagate = False
    h = asynchandler.FluentHandler("py.async", host="127.0.0.1", port=proc.input_ports["fw"])
    h.setFormatter(handler.FluentRecordFormatter({"lvl": "%(levelname)s"}))
    log.addHandler(h)
    try:
        for i in range(100):
            log.error({"message": f"async {i}"})
    finally:
        log.removeHandler(h)
        h.close()  # waits for its queue to be sent
    wait_counts(proc, "fw", lambda c: c["received"] == 100, "100 records received")
    proc.stop()
    records = proc.records("forward")
    assert_once([{"line": r.line} for r in records], [f"async {i}" for i in range(100)])
    assert {r.level for r in records} == {"error"}


@pytest.mark.parametrize("mode", ["PackedForward", "CompressedPackedForward", "Message"])
def test_npm_fluent_logger_with_acks(
    inputs_collector: InputsCollector, npm_modules: Path, tmp_path: Path, mode: str
) -> None:
    """The npm fluent-logger in each event mode with ``requireAckResponse``: every emit's
    callback runs (its ack came), every event is stored once with its EventTime and fields."""
    proc = start(inputs_collector)
    events = node_events(300, "api") + node_events(200, "db", shard=3)
    result = node_send(
        npm_modules,
        tmp_path,
        proc.input_ports["fw"],
        events,
        tag="node",
        options={"eventMode": mode, "requireAckResponse": True, "flushInterval": 20},
    )
    assert result == {"ok": 500, "errors": []}
    records = search(proc, "forward")  # acked: durable, so searchable now
    assert_once(records, [e["data"]["message"] for e in events])
    r = next(r for r in records if r["line"] == "db event 123")
    assert r["ts"] == 1_700_000_000 * 10**9 + 123 * 1_000_000 + 7
    assert (r["host"], r["source"], r["level"]) == ("127.0.0.1", "node.db", "error")
    assert r["fields"] == {"level": "ERROR", "seq": 123, "shard": 3, "tag": "node.db"}
    c = counts(proc, "fw")
    assert (c["received"], c["stored"], c["malformed"], c["refused"]) == (500, 500, 0, 0)


def test_npm_shared_key_handshake_and_wrong_key(
    inputs_collector: InputsCollector, npm_modules: Path, tmp_path: Path
) -> None:
    """With ``shared_key``: the npm client's handshake (security: clientHostname, sharedKey)
    succeeds and its hostname becomes the records' host; a client with a wrong key is refused
    (PONG false, counted, nothing stored) and a good client goes on being served."""
    proc = start(inputs_collector, forward_input(shared_key=KEY, self_hostname="wharf-under-test"))
    port = proc.input_ports["fw"]
    good = {"clientHostname": "node-client-1", "sharedKey": KEY}
    result = node_send(
        npm_modules,
        tmp_path,
        port,
        node_events(100, "keyed"),
        options={"eventMode": "PackedForward", "requireAckResponse": True, "security": good},
    )
    assert result == {"ok": 100, "errors": []}
    bad = {"clientHostname": "intruder", "sharedKey": "not-the-key"}
    refused = node_send(
        npm_modules,
        tmp_path,
        port,
        node_events(10, "intruder"),
        options={"eventMode": "Message", "requireAckResponse": True, "security": bad},
        timeout_ms=10_000,
    )
    assert refused["ok"] == 0
    assert any("shared_key mismatch" in e for e in refused["errors"]), refused
    result = node_send(
        npm_modules,
        tmp_path,
        port,
        node_events(50, "again"),
        options={"eventMode": "Message", "requireAckResponse": True, "security": good},
    )
    assert result == {"ok": 50, "errors": []}
    records = search(proc, "forward")
    assert_once(
        records, [f"keyed event {i}" for i in range(100)] + [f"again event {i}" for i in range(50)]
    )
    assert {r["host"] for r in records} == {"node-client-1"}
    c = wait_counts(proc, "fw", lambda c: c["connections"] == 0, "connections closed")
    assert (c["stored"], c["refused"], c["malformed"]) == (150, 1, 0)


def test_npm_over_tls_with_shared_key(
    inputs_collector: InputsCollector, npm_modules: Path, tmp_path: Path
) -> None:
    """``protocol = "tls"`` with the collector's [tls] certificate: the npm client (tls: true,
    the test CA) sends CompressedPackedForward with acks after the handshake; a plaintext
    client on the TLS port is cut off and stores nothing."""
    certs = make_certs(tmp_path)
    extra = f'[tls]\ncert = "{certs["cert"]}"\nkey = "{certs["key"]}"\n'
    proc = start(
        inputs_collector,
        forward_input("fwt", protocol="tls", shared_key=KEY, self_hostname="wharf-tls"),
        extra=extra,
        ca=certs["ca"],
    )
    port = proc.input_ports["fwt"]
    with RawForward(port, timeout=10) as plain:  # TLS expected: a forward message is no hello
        plain.send(message("Message", "plain", [(0, {"message": "in clear"})]))
        assert plain.closed_by_server()
    wait_counts(proc, "fwt", lambda c: c["refused"] == 1, "the plaintext client refused")
    result = node_send(
        npm_modules,
        tmp_path,
        port,
        node_events(200, "tls"),
        options={
            "eventMode": "CompressedPackedForward",
            "requireAckResponse": True,
            "tls": True,
            "security": {"clientHostname": "tls-client", "sharedKey": KEY},
        },
        ca=certs["ca"],
    )
    assert result == {"ok": 200, "errors": []}
    records = search(proc, "forward")
    assert_once(records, [f"tls event {i}" for i in range(200)])
    assert {r["host"] for r in records} == {"tls-client"}


def test_acked_records_survive_sigkill(
    inputs_collector: InputsCollector, npm_modules: Path, tmp_path: Path
) -> None:
    """An ack means durable: the npm client sends with ``requireAckResponse``, the collector is
    killed with SIGKILL the moment the client has all its acks, and after a restart on the same
    data every acknowledged record is there, once."""
    proc = start(inputs_collector)
    events = node_events(2000, "durable")
    result = node_send(
        npm_modules,
        tmp_path,
        proc.input_ports["fw"],
        events,
        options={"eventMode": "PackedForward", "requireAckResponse": True, "flushInterval": 5},
    )
    proc.kill()
    assert result == {"ok": 2000, "errors": []}
    stored = proc.records("forward")
    assert_once([{"line": r.line} for r in stored], [e["data"]["message"] for e in events])


def test_status_lists_the_input(inputs_collector: InputsCollector) -> None:
    """``/v1/status`` shows the forward input with its counts (what ``wharf status`` prints)."""
    proc = start(inputs_collector)
    with RawForward(proc.input_ports["fw"]) as c:
        c.acked(message("Forward", "st", [(0, {"msg": "a"}), (0, {"msg": "b"})], chunk="c1"), "c1")
    status = wait_for(
        lambda: next(
            (i for i in _status(proc)["inputs"] if i["name"] == "fw" and i["stored"] == 2), None
        ),
        TIMEOUT_S,
        "the input in /v1/status",
    )
    assert (status["type"], status["protocol"], status["topic"]) == ("forward", "tcp", "forward")
    assert status["port"] == proc.input_ports["fw"]


def _status(proc: CollectorProcess) -> Any:
    return json.loads(get(proc, "/v1/status"))


def test_lines_arrive_in_order_per_connection(inputs_collector: InputsCollector) -> None:
    """One connection's records keep their order (one host: one partition)."""
    proc = start(inputs_collector)
    with RawForward(proc.input_ports["fw"]) as c:
        for b in range(20):
            events = [(0, {"log": f"ordered {b * 50 + i}"}) for i in range(50)]
            c.acked(message("PackedForward", "ord", events, chunk=f"k{b}"), f"k{b}")
    lines = [r["line"] for r in search(proc, "forward")]
    assert lines == [f"ordered {i}" for i in range(1000)]


def test_sigterm_stores_what_was_sent_without_acks(inputs_collector: InputsCollector) -> None:
    """Records of messages without ``chunk`` wait ``linger_ms`` (here a minute) in the sink; a
    SIGTERM ends the open connections (one of them idle, one in the middle of a message) and
    stores them all before the collector exits."""
    proc = start(inputs_collector, forward_input(linger_ms=60_000))
    port = proc.input_ports["fw"]
    idle = RawForward(port)
    partial = RawForward(port)
    partial.send(message("PackedForward", "cut", [(0, {"msg": "never whole"})])[:10])
    with RawForward(port) as c:
        for i in range(5):
            c.send(
                message(
                    "Forward", "linger", [(0, {"log": f"lingering {i}.{j}"}) for j in range(20)]
                )
            )
        wait_counts(proc, "fw", lambda c: c["received"] == 100, "100 records received")
        assert counts(proc, "fw")["stored"] == 0  # still lingering
        assert proc.stop() == 0
    stored = proc.records("forward")
    assert_once(
        [{"line": r.line} for r in stored],
        [f"lingering {i}.{j}" for i in range(5) for j in range(20)],
    )
    idle.close()
    partial.close()


def test_the_documented_example_is_a_valid_input() -> None:
    """config/collector.toml's commented forward example, uncommented, loads without problems."""
    text = (Path(__file__).parents[2] / "config" / "collector.toml").read_text()
    start_at = text.index('#[[inputs]]\n#type = "forward"')
    block = text[start_at : text.index("#max_pending_bytes", start_at)]
    body = "\n".join(
        line[1:] for line in block.splitlines() if line.startswith("#") and line[1:2] != " "
    )
    config = msgspec.convert(tomllib.loads(body), CollectorConfig)
    assert list(config.problems()) == []
    (forward,) = config.inputs
    assert (forward.type, forward.label, forward.message_limit) == (
        "forward",
        "forward-tcp-24224",
        16 << 20,
    )
