"""The aiohttp application factory: routes, middleware, typed state and resources.

``create_app(settings, loaded)`` wires one ``Dispatcher`` behind both protocols. Resources
that open and close together live in ``cleanup_ctx``: the handler thread pool and the
outbound transport. Load and swap live in ``rpcd.server.loading`` (re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Middleware

from rpcd.connections.transport import Transport
from rpcd.server import api, jsonrpc_http, metrics, xmlrpc_http
from rpcd.server.auth import Authenticator
from rpcd.server.dispatch import Dispatcher
from rpcd.server.http import request_id
from rpcd.server.keys import AUTHENTICATOR, DISPATCHER, HOLDER, SETTINGS, TRANSPORT
from rpcd.server.loading import CatalogHolder, Loaded, load
from rpcd.server.logging_setup import REQUEST_ID
from rpcd.server.logs import access_record
from rpcd.server.metrics import CURRENT_METRICS, CURRENT_PROTOCOL, protocol_for
from rpcd.server.outbound import ProxyCaller
from rpcd.server.sessions import SessionManager
from rpcd.settings import Settings

__all__ = [
    "CatalogHolder",
    "Loaded",
    "create_app",
    "guard_middleware",
    "load",
    "session_manager",
]

log = logging.getLogger("rpcd.server")
access = logging.getLogger("rpcd.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard_middleware(metrics_: metrics.Metrics | None = None) -> Middleware:
    """The daemon's one middleware (one coroutine frame per request instead of three).

    Per request: the request id (the caller's ``X-Request-ID`` when sane, else a new one) bound
    to ``logging_setup.REQUEST_ID`` so every record below carries it, the app's metrics and the
    request's protocol bound for the dispatcher wrapper and ``metrics.record_outbound`` (what
    ``request_id_middleware`` and ``metrics.metrics_middleware`` do, which stay for other
    apps), one access log line, the ``X-Request-ID`` response header, and the last line of
    defence: never an HTML 500.
    """
    bind_metrics = CURRENT_METRICS.set
    bind_protocol = CURRENT_PROTOCOL.set
    bind_request_id = REQUEST_ID.set

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id(request)
        started = perf_counter()
        rid_token = bind_request_id(rid)
        metrics_token = bind_metrics(metrics_)
        protocol_token = bind_protocol(protocol_for(request.path))
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = rid
            raise
        except Exception:
            log.exception("unhandled error", extra={"request_id": rid, "path": request.path})
            response = web.Response(status=500, text=f"internal error (request id {rid})\n")
        finally:
            if access.isEnabledFor(logging.INFO):
                access.handle(
                    access_record(
                        "rpcd.access",
                        "%s %s %s",
                        (request.method, request.path, status),
                        {
                            "request_id": rid,
                            "peer": request.get("rpcd.peer", "-"),
                            "rpc_method": request.get("rpcd.method", "-"),
                            "status": status,
                            "duration_ms": round((perf_counter() - started) * 1000, 2),
                        },
                    )
                )
            CURRENT_PROTOCOL.reset(protocol_token)
            CURRENT_METRICS.reset(metrics_token)
            REQUEST_ID.reset(rid_token)
        response.headers["X-Request-ID"] = rid
        return response

    return guard


def session_manager(settings: Settings) -> SessionManager:
    """Sessions signed with the configured key, or a random per-process key (with a warning)."""
    key = settings.session_key_bytes()
    if key is None:
        log.warning(
            "no session_key configured: using a random per-process key; sessions end with this "
            "process and no other replica accepts them (set RPCD_SESSION_KEY_FILE)"
        )
        key = SessionManager.random_key()
    return SessionManager(key, settings.session_ttl)


async def _executor(app: web.Application) -> AsyncIterator[None]:
    """Sync handlers' thread pool: shut down with the app (a hung handler is not waited for)."""
    yield
    app[DISPATCHER].executor.shutdown(wait=False, cancel_futures=True)


async def _transport(app: web.Application) -> AsyncIterator[None]:
    """The one pooled outbound HTTP client of the process (proxy methods, /v1/call)."""
    async with Transport.open() as transport:
        app[TRANSPORT] = transport
        proxy = app[DISPATCHER].proxy_call
        if isinstance(proxy, ProxyCaller):
            proxy.transport = transport
        yield
        # The app's state is frozen once it has started: unhook only the proxy caller.
        if isinstance(proxy, ProxyCaller):
            proxy.transport = None


def create_app(
    settings: Settings, loaded: Loaded, sessions: SessionManager | None = None
) -> web.Application:
    app_metrics = metrics.Metrics()
    app = web.Application(
        middlewares=[guard_middleware(app_metrics)], client_max_size=settings.max_body_bytes
    )
    authenticator = Authenticator(sessions or session_manager(settings), settings.auth_cache_ttl)
    app[SETTINGS] = settings
    app[HOLDER] = CatalogHolder(loaded)
    app[AUTHENTICATOR] = authenticator
    pool = ThreadPoolExecutor(settings.handler_threads, thread_name_prefix="rpcd-handler")
    app[DISPATCHER] = Dispatcher(settings, authenticator, pool, ProxyCaller(None))
    app[TRANSPORT] = None
    app.cleanup_ctx.extend([_executor, _transport])
    for path in xmlrpc_http.PATHS:
        app.router.add_post(path, xmlrpc_http.handle)
    app.router.add_post(jsonrpc_http.PATH, jsonrpc_http.handle)
    app.add_routes(api.routes())
    # GET /metrics, per-app registry, dispatcher counted; guard binds the metrics context.
    metrics.install(app, app_metrics, middleware=False)
    return app
