"""Typed application state (``web.AppKey``), in one module so handlers and the factory share it."""

from __future__ import annotations

from aiohttp import web

from rpcd.connections.transport import Transport
from rpcd.server.core.auth import Authenticator
from rpcd.server.core.dispatch import Dispatcher
from rpcd.server.core.loading import CatalogHolder
from rpcd.settings import Settings

__all__ = ["AUTHENTICATOR", "DISPATCHER", "HOLDER", "PEER", "RID", "SETTINGS", "TRANSPORT"]

SETTINGS = web.AppKey("settings", Settings)
HOLDER = web.AppKey("holder", CatalogHolder)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
#: Per request: who called (a peer id, for the access line) and the request's id.
PEER = web.RequestKey("rpcd_peer", str)
RID = web.RequestKey("rpcd_request_id", str)
#: The pooled outbound client; None before startup and after cleanup.
TRANSPORT: web.AppKey[Transport | None] = web.AppKey("transport")
