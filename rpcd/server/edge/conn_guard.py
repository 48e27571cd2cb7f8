"""Connections: a deadline for every request head, a send deadline, a cap on open connections.

aiohttp reads a request's line and headers without a deadline of its own (its keep-alive
timer, an hour by default, is the only bound), so a few hundred clients that send half a
request line and stall hold a descriptor each until the process cannot accept any more:
slowloris. This module puts rpcd's own bookkeeping between the listening socket and
aiohttp's protocol, the way nginx bounds its connections:

- ``header_timeout`` (nginx's ``client_header_timeout``): a connection must complete its
  request head within that many seconds of connecting, and a kept-alive connection within
  that many seconds of the first byte of its next request; otherwise it is closed. (Between
  requests an idle kept-alive connection waits for ``keepalive_timeout``, aiohttp's timer.)
- ``send_timeout`` (nginx's ``send_timeout``): a client that stops reading its response for
  that long, the socket's buffer full, is cut off.
- ``max_connections`` (nginx's ``worker_connections``): at the cap, a new connection makes
  room by closing the connection that has waited longest without a request in progress
  (idle between requests, or still sending its head) — nginx likewise reuses idle
  keep-alive connections when it runs out — and is closed at once only when every open
  connection is busy with a request. So idle and half-open sockets cannot starve real
  callers: each new caller displaces the stalest of them.

The body has its own deadline, ``body_timeout``, where it is read (``http.read_body``: 408).
A TLS handshake is bounded by ``header_timeout`` too (the listener's handshake timeout);
connections count against the cap once their handshake is done.

How it plugs in: ``GuardedSite`` listens like aiohttp's ``TCPSite`` but wraps each aiohttp
protocol in a ``_Conn``; ``ConnectionGuard.install`` wraps the server's request factory (a
request head is complete) and request handler (its response was written). Both are the low
level ``web.Server``'s public attributes.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from aiohttp import StreamReader, web
from aiohttp.web import RequestHandler

__all__ = ["RESERVED_FDS", "ConnectionGuard", "GuardedSite", "connection_cap"]

log = logging.getLogger("rpcd.server")

#: Descriptors kept for everything but inbound connections: files, the event loop's own,
#: the handler threads', journald, sd_notify (the outbound pool's are added to it).
RESERVED_FDS = 64
#: Seconds between two summary lines of closed connections in the log (the metric counts each).
NOTICE_INTERVAL = 60.0


class ConnectionCounter(Protocol):
    """What the guard counts on (``rpcd.server.ops.metrics.Metrics``)."""

    def connection_closed(self, reason: str) -> None: ...


def connection_cap(max_connections: int, reserve: int) -> tuple[int, str | None]:
    """The number of connections to allow: ``max_connections`` when the open-file limit
    (RLIMIT_NOFILE) leaves ``reserve`` descriptors beside them, raising the soft limit up to
    the hard one if needed (as Go's runtime does); else as many as fit, with a warning."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + reserve
    unlimited = resource.RLIM_INFINITY
    if soft != unlimited and soft < need:
        target = need if hard == unlimited else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == unlimited or soft >= need:
        return max_connections, None
    cap = max(1, soft - reserve, soft // 2)
    return cap, (
        f"max_connections {max_connections} lowered to {cap}: the open-file limit "
        f"(RLIMIT_NOFILE) is {soft} and {reserve} descriptors are kept for outbound calls and "
        f"files; raise LimitNOFILE (the unit sets it) or lower RPCD_MAX_CONNECTIONS"
    )


class _Conn(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, the guard's state around it.

    The head deadline is one float, ``head_deadline``, set when a head starts and cleared
    when it completes; a timer (at most one per connection) checks it when it comes due and
    follows it if it moved, as aiohttp's own keep-alive timer does. So a kept-alive request
    costs two attribute stores, not a timer of its own.
    """

    __slots__ = (
        "admitted",
        "busy",
        "closed",
        "guard",
        "head_deadline",
        "inner",
        "loop",
        "next_started",
        "payload",
        "send_timer",
        "seq",
        "task_seq",
        "timer",
        "transport",
    )

    def __init__(self, guard: ConnectionGuard, inner: RequestHandler) -> None:
        self.guard = guard
        self.inner = inner
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.head_deadline: float | None = None  # loop time by which the head must be in
        self.timer: asyncio.TimerHandle | None = None  # checks head_deadline when it is due
        self.send_timer: asyncio.TimerHandle | None = None
        self.payload: StreamReader | None = None  # the body of the request in progress
        self.busy = False  # a request's head is complete and its response not yet written
        self.next_started = False  # bytes came after that body: the next request's head
        self.admitted = False  # counted in, aiohttp's protocol told of the connection
        self.closed = False  # closed by the guard or by the peer: nothing more to track
        self.seq = 0  # requests whose head completed on this connection
        self.task_seq = 0  # the one whose handler runs now

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        if not self.guard.admit(self):
            tcp.abort()
            return
        self.admitted = True
        self.inner.connection_made(tcp)
        self.guard.idle(self)
        self.arm()

    def data_received(self, data: bytes) -> None:
        if self.busy:
            # Bytes after a body that was whole before them are the next request's head (the
            # client may start it as soon as it has the response, before the finished
            # request's task is done here).
            payload = self.payload
            if not self.next_started and payload is not None and payload.is_eof():
                self.next_started = True
        elif self.head_deadline is None and self.admitted and not self.closed:
            self.arm()  # the first byte of the next request on a kept-alive connection
        self.inner.data_received(data)

    def eof_received(self) -> None:
        if self.admitted:
            self.inner.eof_received()  # returns None: the transport closes itself

    def pause_writing(self) -> None:
        if self.admitted:
            if not self.closed:
                self.send_timer = self.guard.send_deadline(self)
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None
        if self.admitted:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        if self.admitted:
            self.admitted = False
            self.inner.connection_lost(exc)

    # -- the head deadline -------------------------------------------------------------------

    def arm(self) -> None:
        """A request head starts now: it must be complete within ``header_timeout``."""
        self.head_deadline = deadline = self.loop.time() + self.guard.header_timeout
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self.head_due)

    def head_due(self) -> None:
        self.timer = None
        deadline = self.head_deadline
        if deadline is None or self.closed:
            return  # the head completed in time (a later one arms a new timer)
        if self.loop.time() < deadline:
            self.timer = self.loop.call_at(deadline, self.head_due)  # a later head's
            return
        self.guard.close(self, "header_timeout")

    # -- one request -------------------------------------------------------------------------

    def request_started(self, payload: StreamReader) -> None:
        """The request's head is complete: the connection is busy until its response is out."""
        self.seq += 1
        self.busy = True
        self.head_deadline = None
        self.payload = payload
        self.next_started = False
        self.guard.busy(self)  # no longer a candidate to make room

    def handling(self, task: asyncio.Task[Any]) -> None:
        """``task`` runs the handler of the latest request and then writes its response."""
        self.task_seq = self.seq
        task.add_done_callback(self.request_done)

    def request_done(self, _task: object = None) -> None:
        # A pipelined request's head may have completed before this task's callback ran:
        # then the connection is busy with that one.
        if self.task_seq != self.seq or self.closed:
            return
        self.busy = False
        self.payload = None
        self.guard.idle(self)
        if self.next_started:
            self.arm()


class ConnectionGuard:
    """The daemon's connections: deadlines, the cap, and which connection to close for room."""

    def __init__(
        self,
        max_connections: int,
        header_timeout: float,
        send_timeout: float,
        metrics: ConnectionCounter | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.send_timeout = send_timeout
        self.metrics = metrics
        self.open = 0
        self._conns: dict[RequestHandler, _Conn] = {}  # aiohttp's protocol -> ours
        #: Connections without a request in progress, the longest waiting first.
        self._waiting: OrderedDict[_Conn, None] = OrderedDict()
        self._notices: dict[str, int] = {}
        self._notice_at = 0.0
        self._flush: asyncio.TimerHandle | None = None

    # -- wiring ------------------------------------------------------------------------------

    def install(self, server: web.Server) -> None:
        """Wrap ``server``'s request factory and request handler (before it serves)."""
        factory = server.request_factory
        handler = server.request_handler
        conns = self._conns
        current_task = asyncio.current_task

        def make_request(
            message: Any, payload: StreamReader, protocol: RequestHandler, writer: Any, task: Any
        ) -> web.BaseRequest:
            conn = conns.get(protocol)
            if conn is not None:
                conn.request_started(payload)  # the head is complete
            return factory(message, payload, protocol, writer, task)

        def handle(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
            # Called in the task that runs the handler and then writes the response: the
            # connection is idle again once that task is done. No coroutine frame of ours.
            conn = conns.get(request.protocol)
            task = current_task()
            if conn is not None and task is not None:
                conn.handling(task)
            return handler(request)

        server.request_factory = make_request
        server.request_handler = handle

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            return _Conn(self, server())

        return make

    # -- state changes -----------------------------------------------------------------------

    def admit(self, conn: _Conn) -> bool:
        """Count ``conn`` in; at the cap, close the longest-waiting idle connection for it,
        or refuse it (False) when every connection is busy."""
        if self.open >= self.max_connections:
            if not self._waiting:
                self._notice("refused")
                return False
            self.close(next(iter(self._waiting)), "evicted")
        self._conns[conn.inner] = conn
        self.open += 1
        return True

    def idle(self, conn: _Conn) -> None:
        """``conn`` waits for a request (or for the rest of one's head): the newest waiter."""
        self._waiting[conn] = None

    def busy(self, conn: _Conn) -> None:
        self._waiting.pop(conn, None)

    def send_deadline(self, conn: _Conn) -> asyncio.TimerHandle:
        return conn.loop.call_later(self.send_timeout, self.close, conn, "send_timeout")

    def forget(self, conn: _Conn) -> None:
        """``conn`` is closed: uncount it and drop its timers."""
        conn.closed = True
        conn.head_deadline = None
        conn.payload = None
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.send_timer is not None:
            conn.send_timer.cancel()
            conn.send_timer = None
        self._waiting.pop(conn, None)
        if self._conns.pop(conn.inner, None) is not None:  # admitted, not yet forgotten
            self.open -= 1

    # -- closing -----------------------------------------------------------------------------

    def close(self, conn: _Conn, reason: str) -> None:
        """Close ``conn`` now (its descriptor is free for the next caller) and count why."""
        self.forget(conn)
        if conn.transport is not None:
            conn.transport.abort()
        self._notice(reason)

    def _notice(self, reason: str) -> None:
        """Count a closed or refused connection; log a summary at most once a minute."""
        if self.metrics is not None:
            self.metrics.connection_closed(reason)
        self._notices[reason] = self._notices.get(reason, 0) + 1
        now = time.monotonic()
        if now >= self._notice_at:
            self._log_notices()
        elif self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(self._notice_at - now, self._log_notices)

    def _log_notices(self) -> None:
        self._flush = None
        if not self._notices:
            return
        parts = [f"{count} {_REASONS[reason]}" for reason, count in self._notices.items()]
        self._notices.clear()
        self._notice_at = time.monotonic() + NOTICE_INTERVAL
        log.warning(
            "connections: %s (max_connections %d, header_timeout %g s, send_timeout %g s)",
            "; ".join(parts),
            self.max_connections,
            self.header_timeout,
            self.send_timeout,
        )


_REASONS = {
    "header_timeout": "closed: request head not complete within header_timeout",
    "send_timeout": "closed: client stopped reading its response for send_timeout",
    "evicted": "closed to make room at max_connections (the longest idle or half-open)",
    "refused": "refused at max_connections, every connection busy "
    "(raise RPCD_MAX_CONNECTIONS and LimitNOFILE if these are real callers)",
}


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, with each connection under a ``ConnectionGuard``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._guard.install(server)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._guard.header_timeout if self._ssl_context else None,
        )
