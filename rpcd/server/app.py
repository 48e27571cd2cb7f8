"""The aiohttp application factory: routes, typed state and resources.

``create_app(settings, loaded)`` wires one ``Dispatcher`` behind both protocols. Resources
that open and close together live in ``cleanup_ctx``: the handler thread pool and the
outbound transport. Load and swap live in ``rpcd.server.loading`` (re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from rpcd.connections.transport import Transport, TransportSettings
from rpcd.server import api, guard, jsonrpc_http, metrics, xmlrpc_http
from rpcd.server.auth import Authenticator
from rpcd.server.dispatch import Dispatcher
from rpcd.server.keys import AUTHENTICATOR, DISPATCHER, HOLDER, SETTINGS, TRANSPORT
from rpcd.server.loading import CatalogHolder, Loaded, load
from rpcd.server.outbound import ProxyCaller
from rpcd.server.sessions import SessionManager
from rpcd.server.throttle import PasswordThrottle
from rpcd.settings import Settings

__all__ = [
    "CatalogHolder",
    "Loaded",
    "create_app",
    "load",
    "session_manager",
]

log = logging.getLogger("rpcd.server")


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
    async with Transport.open(TransportSettings.from_settings(app[SETTINGS])) as transport:
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
    """The daemon's app. No middleware: the RPC endpoints do their own bookkeeping
    (``rpcd.server.guard``), every other route is ``guarded``, and a catch-all route answers
    unknown paths and methods, so each request runs one coroutine frame of rpcd's around
    its work instead of a middleware chain."""
    app_metrics = metrics.Metrics()
    app = web.Application(client_max_size=settings.max_body_bytes)
    authenticator = Authenticator(
        sessions or session_manager(settings),
        settings.auth_cache_ttl,
        PasswordThrottle.from_settings(settings),
    )
    holder = CatalogHolder(loaded)
    app[SETTINGS] = settings
    app[HOLDER] = holder
    app[AUTHENTICATOR] = authenticator
    pool = ThreadPoolExecutor(settings.handler_threads, thread_name_prefix="rpcd-handler")
    dispatcher = Dispatcher(settings, authenticator, pool, ProxyCaller(None))
    app[DISPATCHER] = dispatcher
    app[TRANSPORT] = None
    app.cleanup_ctx.extend([_executor, _transport])
    # GET /metrics, per-app registry; the dispatcher and the proxy caller count on it.
    metrics.install(app, app_metrics, middleware=False, token=settings.metrics_token_bytes())
    xml = xmlrpc_http.XmlRpcEndpoint(settings, holder, authenticator, dispatcher, app_metrics)
    for path in xmlrpc_http.PATHS:
        app.router.add_post(path, xml.handle)
    json_rpc = jsonrpc_http.JsonRpcEndpoint(
        settings, holder, authenticator, dispatcher, app_metrics
    )
    app.router.add_post(jsonrpc_http.PATH, json_rpc.handle)
    app.add_routes(api.routes())
    guard.add_fallback(app)
    app.on_cleanup.append(_flush_logs)
    return app


async def _flush_logs(app: web.Application) -> None:
    """Write the access lines still pending (the loop will not run their flush)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
