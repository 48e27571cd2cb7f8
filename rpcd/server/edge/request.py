"""The one request skeleton every endpoint runs in: a request id, one access line, no HTML 500.

``skeleton(answer)`` is the route handler: it binds the request id (the caller's
``X-Request-ID`` when sane, else a new one) to ``logs.REQUEST_ID`` so every record below
carries it, awaits ``answer(request, scope)``, sets ``X-Request-ID`` on whatever comes back
(an ``HTTPException`` too), turns any other exception into a plain 500 naming the id, and
writes the access line (``logs.write_access``). The XML-RPC and JSON-RPC endpoints
(``Endpoint`` subclasses) and every other route (``guarded``) run in it; unknown paths and
methods reach a catch-all route, so a 404 or 405 is logged and carries ``X-Request-ID`` too.
There is no middleware: one frame of rpcd's around each request's work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import Token
from time import perf_counter

from aiohttp import web

from rpcd.errors import INTERNAL_ERROR, Fault
from rpcd.server.core.auth import NOT_BEARER, Authenticator, AuthRequired, Principal
from rpcd.server.core.dispatch import Dispatcher
from rpcd.server.core.loading import CatalogHolder, Loaded
from rpcd.server.edge.http import (
    auth_error,
    check_content_type,
    given_or_new_request_id,
    read_body,
)
from rpcd.server.edge.keys import PEER, RID
from rpcd.server.ops.logs import REQUEST_ID, write_access
from rpcd.server.ops.metrics import Metrics
from rpcd.settings import Settings

__all__ = ["Endpoint", "Scope", "add_fallback", "guarded", "skeleton", "unencodable"]

log = logging.getLogger("rpcd.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[web.Request, "Scope"], Awaitable[web.StreamResponse]]


class Scope:
    """One request's bookkeeping, for its access line: its id, who called, which method."""

    __slots__ = ("peer", "rid", "rpc_method", "started", "token")

    def __init__(self, rid: str, token: Token[str | None]) -> None:
        self.rid = rid
        self.token = token
        self.started = perf_counter()
        self.peer = "-"
        self.rpc_method = "-"


def skeleton(answer: Answer) -> Handler:
    """The route handler running ``answer`` with the request id, the access line and the
    500 fallback around it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        rid = given_or_new_request_id(request)
        scope = Scope(rid, REQUEST_ID.set(rid))
        status = 500
        try:
            response = await answer(request, scope)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = rid
            raise
        except Exception:
            response = _error_response(rid, request)
        finally:
            try:
                write_access(
                    (
                        time.time(),
                        request.method,
                        request.path,
                        status,
                        rid,
                        scope.peer,
                        scope.rpc_method,
                        perf_counter() - scope.started,
                    )
                )
            finally:
                REQUEST_ID.reset(scope.token)
        response.headers["X-Request-ID"] = rid
        return response

    handle.__name__ = getattr(answer, "__name__", "handle")
    handle.__doc__ = answer.__doc__
    return handle


def _error_response(rid: str, request: web.Request) -> web.Response:
    """The last line of defence: a plain 500 naming the request id, never an HTML page."""
    log.exception("unhandled error", extra={"request_id": rid, "path": request.path})
    return web.Response(status=500, text=f"internal error (request id {rid})\n")


def guarded(handler: Handler) -> Handler:
    """``handler`` in the skeleton; it names the caller for the access line with
    ``request[PEER]`` (``http.call_context`` does) and finds the id in ``request[RID]``."""

    async def answer(request: web.Request, scope: Scope) -> web.StreamResponse:
        request[RID] = scope.rid  # for http.call_context
        try:
            return await handler(request)
        finally:
            scope.peer = request.get(PEER, "-")

    answer.__name__ = getattr(handler, "__name__", "guard")
    answer.__doc__ = handler.__doc__
    return skeleton(answer)


def unencodable(rpc_method: str, rid: str) -> Fault:
    """-32603 for a result the codec cannot encode; the traceback being handled is logged."""
    log.exception("cannot encode the result of %s", rpc_method[:100], extra={"request_id": rid})
    return Fault(INTERNAL_ERROR, f"internal error (request id {rid})")


class Endpoint:
    """An RPC endpoint bound to one app's settings, catalog, auth, dispatcher and metrics
    (attributes, not ``app[...]`` lookups: this is the daemon's hot path). Subclasses say
    how a body becomes calls (``answer``); the way to the body and the caller is shared."""

    CONTENT_TYPES: frozenset[str] = frozenset()

    def __init__(
        self,
        settings: Settings,
        holder: CatalogHolder,
        authenticator: Authenticator,
        dispatcher: Dispatcher,
        metrics: Metrics | None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.authenticator = authenticator
        self.dispatcher = dispatcher
        self.metrics = metrics

    async def answer(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        raise NotImplementedError

    async def caller(
        self, request: web.Request, scope: Scope
    ) -> tuple[bytes, Loaded, Principal | None]:
        """The body (content type, size and time limits checked), the catalog taken once for
        the request, and the caller (None: anonymous; 401 / 429 raised for bad credentials).
        A bearer token is checked without a coroutine."""
        settings = self.settings
        check_content_type(request, self.CONTENT_TYPES, settings.max_body_bytes)
        data = await read_body(request, settings.max_body_bytes, settings.body_timeout)
        loaded = self.holder.current
        principal = Authenticator.bearer(request.headers.get("Authorization", ""), loaded.peers)
        if principal is NOT_BEARER:
            try:
                principal = await self.authenticator.authenticate(request, loaded.peers)
            except AuthRequired as exc:  # Throttled: 429
                raise auth_error(exc) from None
        elif principal is None:
            self.authenticator.failed("token")
        if principal is not None:
            scope.peer = principal.peer.id
        return data, loaded, principal

    def parse_error(self, protocol: str, code: int) -> None:
        """A body that is not a call: counted like a call's fault (method ``unknown``)."""
        if self.metrics is not None:
            self.metrics.observe_call(protocol, "unknown", 0.0, code)


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


_CATCH_ALL = "rpcd-unrouted"  # the catch-all resource's name


def add_fallback(app: web.Application) -> None:
    """Route every path and method no other route takes to the catch-all (add it last)."""
    app.router.add_resource("/{tail:.*}", name=_CATCH_ALL).add_route("*", guarded(_unrouted))
