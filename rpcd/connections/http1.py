"""HTTP/1.1 keep-alive connections for outbound calls: asyncio transports, httptools parsing.

Why not aiohttp's ``ClientSession``: most of what it does per request an RPC call does not use
(a ``ClientRequest`` built in ten steps, a response object, a new parser, a body-writer task
and its extra loop turn, cookie and trace hooks); docs/performance.md has the figures and how
to re-measure them (``bench/client.py``). An RPC request is a method, a target, a few fixed
headers and a ``bytes`` body, and its answer is read in full: here that is one ``write`` of
bytes made mostly in advance (the transport's ``Prepared.head``), and an ``asyncio.Protocol``
that feeds what it receives to httptools (llhttp, the parser Node.js uses) and resolves a
future when the answer is complete. The framing rules (Content-Length, chunked,
read-until-close, interim ``1xx``, keep-alive or not) are the parser's; llhttp is strict (it
refuses a negative or overflowing Content-Length, two of them, Content-Length with
Transfer-Encoding, a chunk size that overflows, bare LF line ends). This module adds the bounds
llhttp leaves to its user: the head's bytes, lines and line length (``headlimits``), a chunked
body's framing bytes, trailer fields, and refuses a Transfer-Encoding other than ``chunked``.

The pool: idle connections per origin (scheme, host, port, TLS context), reused last-in
first-out, closed after ``keepalive_timeout`` idle (a sweep timer runs while any are idle) or
when the peer closes them; at most ``limit_per_host`` connections per origin and ``limit`` in
all (callers beyond that wait). A connection that carried a request which did not finish
cleanly (an error, a cancelled call, bytes the peer sent unasked, ``Connection: close``) is
closed, never reused. A request is sent once: like aiohttp, only an idempotent ``GET`` whose
reused connection turns out to have been closed by the peer is retried, once, on a new one.

Some servers answer without ``Connection: close`` and close at once (Perl's Frontier::Daemon):
the close reaches the client just after the answer, often after the caller has sent its next
request on that connection. So before an idle connection is reused its socket is polled
(one ``poll`` call, no loop turn) for the peer's EOF, and an origin seen closing connections
within ``_EAGER_CLOSE`` of their answer is remembered for a while: its connections are closed
after each answer, and each call opens a new one. A POST is still never sent twice.
"""

from __future__ import annotations

import asyncio
import functools
import re
import select
import time
from typing import Any, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from rpcd.connections.headlimits import AnswerOverLimit, HeadLimits, HeadScanner
from rpcd.connections.proxy import ProxyError, open_tunnel

__all__ = [
    "Answer",
    "AnswerOverLimit",
    "CannotConnect",
    "HTTPPool",
    "HeadLimits",
    "MalformedResponse",
    "ResponseTooLarge",
    "ServerDisconnected",
    "refuse_unsafe_url",
    "request_head",
]

_RETRYABLE = frozenset({"GET", "HEAD", "OPTIONS"})
#: A connection the peer closes within this many seconds of its answer (although the answer
#: let it stay open) marks the origin as one that closes after each answer ...
_EAGER_CLOSE = 1.0
#: ... for this many seconds: its connections are closed after the answer instead of kept.
_LEARNED_FOR = 600.0
_MAX_LEARNED = 4096  # origins remembered at most (they come from the catalog: few)


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


#: (host, port, ssl context or None, proxy hop or None): what a connection is for. Through a
#: proxy, plain http connects to the proxy (absolute-form requests) and https tunnels with
#: ``CONNECT`` (``rpcd.connections.proxy``).
Origin = tuple[str, int, Any, Any]


