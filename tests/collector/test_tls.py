"""TLS on the ingest listener: the right CA and token are served; plain TCP and a wrong token
are refused."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from collector.config import CollectorConfig, TlsSettings
from collector.server import server_ssl_context
from shipper.transport import DeliveryError, Producer
from tests.collector.certs import make_certs
from tests.harness import IngestUnderTest
from tests.storage.helpers import numbered
from wharf import protocol as wp


def test_tls_with_token(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    ctx = server_ssl_context(
        CollectorConfig(tls=TlsSettings(cert=str(certs["cert"]), key=str(certs["key"])))
    )
    srv = IngestUnderTest(tmp_path / "data", tokens=["secret"], ssl_context=ctx)
    client_ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    try:

        async def send(token: str, context: ssl.SSLContext | None) -> wp.Ack:
            p = Producer(
                [srv.address],
                producer_id=bytes(16),
                token=token,
                ssl_context=context,
                deadline_s=2,
                connect_timeout_s=2,
            )
            try:
                return await asyncio.wait_for(p.send("t", numbered(0, 5)), 10)
            finally:
                await p.close()

        ack = srv.loop.run(send("secret", client_ctx))
        assert (ack.base_offset, ack.record_count) == (0, 5)
        with pytest.raises(DeliveryError, match="unauthorized"):
            srv.loop.run(send("wrong", client_ctx))
        # A client that does not trust our CA gives up.
        with pytest.raises(DeliveryError, match="no collector accepted"):
            srv.loop.run(send("secret", ssl.create_default_context()))
        # Plain TCP: the TLS server never answers a plaintext HELLO with a WELCOME.
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(wp.Connection(wp.Role.CLIENT).send(wp.Hello(1, bytes(16), "secret")))
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        s.close()
        conn = wp.Connection(wp.Role.CLIENT)
        conn.receive_data(data)
        conn.receive_data(b"")
        with pytest.raises(wp.ProtocolError):
            while True:
                assert not isinstance(conn.next_event(), wp.Welcome)
        assert srv.store.describe("t").partitions[0].end_offset == 5
    finally:
        srv.close()
