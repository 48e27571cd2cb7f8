"""What both RPC endpoints hold: the app's objects as plain attributes.

The request handlers are the daemon's hot path; reading ``app[...]`` keys on every request
costs more than attribute access, so each endpoint is built once per app with these.
"""

from __future__ import annotations

from rpcd.server.auth import Authenticator
from rpcd.server.dispatch import Dispatcher
from rpcd.server.loading import CatalogHolder
from rpcd.server.metrics import Metrics
from rpcd.settings import Settings

__all__ = ["Endpoint"]


class Endpoint:
    """A request handler bound to one app's settings, catalog, auth and dispatcher."""

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
