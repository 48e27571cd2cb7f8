"""Transport's body read: a buffered answer is taken without awaiting, a late one awaited."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from rpcd.connections import Transport, TransportSettings
from rpcd.connections.request import OutboundRequest

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 10\r\n\r\n"


class _Split(asyncio.Protocol):
    """Answers each request with the head and half the body at once, the rest 50 ms later."""

    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        _Split.connections += 1
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer or not self.buffer.endswith(b"body"):
            return
        self.buffer = b""
        self.transport.write(HEAD + b"01234")
        asyncio.get_running_loop().call_later(0.05, self.transport.write, b"56789")


def test_body_arriving_after_the_head_is_read_in_full_and_the_connection_reused() -> None:
    async def go() -> list[bytes]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Split, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with Transport.open() as transport:
                prepared = transport.prepare(OutboundRequest("POST", f"http://127.0.0.1:{port}/x"))
                bodies = []
                for _ in range(3):
                    response = await transport.send(prepared, b"body", timeout=5)
                    bodies.append(response.body)
                return bodies
        finally:
            server.close()

    _Split.connections = 0
    assert asyncio.run(go()) == [b"0123456789"] * 3
    assert _Split.connections == 1  # released to the pool after each answer, and reused


def test_outbound_settings_reach_the_transport_and_share_its_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``RPCD_OUTBOUND_*`` (what an operator sets) becomes the transport's limits; unset, the
    daemon's defaults are the transport's own, so the two never drift apart."""
    from rpcd.settings import Settings, load_settings

    assert TransportSettings.from_settings(load_settings()) == TransportSettings()
    limits = {f.name for f in dataclasses.fields(TransportSettings)} - {"user_agent"}
    assert {f"outbound_{name}" for name in limits} <= set(Settings.model_fields)
    monkeypatch.setenv("RPCD_OUTBOUND_MAX_LINE_BYTES", "4096")
    monkeypatch.setenv("RPCD_OUTBOUND_MAX_HEADERS", "16")
    chosen = TransportSettings.from_settings(load_settings())
    assert (chosen.max_line_bytes, chosen.max_headers) == (4096, 16)
    assert chosen.head_limits().max_line_bytes == 4096
