"""Remotes that quote the request they received back in their errors (and results).

Real servers do this: Moodle's exceptions repeat parameters, PHP and Python tracebacks print
the request, proxies put headers in their error pages. Every peer here echoes what rpcd sent
(the token in the query, the form, a header, the Basic blob, a WS-Security password) in the
forms a server writes them: as received, percent-encoded as on the wire, JSON-escaped the PHP
way, XML-escaped, in a reason phrase.

- ``echo_xmlrpc_server()``: the standard library's SimpleXMLRPCServer. ``whoami`` faults with
  the request line and ``Authorization`` header it got; ``request`` returns them as a result;
  a POST to ``/reason/...`` is answered 500 with them in the reason phrase and the body.
- ``echo_app()``: an aiohttp app. ``/moodle`` is Moodle-shaped (``wsfunction`` and
  ``wstoken`` in the query or form, ``moodlewsrestformat`` json or xml): ``bad`` answers a
  ``moodle_exception`` quoting the raw form body and the token, ``http500`` a 500 whose
  reason and HTML body quote the token, ``echo`` returns every parameter it got. ``/soap``
  answers a SOAP Fault quoting the UsernameToken's username and password.
"""

from __future__ import annotations

import json
import threading
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from defusedxml.ElementTree import fromstring

from rpcd.codecs.soap import SOAP_ENV_NS, WSSE_NS


@contextmanager
def echo_xmlrpc_server() -> Iterator[str]:
    """Yields ``http://127.0.0.1:PORT``; endpoints are ``/RPC2`` and ``/reason/RPC2``."""
    from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

    seen = threading.local()

    class Handler(SimpleXMLRPCRequestHandler):
        rpc_paths = ()  # any path

        def do_POST(self) -> None:
            seen.request = f"POST {self.path} Authorization: {self.headers.get('Authorization')}"
            if self.path.startswith("/reason/"):
                body = f"<html>refused: {seen.request}</html>".encode()
                self.send_response(500, f"Refused {seen.request}")
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_POST()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    def whoami() -> Any:
        raise xmlrpc.client.Fault(3, f"access denied for {seen.request}")

    def request() -> dict[str, str]:
        return {"you sent": seen.request}

    server = SimpleXMLRPCServer(("127.0.0.1", 0), Handler, logRequests=False, allow_none=True)
    server.register_function(whoami, "whoami")
    server.register_function(request, "request")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _php_json(value: Any) -> str:
    """``json_encode`` as PHP writes it: slashes escaped."""
    return json.dumps(value).replace("/", "\\/")


def _soap_fault(message: str, detail: str) -> web.Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV_NS}">'
        f"<soap:Body><soap:Fault><faultcode>wsse:FailedAuthentication</faultcode>"
        f"<faultstring>{escape(message)}</faultstring><detail><request>{escape(detail)}"
        "</request></detail></soap:Fault></soap:Body></soap:Envelope>"
    )
    return web.Response(status=500, text=body, content_type="text/xml")


def echo_app() -> web.Application:
    async def moodle(request: web.Request) -> web.Response:
        raw = (await request.read()).decode()
        params = {**request.query, **(await request.post())}
        token = str(params.get("wstoken"))
        function = params.get("wsfunction")
        if function == "echo":
            return web.json_response({k: str(v) for k, v in params.items()})
        if function == "http500":
            return web.Response(
                status=500,
                reason=f"Token {token} rejected",
                text=f"<html><body>token {escape(token)} in {escape(raw)}</body></html>",
                content_type="text/html",
            )
        message = f"Invalid token - token not found (request: {raw}) wstoken={token}"
        if params.get("moodlewsrestformat") == "xml":
            xml = (
                '<?xml version="1.0" encoding="UTF-8" ?>\n<EXCEPTION class="moodle_exception">'
                f"<ERRORCODE>invalidtoken</ERRORCODE><MESSAGE>{escape(message)}</MESSAGE>"
                "</EXCEPTION>"
            )
            return web.Response(text=xml, content_type="application/xml")
        error = {"exception": "moodle_exception", "errorcode": "invalidtoken", "message": message}
        return web.Response(text=_php_json(error), content_type="application/json")

    async def soap(request: web.Request) -> web.Response:
        raw = await request.read()
        root = fromstring(raw)
        token = root.find(f".//{{{WSSE_NS}}}UsernameToken")
        user = token.findtext(f"{{{WSSE_NS}}}Username") if token is not None else None
        password = token.findtext(f"{{{WSSE_NS}}}Password") if token is not None else None
        return _soap_fault(
            f"The security token could not be authenticated: {user} / {password}",
            raw.decode(),
        )

    app = web.Application()
    app.router.add_route("*", "/moodle", moodle)
    app.router.add_post("/soap", soap)
    return app
