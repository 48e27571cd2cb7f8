"""A spyne SOAP 1.1 service (WSGI, served by wsgiref in a thread): interop with a real stack."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from spyne import Application, Fault, Integer, Iterable, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

TNS = "urn:test:spyne"


class Hello(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, Integer, _returns=Iterable(Unicode))  # type: ignore[misc]
    def say_hello(ctx: Any, name: str, times: int) -> Any:
        for _ in range(times):
            yield f"Hello, {name}"

    @rpc(Unicode, _returns=Unicode)  # type: ignore[misc]
    def fail(ctx: Any, why: str) -> str:
        raise Fault("Client.Test", why)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def spyne_server() -> Iterator[str]:
    app = Application([Hello], TNS, in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
    server = make_server("127.0.0.1", 0, WsgiApplication(app), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
