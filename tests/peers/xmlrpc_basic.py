"""The standard library's SimpleXMLRPCServer, with HTTP Basic checked by the server."""

from __future__ import annotations

import base64
import threading
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer


def _fail(message: str) -> Any:
    raise xmlrpc.client.Fault(4, message)


@contextmanager
def basic_auth_server(username: str, password: str) -> Iterator[str]:
    """Yields the endpoint URL (``http://127.0.0.1:PORT/RPC2``)."""
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    class Handler(SimpleXMLRPCRequestHandler):
        rpc_paths = ("/RPC2",)

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            if self.headers.get("Authorization") == expected:
                return True
            self.send_response(401, "Unauthorized")
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = SimpleXMLRPCServer(("127.0.0.1", 0), Handler, logRequests=False, allow_none=True)
    server.register_function(lambda a, b: a + b, "add")
    server.register_function(lambda *args: list(args), "echo")
    server.register_function(_fail, "fail")
    server.register_introspection_functions()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/RPC2"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
