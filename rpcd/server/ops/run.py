"""Run the daemon until SIGTERM/SIGINT, then shut down in order.

Shutdown (aiohttp's ``BaseRunner.cleanup``): stop listening, let in-flight requests finish
within ``shutdown_timeout``, close idle keep-alive connections, then run the app's cleanup
(thread pool, outbound transport). The process then exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from rpcd.server.core.loading import Loaded
from rpcd.server.edge.app import create_app, install_reload
from rpcd.server.edge.conn_guard import RESERVED_FDS, ConnectionGuard, GuardedSite, connection_cap
from rpcd.server.edge.keys import HOLDER, METRICS, SETTINGS
from rpcd.server.ops import reload
from rpcd.server.ops.loops import loop_name
from rpcd.server.ops.sdnotify import Notifier
from rpcd.settings import Settings

__all__ = ["guard", "serve", "tls_context"]

log = logging.getLogger("rpcd.server")


def guard(app: web.Application) -> ConnectionGuard:
    """The connection guard of ``app``'s listener: its limits from the settings, the cap
    fitted to the open-file limit, its counts in the app's metrics."""
    settings = app[SETTINGS]
    reserve = RESERVED_FDS + settings.outbound_pool_limit
    cap, warning = connection_cap(settings.max_connections, reserve)
    if warning is not None:
        log.warning("%s", warning)
    app_metrics = app[METRICS]
    connections = ConnectionGuard(
        cap, settings.header_timeout, settings.send_timeout, metrics=app_metrics
    )
    app_metrics.watch_connections(lambda: connections.open)
    return connections


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Server TLS when ``tls_cert``/``tls_key`` are set; client certificates checked against
    ``tls_client_ca`` and optional, so token and session callers need none."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca is not None:
        ctx.load_verify_locations(cafile=str(settings.tls_client_ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def serve(
    settings: Settings,
    loaded: Loaded,
    *,
    announce: Callable[[str], None] | None = None,
    root: Path | None = None,
) -> int:
    """Serve ``loaded`` until a stop signal; ``announce`` gets the URL once listening.

    With ``root``, SIGHUP and ``POST /v1/reload`` reload the tree there. systemd is told
    READY=1 / RELOADING=1 / STOPPING=1 and pinged (WATCHDOG=1) when it asks for that.
    """
    reload.freeze()  # the catalog out of the collector's sight
    app = create_app(settings, loaded)
    notifier = Notifier()
    reloader = install_reload(app, root, notifier=notifier) if root is not None else None
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        keepalive_timeout=settings.keepalive_timeout,
    )
    await runner.setup()
    tls = tls_context(settings)
    site = GuardedSite(runner, settings.host, settings.port, guard(app), ssl_context=tls)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        sys.stderr.write(f"rpcd serve: cannot listen on {settings.listen}: {exc.strerror or exc}\n")
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reloader is not None:
        reload.install_sighup(reloader, loop)
    host, port = runner.addresses[0][:2]
    url = f"{'https' if tls else 'http'}://{host}:{port}"
    log.info(
        "listening on %s (catalog %s, event loop %s)",
        url,
        loaded.catalog.content_hash[:12],
        loop_name(),
    )
    if announce is not None:
        announce(url)
    notifier.ready(reload.status_line(app[HOLDER].current, None))
    notifier.start_watchdog()
    await stop.wait()
    notifier.stopping()
    await notifier.stop_watchdog()
    log.info("stopping: finishing in-flight requests (at most %g s)", settings.shutdown_timeout)
    await runner.cleanup()
    log.info("stopped")
    return 0
