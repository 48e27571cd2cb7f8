"""In-process daemons for the operations tests (metrics, reload): the real app on a real port.

``served(root)`` builds the app exactly as ``rpcd serve`` does (``create_app``) plus the
operations pieces (metrics, reload), serves it on 127.0.0.1 with aiohttp's ``TestServer``, and
yields an ``Ops`` handle with a client. Calls are real HTTP with real XML-RPC bodies.
"""

from __future__ import annotations

import contextlib
import xmlrpc.client
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from server_helpers import LOOPBACK_TOKEN, SESSION_KEY, Daemon, start_daemon

from rpcd.config import Report
from rpcd.server.core.loading import CatalogHolder, load
from rpcd.server.edge.app import create_app, install_reload
from rpcd.server.edge.keys import HOLDER, METRICS, RELOADER
from rpcd.server.ops.metrics import Metrics
from rpcd.server.ops.reload import Reloader
from rpcd.settings import Settings

AUTH = {"Authorization": f"Bearer {LOOPBACK_TOKEN}"}


@dataclass
class Ops:
    app: web.Application
    client: TestClient[web.Request, web.Application]

    @property
    def holder(self) -> CatalogHolder:
        return self.app[HOLDER]

    @property
    def metrics(self) -> Metrics:
        return self.app[METRICS]

    @property
    def reloader(self) -> Reloader:
        return self.app[RELOADER]

    async def xmlrpc(
        self,
        method: str,
        *params: Any,
        headers: Mapping[str, str] | None = None,
        path: str = "/RPC2",
    ) -> Any:
        """The result, or the ``xmlrpc.client.Fault`` (returned, not raised)."""
        body = xmlrpc.client.dumps(params, method, allow_none=True)
        response = await self.client.post(
            path,
            data=body.encode(),
            headers={"Content-Type": "text/xml", **(AUTH if headers is None else headers)},
        )
        text = await response.read()
        if response.status != 200:
            return response.status
        try:
            return xmlrpc.client.loads(text, use_builtin_types=True)[0][0]
        except xmlrpc.client.Fault as fault:
            return fault

    async def jsonrpc(
        self, method: str, params: list[Any], headers: Mapping[str, str] | None = None
    ) -> Any:
        response = await self.client.post(
            "/jsonrpc",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers=dict(AUTH if headers is None else headers),
        )
        return await response.json()

    async def get_json(self, path: str) -> tuple[int, Any]:
        response = await self.client.get(path, headers=AUTH)
        return response.status, await response.json()


def settings(**overrides: Any) -> Settings:
    return Settings(session_key=SESSION_KEY, strict_secrets=False, **overrides)


@contextlib.asynccontextmanager
async def served(root: Path, **overrides: Any) -> AsyncIterator[Ops]:
    s = settings(**overrides)
    loaded = load(root, strict_secrets=s.strict_secrets)
    assert not isinstance(loaded, Report), [f.as_text() for f in loaded]
    app = create_app(s, loaded)
    install_reload(app, root)
    server = TestServer(app, host="127.0.0.1")
    async with TestClient(server) as client:
        yield Ops(app, client)


def start_serve(
    root: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    prefix: list[str] | None = None,
    listen: str = "127.0.0.1:0",
) -> Daemon:
    """``rpcd serve`` exactly as ``server_helpers.start_daemon`` runs it."""
    return start_daemon(root, log, env, prefix=prefix, listen=listen)
