"""An XML-RPC endpoint over TLS that requires a client certificate from a trustme CA."""

from __future__ import annotations

import ssl
from typing import Any

import trustme
from aiohttp import web

from rpcd.codecs.xmlrpc import dumps_response, loads_call


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def cert_app() -> web.Application:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        method, params = loads_call(await request.read())
        peercert: Any = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in peercert["subject"]) if peercert else {}
        value = {"method": method, "params": params, "client": subject.get("commonName", "")}
        return web.Response(body=dumps_response(value), content_type="text/xml")

    app.router.add_post("/RPC2", handler)
    return app
