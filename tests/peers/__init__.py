"""Real test peers on 127.0.0.1 for the connection tests, each in its own thread.

``AiohttpPeer`` runs an aiohttp app on a free port in a background event loop, so tests (and
``rpcd call`` subprocesses) can reach it while the test itself runs ``asyncio.run``. Peers keep
no access log: a remote's log is not ours, and it would print the ``wstoken`` we send.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

#: What a peer records of each request it received (tests assert on the wire format).
REQUESTS = web.AppKey("requests", list[dict[str, Any]])


class AiohttpPeer:
    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app, self.ssl_context = app, ssl_context
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> AiohttpPeer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Iterator[AiohttpPeer]:
    peer = AiohttpPeer(app, ssl_context).start()
    try:
        yield peer
    finally:
        peer.stop()
