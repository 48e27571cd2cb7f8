"""HTTP/1.1 keep-alive connections for outbound calls: asyncio transports, httptools parsing.

Why not aiohttp's ``ClientSession``: measured on one core (``bench/client.py``), a call through
it costs about 140 µs of client CPU, most of it per-request machinery an RPC call does not use
(a ``ClientRequest`` built in ten steps, a response object, a new parser, a body-writer task
and its extra loop turn, cookie and trace hooks); that is more than the whole blocking
``xmlrpc.client`` call. An RPC request is a method, a target, a few fixed headers and a
``bytes`` body, and its answer is read in full: here that is one ``write`` of bytes made
mostly in advance (``Origin.head``), and an ``asyncio.Protocol`` that feeds what it receives
to httptools (llhttp, the parser Node.js uses) and resolves a future when the answer is
complete. The framing rules (Content-Length, chunked, read-until-close, interim ``1xx``,
keep-alive or not) are the parser's; this module owns only the pool.

The pool: idle connections per origin (scheme, host, port, TLS context), reused last-in
first-out, closed after ``keepalive_timeout`` idle (a sweep timer runs while any are idle) or
when the peer closes them; at most ``limit_per_host`` connections per origin and ``limit`` in
all (callers beyond that wait). A connection that carried a request which did not finish
cleanly (an error, a cancelled call, bytes the peer sent unasked, ``Connection: close``) is
closed, never reused. A request is sent once: like aiohttp, only an idempotent ``GET`` whose
reused connection turns out to have been closed by the peer is retried, once, on a new one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "Answer",
    "CannotConnect",
    "HTTPPool",
    "MalformedResponse",
    "ResponseTooLarge",
    "ServerDisconnected",
    "request_head",
]

_RETRYABLE = frozenset({"GET", "HEAD", "OPTIONS"})


class CannotConnect(Exception):
    """No connection to the origin: ``cause`` is the ``OSError`` / ``ssl.SSLError`` of the
    connect or TLS handshake (kept apart from errors during an exchange, reported otherwise)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__("cannot connect")
        self.cause = cause


class ServerDisconnected(ConnectionError):
    """The peer closed the connection before the answer was complete."""

    def __init__(self, *, answered: bool = False) -> None:
        super().__init__("the server closed the connection before answering in full")
        self.answered = answered  # some of the answer had arrived


class MalformedResponse(ConnectionError):
    """Bytes from the peer that are not an HTTP/1.x answer (the parser's reason, no data)."""


class ResponseTooLarge(Exception):
    """The answer is over the size limit; ``announced`` is its Content-Length, if it gave one."""

    def __init__(self, announced: int | None) -> None:
        super().__init__("response over the size limit")
        self.announced = announced


