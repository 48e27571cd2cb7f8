"""The alternatives rpcd is measured against, each a tiny server on ``127.0.0.1:PORT``.

Run: ``python bench/serve_alternatives/servers.py KIND PORT [LOOP]`` (``bench/serve.py`` does it,
pinned to CPU 0). LOOP is the event loop of the aiohttp-based kinds, ``asyncio`` (default) or
``uvloop``, so they can run on the same loop as rpcd. KIND is one of:

stdlib-single
    ``xmlrpc.server.SimpleXMLRPCServer`` as shipped: one thread, HTTP/1.0 (a connection per
    call). Its listen backlog is raised from 5 to 128 so that 32 connecting clients measure the
    server and not SYN retransmits.
stdlib-threaded
    The same with ``socketserver.ThreadingMixIn`` and ``protocol_version = "HTTP/1.1"``
    (keep-alive): a thread per connection.
aiohttp-xmlrpc
    ``aiohttp_xmlrpc.handler.XMLRPCView`` (version 1.5.0, lxml based), the methods registered
    under their dotted names.
floor
    A bare aiohttp handler around ``xmlrpc.client.loads``/``dumps`` with defusedxml's parser
    (``defusedxml.xmlrpc.monkey_patch()``), handlers called inline: the least any safe
    aiohttp XML-RPC server has to do.
ceiling
    A bare aiohttp handler that reads the body and returns the payload's pre-built response
    (picked by body length): HTTP and the event loop alone.

The stdlib servers use the stdlib's plain expat parser (no defusedxml), as they ship.
"""

from __future__ import annotations

import socketserver
import sys
import xmlrpc.client as xc
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

from bench.serve_alternatives.payloads import METHODS, PAYLOADS  # noqa: E402
from examples import hello  # noqa: E402

FUNCTIONS: dict[str, Any] = {name: getattr(hello, attr) for name, attr in METHODS.items()}


class _Single(SimpleXMLRPCServer):
    request_queue_size = 128


class _KeepAliveHandler(SimpleXMLRPCRequestHandler):
    protocol_version = "HTTP/1.1"


class _Threaded(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    request_queue_size = 128
    daemon_threads = True


LOOP = "asyncio"  # set by main()


def _run_app(app: Any, port: int) -> None:
    """``web.run_app`` on the chosen event loop."""
    import asyncio

    from aiohttp import web

    if LOOP == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=loop)


def _stdlib(port: int, *, threaded: bool) -> None:
    cls = _Threaded if threaded else _Single
    handler = _KeepAliveHandler if threaded else SimpleXMLRPCRequestHandler
    server = cls(
        ("127.0.0.1", port),
        requestHandler=handler,
        logRequests=False,
        allow_none=True,
        use_builtin_types=True,
    )
    for name, fn in FUNCTIONS.items():
        server.register_function(fn, name)
    server.serve_forever()


def _aiohttp_xmlrpc(port: int) -> None:
    from aiohttp import web
    from aiohttp_xmlrpc.handler import XMLRPCView, rename

    class Hello(XMLRPCView):
        @rename("hello.add")
        def rpc_add(self, a: int, b: int) -> int:
            return int(FUNCTIONS["hello.add"](a, b))

        @rename("hello.echo")
        def rpc_echo(self, value: Any) -> Any:
            return FUNCTIONS["hello.echo"](value)

        @rename("hello.sum")
        def rpc_sum(self, numbers: list[float]) -> float:
            return float(FUNCTIONS["hello.sum"](numbers))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/RPC2", Hello)
    _run_app(app, port)


def _floor(port: int) -> None:
    import defusedxml.xmlrpc
    from aiohttp import web

    defusedxml.xmlrpc.monkey_patch()

    async def rpc(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            params, method = xc.loads(body, use_builtin_types=True)
            result = FUNCTIONS[method](*params)
            out = xc.dumps((result,), methodresponse=True, allow_none=True)
        except KeyError:
            out = xc.dumps(xc.Fault(-32601, "method not found"), methodresponse=True)
        except Exception:
            out = xc.dumps(xc.Fault(-32603, "internal error"), methodresponse=True)
        return web.Response(body=out.encode("utf-8"), content_type="text/xml")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/RPC2", rpc)
    _run_app(app, port)


def _ceiling(port: int) -> None:
    from aiohttp import web

    responses = {len(p.body): p.response for p in PAYLOADS}
    fallback = PAYLOADS[0].response

    async def rpc(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=responses.get(len(body), fallback), content_type="text/xml")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/RPC2", rpc)
    _run_app(app, port)


def main(argv: list[str]) -> int:
    global LOOP
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] not in ("asyncio", "uvloop")):
        sys.stderr.write(__doc__ or "")
        return 2
    kind, port = argv[0], int(argv[1])
    LOOP = argv[2] if len(argv) == 3 else "asyncio"
    if kind == "stdlib-single":
        _stdlib(port, threaded=False)
    elif kind == "stdlib-threaded":
        _stdlib(port, threaded=True)
    elif kind == "aiohttp-xmlrpc":
        _aiohttp_xmlrpc(port)
    elif kind == "floor":
        _floor(port)
    elif kind == "ceiling":
        _ceiling(port)
    else:
        sys.stderr.write(f"unknown server kind {kind!r}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
