"""Typed application state (``web.AppKey``), in one module so handlers and the factory share it."""

from __future__ import annotations

from aiohttp import web

from rpcd.connections.transport import Transport
from rpcd.server.core.auth import Authenticator
from rpcd.server.core.dispatch import Dispatcher
from rpcd.server.core.loading import CatalogHolder
from rpcd.server.ops.metrics import Metrics
from rpcd.server.ops.reload import Reloader
from rpcd.settings import Settings

__all__ = [
    "AUTHENTICATOR",
    "DISPATCHER",
    "HOLDER",
    "METRICS",
    "METRICS_TOKEN_DIGEST",
    "PEER",
    "RELOADER",
    "RID",
    "SETTINGS",
    "TRANSPORT",
]

SETTINGS = web.AppKey("settings", Settings)
HOLDER = web.AppKey("holder", CatalogHolder)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
METRICS = web.AppKey("metrics", Metrics)
#: sha256 of the token ``GET /metrics`` asks for; absent when the endpoint is open.
METRICS_TOKEN_DIGEST = web.AppKey("metrics_token_digest", bytes)
#: Present when the app reloads its tree (``edge.app.install_reload``).
RELOADER = web.AppKey("reloader", Reloader)
#: Per request: who called (a peer id, for the access line) and the request's id.
PEER = web.RequestKey("rpcd_peer", str)
RID = web.RequestKey("rpcd_request_id", str)
#: The pooled outbound client; None before startup and after cleanup.
TRANSPORT: web.AppKey[Transport | None] = web.AppKey("transport")
