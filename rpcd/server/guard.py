"""What every request gets, on every endpoint: a request id, one access line, no HTML 500.

There is no middleware: the RPC endpoints call ``begin``/``finish`` themselves around their
own work (one coroutine frame per request; ``xmlrpc_http``, the hottest path, does
``begin``'s work inline with locals instead of a ``Scope`` and ends with ``end``), and
every other route is wrapped in ``guarded``. Unknown paths and methods reach ``fallback``
(a catch-all route), so a 404 or 405 is logged and carries ``X-Request-ID`` like the rest.

Per request: the id (the caller's ``X-Request-ID`` when sane, else a new one) is bound to
``logging_setup.REQUEST_ID`` so every record below carries it; ``finish`` makes the access
line. With the daemon's logging (``logs.LineHandler`` on the root logger, set up by
``setup_logging``) only the line's values are queued on the handler, which formats (the
formatter's text), masks secrets in and writes a whole batch at once; with any other
logging configuration the line goes through ``logging`` as an ordinary record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import Token
from time import perf_counter

from aiohttp import web

from rpcd.server.http import new_request_id, safe_request_id
from rpcd.server.keys import PEER, RID
from rpcd.server.logging_setup import REQUEST_ID, owns_handler
from rpcd.server.logs import LineHandler, access_item_record

__all__ = ["Scope", "add_fallback", "begin", "end", "error_response", "finish", "guarded"]

log = logging.getLogger("rpcd.server")
access = logging.getLogger("rpcd.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scope:
    """One request's bookkeeping between ``begin`` and ``finish``."""

    __slots__ = ("peer", "rid", "rpc_method", "started", "token")

    def __init__(self, rid: str, token: Token[str | None]) -> None:
        self.rid = rid
        self.token = token
        self.started = perf_counter()
        self.peer = "-"
        self.rpc_method = "-"


def begin(request: web.Request) -> Scope:
    """Start a request: its id, bound for the logs (not stored on the request)."""
    given = request.headers.get("X-Request-ID")
    rid = given if given and safe_request_id(given) else new_request_id()
    return Scope(rid, REQUEST_ID.set(rid))


def finish(scope: Scope, request: web.Request, status: int) -> None:
    """The access line, and the request id unbound."""
    end(request, status, scope.rid, scope.peer, scope.rpc_method, scope.started, scope.token)


def end(
    request: web.Request,
    status: int,
    rid: str,
    peer: str,
    rpc_method: str,
    started: float,
    token: Token[str | None],
) -> None:
    """``finish`` from plain values: the XML-RPC endpoint keeps its request's bookkeeping in
    locals (no ``Scope`` to build per request) and calls this in its ``finally``."""
    try:
        if access.isEnabledFor(logging.INFO):
            seconds = perf_counter() - started
            handlers = logging.root.handlers
            checked = _checked
            if (  # the handler checked last time, unchanged: skip the checks
                checked is not None
                and len(handlers) == 1
                and handlers[0] is checked[0]
                and checked[0].formatter is checked[1]
                and len(checked[0].filters) == 2
                and not access.handlers
                and access.propagate
            ):
                handler: LineHandler | None = checked[0]
            else:
                handler = _daemon_handler()
            item = (
                time.time(),
                request.method,
                request.path,
                status,
                rid,
                peer,
                rpc_method,
                seconds,
            )
            if handler is None:
                access.handle(access_item_record(item))
            else:
                handler.add_access(item)  # formatted, masked and written in batches
    finally:
        REQUEST_ID.reset(token)


_checked: tuple[LineHandler, logging.Formatter | None] | None = None  # handler, its formatter


def _daemon_handler() -> LineHandler | None:
    """The root's one ``LineHandler`` when an access record would reach only it (and only
    through the filters ``setup_logging`` gave it): then the line can skip ``logging``."""
    global _checked
    _checked = None
    if access.handlers or access.filters or not access.propagate:
        return None
    root = access.parent
    if root is not logging.root or root.filters:
        return None
    handlers = root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not LineHandler or handler.level > logging.INFO:
        return None
    if handler.mask is None or not owns_handler(handler):
        return None
    _checked = (handler, handler.formatter)
    return handler


def error_response(scope: Scope | str, request: web.Request) -> web.Response:
    """The last line of defence: a plain 500 naming the request id, never an HTML page.
    ``scope`` is the request's ``Scope`` or just its id."""
    rid = scope if isinstance(scope, str) else scope.rid
    log.exception("unhandled error", extra={"request_id": rid, "path": request.path})
    return web.Response(
        status=500,
        text=f"internal error (request id {rid})\n",
        headers={"X-Request-ID": rid},
    )


def guarded(handler: Handler) -> Handler:
    """``handler`` with the request id, the access line and the 500 fallback around it; the
    handler names the caller for the log with ``request[PEER]`` (``http.call_context`` does)."""

    async def guard(request: web.Request) -> web.StreamResponse:
        scope = begin(request)
        request[RID] = scope.rid  # for http.call_context
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = scope.rid
            raise
        except Exception:
            response = error_response(scope, request)
        finally:
            scope.peer = request.get(PEER, "-")
            finish(scope, request, status)
        response.headers["X-Request-ID"] = scope.rid
        return response

    guard.__name__ = getattr(handler, "__name__", "guard")
    guard.__doc__ = handler.__doc__
    return guard


async def _unrouted(request: web.Request) -> web.StreamResponse:
    """404 for an unknown path; 405 (with ``Allow``) for a known path and another method."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name == _CATCH_ALL:
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed, text="method not allowed\n")
    raise web.HTTPNotFound(text="not found\n")


fallback = guarded(_unrouted)

_CATCH_ALL = "rpcd-unrouted"  # the catch-all resource's name


def add_fallback(app: web.Application) -> None:
    """Route every path and method no other route takes to ``fallback`` (add it last)."""
    app.router.add_resource("/{tail:.*}", name=_CATCH_ALL).add_route("*", fallback)
