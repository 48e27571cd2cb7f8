"""The aiohttp application factory: routes, middleware, typed state and resources.

``create_app(settings, loaded)`` wires one ``Dispatcher`` behind both protocols. Resources
that open and close together live in ``cleanup_ctx``: the handler thread pool and the
outbound transport. Load and swap live in ``rpcd.server.loading`` (re-exported here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from rpcd.connections.transport import Transport
from rpcd.server import api, jsonrpc_http, metrics, xmlrpc_http
from rpcd.server.auth import Authenticator
from rpcd.server.dispatch import Dispatcher
from rpcd.server.http import request_id
from rpcd.server.keys import AUTHENTICATOR, DISPATCHER, HOLDER, SETTINGS, TRANSPORT
from rpcd.server.loading import CatalogHolder, Loaded, load
from rpcd.server.logging_setup import request_id_middleware
from rpcd.server.outbound import ProxyCaller
from rpcd.server.sessions import SessionManager
from rpcd.settings import Settings

__all__ = ["CatalogHolder", "Loaded", "create_app", "load", "session_manager"]

log = logging.getLogger("rpcd.server")
access = logging.getLogger("rpcd.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, access log, and the last line of defence: never an HTML 500."""
    rid = request_id(request)
    started = time.perf_counter()
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
        access.info(
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "request_id": rid,
                "peer": request.get("rpcd.peer", "-"),
                "rpc_method": request.get("rpcd.method", "-"),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
    response.headers["X-Request-ID"] = rid
    return response


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
        app[TRANSPORT] = None


def create_app(
    settings: Settings, loaded: Loaded, sessions: SessionManager | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[guard, request_id_middleware], client_max_size=settings.max_body_bytes
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
    metrics.install(app)  # GET /metrics, per-app registry, dispatcher counted
    return app