class Answer:
    """A complete HTTP answer, body as received (still content-encoded, if it was)."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: CIMultiDictProxy[str], body: bytes):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


Origin = tuple[str, int, Any]  # (host, port, ssl context or None): what a connection is for


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.reusable = False  # the last answer allows another request on this connection
        self.idle_since = 0.0
        self._limit = 0
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._complete_at_eof = False  # no Content-Length and not chunked: ends at close
        self._received = False

    # -------------------------------------------------------------------- the exchange

    def exchange(self, data: bytes, limit: int) -> asyncio.Future[Answer]:
        """Send one request (``data``: head and body); the future gets its answer."""
        self._limit = limit
        self.reusable = False
        self.waiter = waiter = asyncio.get_running_loop().create_future()
        cast(asyncio.Transport, self.transport).write(data)
        return waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------- protocol events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the stream can't be trusted
            self.abort()
            return
        self._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, ResponseTooLarge) else MalformedResponse())
        except httptools.HttpParserError as exc:
            self._fail(MalformedResponse(str(exc)))

    def eof_received(self) -> bool:
        return False  # close our side too; ``connection_lost`` settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self._complete_at_eof:
            self._complete()
        elif isinstance(exc, OSError):
            self._fail(exc)
        else:
            self._fail(ServerDisconnected(answered=self._received))

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second answer nobody asked for
            raise MalformedResponse("an answer to no request")

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = status = self.parser.get_status_code()
        if 100 <= status < 200:
            return
        length: int | None = None
        chunked = False
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)  # the parser has checked it is a number
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if length is not None and length > self._limit:
            raise ResponseTooLarge(length)
        self._complete_at_eof = length is None and not chunked and status not in (204, 304)

    def on_body(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise ResponseTooLarge(None)
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # interim answer (100 Continue, 103): the real one follows
            self._reset()
            self._received = True
            return
        self.reusable = self.parser.should_keep_alive()
        self._complete()

    def _complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in self._headers:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        answer = Answer(
            self._status, self._reason.decode("latin-1"), CIMultiDictProxy(headers), body
        )
        self._reset()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class HTTPPool:
    """Keep-alive connections for every origin this process calls (see the module docstring)."""

    def __init__(self, *, limit: int, limit_per_host: int, keepalive_timeout: float) -> None:
        self._limit_per_host = limit_per_host
        self._keepalive = keepalive_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._per_origin: dict[Origin, asyncio.Semaphore] = {}
        self._total = asyncio.Semaphore(limit)
        self._open: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(self, origin: Origin, method: str, data: bytes, limit: int) -> Answer:
        """Send ``data`` (a whole request) to ``origin`` and return the answer.

        Raises ``CannotConnect`` (no connection: TCP or TLS), ``ServerDisconnected``,
        ``MalformedResponse``, ``ResponseTooLarge`` or the ``OSError`` that broke the
        connection; cancelling the caller drops the connection, whose state is then unknown.
        """
        if self._closed:
            raise RuntimeError("the HTTP pool is closed")
        gate = self._per_origin.get(origin)
        if gate is None:
            gate = self._per_origin[origin] = asyncio.Semaphore(self._limit_per_host)
        async with gate, self._total:
            conn = self._reuse(origin)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin)
            try:
                answer = await conn.exchange(data, limit)
            except ServerDisconnected as exc:
                self._forget(conn)
                if not (reused and not exc.answered and method in _RETRYABLE):
                    raise
                conn = await self._connect(origin)
                answer = await conn.exchange(data, limit)
            except BaseException:
                conn.abort()
                raise
            finally:  # ``reusable`` only once an answer completed cleanly
                if conn.reusable and not conn.closed and not self._closed:
                    self._keep(origin, conn)
                else:
                    self._forget(conn)
            return answer

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if (
                not conn.closed
                and not cast(asyncio.Transport, conn.transport).is_closing()
                and time.monotonic() - conn.idle_since < self._keepalive
            ):
                return conn
            self._forget(conn)
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        host, port, context = origin
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Connection, host, port, ssl=context, server_hostname=host if context else None
            )
        except OSError as exc:  # ssl.SSLError is one too
            raise CannotConnect(exc) from None
        self._open.add(conn)
        return conn

    def _keep(self, origin: Origin, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(conn)
        if self._sweep is None:
            self._schedule_sweep()

    def _forget(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweep = loop.call_later(max(self._keepalive / 2, 0.01), self._swept)

    def _swept(self) -> None:
        """Close connections idle for ``keepalive_timeout``; run again while any are idle."""
        self._sweep = None
        now = time.monotonic()
        for origin, idle in list(self._idle.items()):
            keep = []
            for conn in idle:
                if conn.closed or now - conn.idle_since >= self._keepalive:
                    self._forget(conn)
                else:
                    keep.append(conn)
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]
        if self._idle and not self._closed:
            self._schedule_sweep()

    async def close(self) -> None:
        """Close every connection (idle or not) and refuse further requests."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        conns = list(self._open)
        self._open.clear()
        self._idle.clear()
        for conn in conns:
            conn.close()
        if conns:
            await asyncio.sleep(0)  # let the transports run their close callbacks


def request_head(method: str, target: str, host: str, headers: CIMultiDict[str]) -> bytes:
    """The request line and header lines (no Content-Length, no blank line), made once per
    prepared target. Refuses a name or value that would break the framing (CR, LF, NUL)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if _unsafe(name) or ":" in name or " " in name or _unsafe(value):
            raise ValueError(f"header {_printable(name)} contains a line break or NUL")
        lines.append(f"{name}: {value}")
    if _unsafe(target) or " " in target:
        raise ValueError("request target contains a space, line break or NUL")
    return ("\r\n".join(lines) + "\r\n").encode()


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


def _printable(name: str) -> str:
    return repr(name.replace("\r", "").replace("\n", "").replace("\0", "")[:40])
