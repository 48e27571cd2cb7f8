"""The aiohttp application factory: routes, typed state and resources.

``create_app(settings, loaded)`` wires one ``Dispatcher`` behind both protocols. Resources
that open and close together live in ``cleanup_ctx``: the handler thread pool and the
outbound transport. Load and swap live in ``rpcd.server.core.loading``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from rpcd.connections.transport import Transport, TransportSettings
from rpcd.server.core.auth import Authenticator
from rpcd.server.core.dispatch import Dispatcher
from rpcd.server.core.loading import CatalogHolder, Loaded
from rpcd.server.core.outbound import ProxyCaller
from rpcd.server.core.sessions import SessionManager
from rpcd.server.core.throttle import PasswordThrottle
from rpcd.server.edge import api, jsonrpc, xmlrpc
from rpcd.server.edge.keys import (
    AUTHENTICATOR,
    DISPATCHER,
    HOLDER,
    METRICS,
    METRICS_TOKEN_DIGEST,
    RELOADER,
    SETTINGS,
    TRANSPORT,
)
from rpcd.server.edge.request import add_fallback, guarded, skeleton
from rpcd.server.ops.metrics import Metrics
from rpcd.server.ops.reload import Reloader
from rpcd.server.ops.sdnotify import Notifier
from rpcd.server.ui import mount as mount_console
from rpcd.settings import Settings

__all__ = ["create_app", "install_reload", "session_manager"]

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
    (``rpcd.server.edge.request``), every other route is ``guarded``, and a catch-all route answers
    unknown paths and methods, so each request runs one coroutine frame of rpcd's around
    its work instead of a middleware chain."""
    app_metrics = Metrics()
    app = web.Application(client_max_size=settings.max_body_bytes)
    authenticator = Authenticator(
        sessions or session_manager(settings),
        settings.auth_cache_ttl,
        PasswordThrottle.from_settings(settings),
    )
    authenticator.metrics = app_metrics  # failed and throttled authentications
    holder = CatalogHolder(loaded)
    app[SETTINGS] = settings
    app[HOLDER] = holder
    app[AUTHENTICATOR] = authenticator
    pool = ThreadPoolExecutor(settings.handler_threads, thread_name_prefix="rpcd-handler")
    dispatcher = Dispatcher(
        settings, authenticator, pool, ProxyCaller(None, app_metrics), app_metrics
    )
    app[DISPATCHER] = dispatcher
    app[TRANSPORT] = None
    app.cleanup_ctx.extend([_executor, _transport])
    # GET /metrics, per-app registry; the dispatcher and the proxy caller count on it.
    app[METRICS] = app_metrics
    token = settings.metrics_token_bytes()
    if token is not None:
        app[METRICS_TOKEN_DIGEST] = hashlib.sha256(token).digest()
    app_metrics.set_catalog(loaded.catalog.content_hash)
    app.router.add_get("/metrics", guarded(api.metrics))
    xml = skeleton(
        xmlrpc.XmlRpcEndpoint(settings, holder, authenticator, dispatcher, app_metrics).answer
    )
    for path in xmlrpc.PATHS:
        app.router.add_post(path, xml)
    json_rpc = jsonrpc.JsonRpcEndpoint(settings, holder, authenticator, dispatcher, app_metrics)
    app.router.add_post(jsonrpc.PATH, skeleton(json_rpc.answer))
    app.add_routes(api.routes())
    mount_console(app)  # /ui, the read-only operator console (unless settings.console is off)
    add_fallback(app)
    app.on_cleanup.append(_flush_logs)
    return app


def install_reload(
    app: web.Application, root: Path | str, *, notifier: Notifier | None = None
) -> Reloader:
    """A ``Reloader`` for ``app`` (its holder, settings and metrics) and ``POST /v1/reload``.
    Call before the app starts (its routes freeze then)."""
    reloader = Reloader(
        app[HOLDER], root, app.get(SETTINGS), metrics=app.get(METRICS), notifier=notifier
    )
    app[RELOADER] = reloader
    app.router.add_post("/v1/reload", guarded(api.reload))
    return reloader


async def _flush_logs(app: web.Application) -> None:
    """Write the access lines still pending (the loop will not run their flush)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
