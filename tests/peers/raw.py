"""Scripted raw HTTP/1.1 peers on 127.0.0.1 for the outbound client's tests.

A ``Peer`` is an asyncio server in the test's own event loop: its script sees every complete
request and decides the exact bytes of the answer (or a stall, a close, garbage, an endless
stream), so framing, keep-alive, limits and failures are checked independently of the HTTP
client under ``Transport``. Every call carries ``SECRET`` in its query and its Authorization
header; ``refused`` checks that a failure message never quotes it.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar, cast

import pytest

from rpcd.connections import Transport, TransportSettings
from rpcd.connections.request import OutboundRequest, Response
from rpcd.errors import ConnectionCallError

T = TypeVar("T")

SECRET = "tok-SECRET-123"
PATH = f"/path?q=1&token={SECRET}"
HEADERS = {"Authorization": f"Bearer {SECRET}", "X-Trace": "t-1"}
LABEL = "cls/conn"

Script = Callable[["RawConn", bytes], None]


def reply(body: bytes = b"ok", *head: str, status: str = "200 OK", length: bool = True) -> bytes:
    """An HTTP/1.1 answer: ``head`` lines as given, a Content-Length unless ``length=False``."""
    lines = [f"HTTP/1.1 {status}", *head]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*chunks: bytes) -> bytes:
    """``chunks`` in the chunked transfer coding, with the last (empty) chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def _take_request(buffer: bytearray) -> bytes | None:
    """The first complete request (head and Content-Length body) cut from ``buffer``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    end += 4
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", bytes(buffer[:end]), re.IGNORECASE)
    size = end + (int(match.group(1)) if match else 0)
    if len(buffer) < size:
        return None
    request = bytes(buffer[:size])
    del buffer[:size]
    return request


class Peer:
    """A scripted HTTP/1.1 server: ``script(conn, request)`` runs for each complete request.

    Counts what a client test wants to see: connections made (``connections``), open now
    (``open``) and at most (``most_open``), closed (``lost``); every request's raw bytes
    (``requests``) and the number of the connection it came on (``request_conn``, from 1);
    the bytes it handed to the kernel (``sent``).
    """

    def __init__(self, script: Script, ssl: ssl_module.SSLContext | None = None) -> None:
        self.script = script
        self.ssl = ssl
        self.requests: list[bytes] = []
        self.request_conn: list[int] = []
        self.received = bytearray()  # everything that arrived, complete request or not
        self.connections = self.open = self.most_open = self.lost = 0
        self.sent = 0
        self.conns: list[RawConn] = []

    async def __aenter__(self) -> Peer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: RawConn(self), "127.0.0.1", 0, ssl=self.ssl)
        self.port: int = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self.conns:
            conn.transport.abort()
        self.server.close()
        await self.server.wait_closed()

    def url(self, path: str = PATH) -> str:
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}{path}"


class RawConn(asyncio.Protocol):
    """One connection of a ``Peer``."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.buffer = bytearray()
        self.answered = 0  # requests answered on this connection
        self._stream: Callable[[], bytes] | None = None
        self._stream_left = 0
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.peer
        peer.connections += 1
        self.number = peer.connections
        peer.open += 1
        peer.most_open = max(peer.most_open, peer.open)
        peer.conns.append(self)

    def data_received(self, data: bytes) -> None:
        self.peer.received += data
        self.buffer += data
        while (request := _take_request(self.buffer)) is not None:
            self.peer.requests.append(request)
            self.peer.request_conn.append(self.number)
            self.peer.script(self, request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.open -= 1
        self.peer.lost += 1
        self._stream = None

    def answer(self, data: bytes, *, delay: float = 0.0, close: bool = False) -> None:
        """Write ``data`` (``delay`` seconds later), then close if ``close``."""
        if delay:
            asyncio.get_running_loop().call_later(
                delay, functools.partial(self.answer, data, close=close)
            )
            return
        if self.transport.is_closing():
            return
        self.answered += 1
        self._write(data)
        if close:
            self.transport.close()

    def stream(self, head: bytes, piece: Callable[[], bytes], most: int) -> None:
        """Write ``head``, then ``piece()`` again and again as fast as the client reads, until
        ``most`` bytes in all or the client closes the connection: an endless answer."""
        self._write(head)
        self._stream, self._stream_left = piece, most - len(head)
        self._pump()

    def _write(self, data: bytes) -> None:
        self.peer.sent += len(data)
        self.transport.write(data)

    def _pump(self) -> None:
        while self._stream is not None and not self._paused and self._stream_left > 0:
            if self.transport.is_closing():
                self._stream = None
                return
            data = self._stream()
            self._stream_left -= len(data)
            self._write(data)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._pump()


def answer_ok(conn: RawConn, request: bytes) -> None:
    conn.answer(reply(b"ok", "Content-Type: text/plain"))


def stall(conn: RawConn, request: bytes) -> None:
    """Read the request, never answer."""


def first(*scripts: Script) -> Script:
    """The n-th request (from 1) gets ``scripts[n - 1]``; those after the last get ``answer_ok``."""

    def script(conn: RawConn, request: bytes) -> None:
        n = len(conn.peer.requests)
        (scripts[n - 1] if n <= len(scripts) else answer_ok)(conn, request)

    return script


def answering(data: bytes, *, close: bool = False) -> Script:
    def script(conn: RawConn, request: bytes) -> None:
        conn.answer(data, close=close)

    return script


def run(
    script: Script,
    calls: Callable[[Peer, Transport], Awaitable[T]],
    settings: TransportSettings | None = None,
    *,
    loop: Literal["asyncio", "uvloop"] = "asyncio",
) -> T:
    """``calls(peer, transport)`` in a fresh event loop (asyncio's, or uvloop, the daemon's),
    against a peer running ``script``."""

    async def go() -> T:
        async with Peer(script) as peer, Transport.open(settings) as transport:
            return await calls(peer, transport)

    if loop == "uvloop":
        import uvloop

        return uvloop.run(go())
    return asyncio.run(go())


async def post(
    transport: Transport,
    peer: Peer,
    body: bytes = b"body",
    *,
    path: str = PATH,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    request = OutboundRequest(
        "POST", peer.url(path), headers=HEADERS if headers is None else headers
    )
    prepared = transport.prepare(request)
    return await transport.send(prepared, body, timeout=timeout, label=LABEL)


async def refused(
    transport: Transport, peer: Peer, match: str | None, *, timeout: float = 5.0
) -> str:
    """A call that fails with ``ConnectionCallError`` matching ``match``; its message, checked
    not to quote the token."""
    with pytest.raises(ConnectionCallError, match=match) as info:
        await post(transport, peer, timeout=timeout)
    message = str(info.value)
    assert SECRET not in message
    return message


async def ok(transport: Transport, peer: Peer) -> None:
    """The transport still works: a call gets the peer's ``answer_ok``."""
    response = await post(transport, peer)
    assert (response.status, response.body) == (200, b"ok")


async def wait_until(condition: Callable[[], bool], within: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def head_of(request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Request line, headers (lower-case names) and body of a raw request."""
    head, _, body = request.partition(b"\r\n\r\n")
    line, *fields = head.decode("latin-1").split("\r\n")
    headers = {}
    for f in fields:
        name, _, value = f.partition(":")
        headers[name.strip().lower()] = value.strip()
    return line, headers, body
