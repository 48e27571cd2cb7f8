"""XML-RPC over HTTP: ``POST /RPC2`` (also ``/xmlrpc`` and ``/xmlrpc.php``).

One call per request: the body and the caller (``Endpoint.caller``), parse, dispatch (which
counts the call), encode; a fault is an XML-RPC fault response with HTTP 200, a caller
without valid credentials HTTP 401 (429 when throttled).
"""

from __future__ import annotations

from aiohttp import web

from rpcd.codecs import xmlrpc
from rpcd.errors import CodecError, Fault, LimitExceeded
from rpcd.server.core.auth import AuthRequired
from rpcd.server.core.calls import CallState
from rpcd.server.edge.cookies import set_session_cookies
from rpcd.server.edge.http import auth_error
from rpcd.server.edge.request import Endpoint, Scope, unencodable

__all__ = ["PATHS", "XmlRpcEndpoint"]

PATHS = ("/RPC2", "/xmlrpc", "/xmlrpc.php")
CONTENT_TYPE = "text/xml; charset=utf-8"


def _fault_body(fault: Fault | CodecError) -> bytes:
    message = fault.message if isinstance(fault, Fault) else str(fault)
    return xmlrpc.dumps_fault(fault.code, message)


class XmlRpcEndpoint(Endpoint):
    """The XML-RPC request handler (one per app)."""

    CONTENT_TYPES = frozenset({"text/xml", "application/xml"})

    async def answer(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        data, loaded, principal = await self.caller(request, scope)
        settings = self.settings
        try:
            method, params = xmlrpc.loads_call(
                data, max_depth=settings.max_xml_depth, max_number_chars=settings.max_number_chars
            )
        except CodecError as exc:
            self.parse_error("xmlrpc", exc.code)
            body = _fault_body(exc)
        else:
            scope.rpc_method = method[:100]
            ctx = CallState(loaded, principal, scope.rid, False, "xmlrpc", request)
            try:
                result = await self.dispatcher.call(ctx, method, params)
            except AuthRequired as exc:
                raise auth_error(exc) from None
            except Fault as fault:
                body = _fault_body(fault)
            else:
                body = _encode(result, scope.rpc_method, scope.rid)
                if scope.rpc_method.endswith(("login", "logout")):
                    response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
                    ttl = self.authenticator.sessions.ttl
                    set_session_cookies(response, request, method, result, ttl)
                    return response
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _encode(result: object, rpc_method: str, rid: str) -> bytes:
    try:
        return xmlrpc.dumps_response(result)
    except (TypeError, ValueError, LimitExceeded):
        return _fault_body(unencodable(rpc_method, rid))