class _HTTPConnection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    def __init__(self, limits: HeadLimits) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.reusable = False  # the last answer allows another request on this connection
        self.idle_since = 0.0
        self.idle_for = 0.0  # how long it had been idle when it was taken for this request
        self.lost_idle = -1.0  # seconds it had been idle when the peer closed it (-1: it did not)
        self.poll: Any = None  # a ``select.poll`` on the socket, to look for EOF before reuse
        self._limit = 0
        self._limits = limits
        # A head up to this size (to its blank line) is within every limit: each line is
        # shorter, and a header line takes at least 4 bytes ("a:" CRLF), so it has fewer lines.
        self._small_head = min(
            limits.max_line_bytes, limits.max_header_bytes - 4, 4 * limits.max_headers
        )
        self._scanner = HeadScanner(limits)
        self._in_head = False  # the bytes that come next belong to an answer's head
        self._fresh = False  # ... and none of this exchange's head has been seen yet
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._reason: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._complete_at_eof = False  # no Content-Length and not chunked: ends at close
        self._chunked = False
        self._framing = 0  # bytes of a chunked body that are not data: sizes, CRLFs, trailers
        self._framing_room = 0  # ... at most, before some line must be over max_line_bytes
        self._trailers = 0
        self.received = False

    # -------------------------------------------------------------------- the exchange

    def exchange(self, data: bytes, limit: int) -> asyncio.Future[Answer]:
        """Send one request (``data``: head and body); the future gets its answer."""
        self._limit = limit
        self.reusable = False
        self._in_head = self._fresh = True
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
        sock = transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd >= 0:
            self.poll = select.poll()
            self.poll.register(fd, select.POLLIN | select.POLLPRI | _POLLRDHUP)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the stream can't be trusted
            self.abort()
            return
        self.received = True
        try:
            if self._in_head:
                if (  # the common case: a whole final head (not 1xx), small, in one read
                    self._fresh
                    and data[:7] == b"HTTP/1."
                    and data[9:10] in _FINAL
                    and 0 <= data.find(b"\r\n\r\n") <= self._small_head
                ):
                    self.parser.feed_data(data)
                else:
                    self._feed_head(data)
            elif self._chunked:
                self._feed_chunked(data)
            else:
                self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, _OWN_ERRORS) else MalformedResponse())
        except httptools.HttpParserUpgrade:
            self._fail(MalformedResponse("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(MalformedResponse(str(exc)))
        except AnswerOverLimit as exc:
            self._fail(exc)

    def _feed_head(self, data: bytes) -> None:
        """Feed the parser ``data`` whose start belongs to a head: each head only once the
        scanner has passed it (so the parser never holds more than the limits allow)."""
        scanner = self._scanner
        parser = self.parser
        if self._fresh:
            self._fresh = False
            scanner.reset()
        view = memoryview(data)
        start = 0
        while True:
            end = scanner.scan(data, start)
            if end < 0:
                parser.feed_data(view[start:] if start else data)
                return
            parser.feed_data(view[start:end])
            start = end
            if not self._in_head or self.waiter is None:
                break
            scanner.next_head()  # an interim 1xx answer, or blank lines before the status
        if start < len(data):
            rest = view[start:]
            if self._chunked:
                self._feed_chunked(rest)
            else:
                parser.feed_data(rest)

    def _feed_chunked(self, data: bytes | memoryview) -> None:
        """A chunked body. Its framing (each chunk's size line with its extensions and the CRLF
        after its data; trailer fields) takes at most ``max_line_bytes`` + 4 bytes per chunk
        and trailer so far, plus the line in progress; past that one of its lines is longer
        (an endless chunk extension, a size of endless zeros, an endless trailer)."""
        size = self._size
        self.parser.feed_data(data)
        self._framing += len(data) - (self._size - size)
        if self._framing > self._framing_room:
            raise AnswerOverLimit(
                "a chunk-size line or trailer of the answer is over the "
                f"{self._limits.max_line_bytes}-byte limit",
                "max_line_bytes",
            )

    def eof_received(self) -> bool:
        return False  # close our side too; ``connection_lost`` settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            if waiter is None and self.reusable and self.lost_idle < 0:
                self.lost_idle = time.monotonic() - self.idle_since
            return
        if self._complete_at_eof:
            self._complete()
        elif isinstance(exc, OSError):
            self._fail(exc)
        else:
            self._fail(ServerDisconnected(answered=self.received))

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second answer nobody asked for
            raise MalformedResponse("an answer to no request")

    def on_status(self, reason: bytes) -> None:
        self._reason.append(reason)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            self._headers.append((name, value))
            return
        # A trailer field of a chunked answer: counted, then dropped (an RPC answer needs
        # none, and one must not change what the head said, its Content-Encoding say).
        self._framing_room += self._limits.max_line_bytes + 4
        self._trailers += 1
        if self._trailers > self._limits.max_headers:
            raise AnswerOverLimit(
                f"the answer has more than {self._limits.max_headers} trailer fields",
                "max_headers",
            )

    def on_headers_complete(self) -> None:
        self._status = status = self.parser.get_status_code()
        if 100 <= status < 200:
            return
        self._in_head = False
        length: int | None = None
        chunked = False
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)  # the parser has checked it is a number, and only one
            elif lowered == b"transfer-encoding":
                # The parser has decoded chunked; any other coding (we offer none) would
                # leave the body still encoded, so it is refused rather than passed on.
                if chunked or value.strip().lower() != b"chunked":
                    raise MalformedResponse("a Transfer-Encoding other than chunked")
                chunked = True
        if length is not None and length > self._limit:
            raise ResponseTooLarge(length)
        self._chunked = chunked
        self._framing_room = self._limits.max_line_bytes + 4
        self._complete_at_eof = length is None and not chunked and status not in (204, 304)

    def on_chunk_header(self) -> None:
        self._framing_room += self._limits.max_line_bytes + 4

    def on_body(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise ResponseTooLarge(None)
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # interim answer (100 Continue, 103): the real one follows
            self._reset()
            self.received = True
            return
        self.reusable = self.parser.should_keep_alive()
        self._complete()

    def _complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in self._headers:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        reason = self._reason[0] if len(self._reason) == 1 else b"".join(self._reason)
        answer = Answer(self._status, reason.decode("latin-1"), CIMultiDictProxy(headers), body)
        self.idle_since = time.monotonic()  # the idle clock starts with the answer
        self._reset()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


_FINAL = (b"2", b"3", b"4", b"5")  # first digit of a status that is not interim (1xx)
_POLLRDHUP = getattr(select, "POLLRDHUP", 0)
_OWN_ERRORS = (ResponseTooLarge, MalformedResponse, AnswerOverLimit)


class HTTPPool:
    """Keep-alive connections for every origin this process calls (see the module docstring)."""

    def __init__(
        self,
        *,
        limit: int,
        limit_per_host: int,
        keepalive_timeout: float,
        head_limits: HeadLimits | None = None,
    ) -> None:
        self._limit_per_host = limit_per_host
        self._keepalive = keepalive_timeout
        self._head_limits = head_limits or HeadLimits()
        self._new_connection = functools.partial(_HTTPConnection, self._head_limits)
        self._idle: dict[Origin, list[_HTTPConnection]] = {}
        self._per_origin: dict[Origin, asyncio.Semaphore] = {}
        self._total = asyncio.Semaphore(limit)
        self._open: set[_HTTPConnection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        # Origins seen closing a connection right after its answer although the answer let
        # it stay open (when it was learned): their connections are not kept for a while.
        self._closers: dict[Origin, float] = {}

    async def request(self, origin: Origin, method: str, data: bytes, limit: int) -> Answer:
        """Send ``data`` (a whole request) to ``origin`` and return the answer.

        Raises ``CannotConnect`` (no connection: TCP or TLS), ``ServerDisconnected``,
        ``MalformedResponse``, ``ResponseTooLarge``, ``AnswerOverLimit`` or the ``OSError``
        that broke the connection; cancelling the caller drops the connection, whose state is
        then unknown.
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
            except (ServerDisconnected, ConnectionResetError) as exc:
                self._forget(conn)
                if not reused or conn.received:
                    raise
                # The peer closed the kept-alive connection as the request went out.
                if conn.idle_for < _EAGER_CLOSE:
                    self._learn(origin)
                if not (isinstance(exc, ServerDisconnected) and method in _RETRYABLE):
                    raise  # a POST may have reached the peer: never sent twice
                conn = await self._connect(origin)
                answer = await conn.exchange(data, limit)
            except BaseException:
                conn.abort()
                raise
            finally:  # ``reusable`` only once an answer completed cleanly
                if (
                    conn.reusable
                    and not conn.closed
                    and not self._closed
                    and not (self._closers and self._closes_after_answer(origin))
                ):
                    self._keep(origin, conn)
                else:
                    self._forget(conn)
            return answer

    def _reuse(self, origin: Origin) -> _HTTPConnection | None:
        """The most recently used idle connection to ``origin`` that is still fit for a request:
        open on both sides (the socket is asked too, for a close the loop has not reported
        yet) and idle for less than ``keepalive_timeout``."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            idle_for = now - conn.idle_since
            if (
                conn.closed
                or cast(asyncio.Transport, conn.transport).is_closing()
                # Anything to read on an idle socket (the peer's EOF, bytes nobody asked for,
                # an error) makes it unfit; polled here it shows a close that the event loop
                # has not reported yet (a peer that closes right after its answer).
                or (conn.poll is not None and conn.poll.poll(0))
            ):
                self._forget(conn)
                closed_after = conn.lost_idle if conn.lost_idle >= 0 else idle_for
                if closed_after < _EAGER_CLOSE:
                    self._learn(origin)
            elif idle_for < self._keepalive:
                conn.idle_for = idle_for
                return conn
            else:
                self._forget(conn)
        return None

    def _learn(self, origin: Origin) -> None:
        """``origin`` closes its connections right after answering, whatever its answers say
        (Perl's Frontier::Daemon does): for ``_LEARNED_FOR`` seconds each call to it gets a
        new connection, instead of a reused one that may be closed under the next request."""
        if len(self._closers) >= _MAX_LEARNED:
            self._closers.clear()
        self._closers[origin] = time.monotonic()

    def _closes_after_answer(self, origin: Origin) -> bool:
        learned = self._closers.get(origin)
        if learned is None:
            return False
        if time.monotonic() - learned < _LEARNED_FOR:
            return True
        del self._closers[origin]
        return False

    async def _connect(self, origin: Origin) -> _HTTPConnection:
        host, port, context, hop = origin
        loop = asyncio.get_running_loop()
        try:
            if hop is not None and context is not None:  # https through a CONNECT tunnel
                conn = await open_tunnel(
                    hop, host, port, context, self._new_connection, self._head_limits
                )
            elif hop is not None:  # http through a proxy: absolute-form requests to it
                try:
                    _, conn = await loop.create_connection(self._new_connection, hop.host, hop.port)
                except OSError as exc:
                    why = exc.strerror or type(exc).__name__
                    raise ProxyError(f"cannot connect to the {hop.shown} ({why})") from None
            else:
                _, conn = await loop.create_connection(
                    self._new_connection,
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                )
        except OSError as exc:  # ssl.SSLError is one too
            raise CannotConnect(exc) from None
        self._open.add(conn)
        return conn

    def _keep(self, origin: Origin, conn: _HTTPConnection) -> None:
        self._idle.setdefault(origin, []).append(conn)
        if self._sweep is None:
            self._schedule_sweep()

    def _forget(self, conn: _HTTPConnection) -> None:
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
    prepared target.

    Refuses whatever could end a line or confuse a server, from any source (endpoint,
    parameters, credentials, extra headers): a method or header name that is not an HTTP
    token; a control character or space in the target or host; a control character other
    than tab in a header value. The error names the part or header, never its value (a value
    may be a credential).
    """
    if not _TOKEN.fullmatch(method):
        raise ValueError("the method is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)")
    if not target or _URL_UNSAFE.search(target):
        raise ValueError("the request target contains a control character or a space")
    if not host or _URL_UNSAFE.search(host):
        raise ValueError("the host contains a control character or a space")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {_printable(name)} is not an HTTP token")
        if _VALUE_UNSAFE.search(value):
            raise ValueError(f"header {name} contains a line break, NUL or other control character")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n").encode()


# RFC 9110 section 5.6.2 (token) and 5.5 (field values: no CR, LF, NUL, nor other controls but
# HTAB; DEL is refused too). Each is one character class: linear, nothing to backtrack.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_VALUE_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _printable(name: str) -> str:
    """A header name for a message: control characters escaped, at most 40 characters."""
    return ascii(name[:40])


def refuse_unsafe_url(url: str) -> None:
    """Refuse an endpoint URL with a control character or a space before it is parsed: the
    URL parser would silently drop a tab, CR or LF, and keep a NUL for the resolver."""
    if _URL_UNSAFE.search(url):
        raise ValueError("the endpoint URL contains a control character or a space")
