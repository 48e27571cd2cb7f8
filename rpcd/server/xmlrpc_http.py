"""XML-RPC over HTTP: ``POST /RPC2`` (also ``/xmlrpc`` and ``/xmlrpc.php``).

One coroutine does the whole request: request id (``guard.begin``'s work, inline, with the
request's bookkeeping in locals), content checks, body, authentication,
parse, dispatch (which counts the call), encode, access line; a ``run = "inline"`` handler
is called from it directly (``Dispatcher.call_inline``), anything else awaited. It is the
daemon's hot path, so the app's objects are attributes of the endpoint (no ``app[...]``),
a bearer token is checked without a coroutine, and the response headers are built as one
dict (no content-type parsing in ``web.Response``).
"""

from __future__ import annotations

import logging
from time import perf_counter

from aiohttp import web

from rpcd.codecs import xmlrpc
from rpcd.errors import INTERNAL_ERROR, CodecError, Fault, LimitExceeded
from rpcd.server import guard
from rpcd.server.auth import NOT_BEARER, Authenticator, AuthRequired
from rpcd.server.dispatch import NOT_INLINE, CallContext
from rpcd.server.endpoint import Endpoint
from rpcd.server.http import (
    auth_error,
    check_content_type,
    new_request_id,
    read_body,
    safe_request_id,
)
from rpcd.server.logging_setup import REQUEST_ID

__all__ = ["PATHS", "XmlRpcEndpoint"]

PATHS = ("/RPC2", "/xmlrpc", "/xmlrpc.php")
CONTENT_TYPES = frozenset({"text/xml", "application/xml"})
CONTENT_TYPE = "text/xml; charset=utf-8"

log = logging.getLogger("rpcd.server")


def _fault_body(fault: Fault | CodecError) -> bytes:
    message = fault.message if isinstance(fault, Fault) else str(fault)
    return xmlrpc.dumps_fault(fault.code, message)


class XmlRpcEndpoint(Endpoint):
    """The XML-RPC request handler (one per app)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # guard.begin inline, its Scope's fields as locals (no object per request)
        given = request.headers.get("X-Request-ID")
        rid = given if given and safe_request_id(given) else new_request_id()
        token = REQUEST_ID.set(rid)
        started = perf_counter()
        peer = rpc_method = "-"
        status = 500
        try:
            settings = self.settings
            check_content_type(request, CONTENT_TYPES, settings.max_body_bytes)
            data = await read_body(request, settings.max_body_bytes, settings.body_timeout)
            loaded = self.holder.current
            auth = request.headers.get("Authorization", "")
            principal = Authenticator.bearer(auth, loaded.peers)
            if principal is NOT_BEARER:
                try:
                    principal = await self.authenticator.authenticate(request, loaded.peers)
                except AuthRequired as exc:  # Throttled: 429
                    raise auth_error(exc) from None
            elif principal is None:
                self.authenticator.failed("token")
            if principal is not None:
                peer = principal.peer.id
            try:
                method, params = xmlrpc.loads_call(
                    data,
                    max_depth=settings.max_xml_depth,
                    max_number_chars=settings.max_number_chars,
                )
            except CodecError as exc:
                body = self._parse_error(exc)
            else:
                rpc_method = method[:100]
                ctx = CallContext(loaded, principal, rid, False, "xmlrpc", request)
                dispatcher = self.dispatcher
                try:
                    # An inline handler is called without a coroutine; anything else awaited.
                    result = dispatcher.call_inline(ctx, method, params)
                    if result is NOT_INLINE:
                        result = await dispatcher.call(ctx, method, params)
                except AuthRequired as exc:
                    raise auth_error(exc) from None
                except Fault as fault:
                    body = _fault_body(fault)
                else:
                    body = _encode(result, rpc_method, rid)
            status = 200
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = rid
            raise
        except Exception:
            return guard.error_response(rid, request)
        finally:
            guard.end(request, status, rid, peer, rpc_method, started, token)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "X-Request-ID": rid})

    def _parse_error(self, exc: CodecError) -> bytes:
        """A body that is not a call: counted like a call's fault (method ``unknown``)."""
        if self.metrics is not None:
            self.metrics.observe_call("xmlrpc", "unknown", 0.0, exc.code)
        return _fault_body(exc)


def _encode(result: object, rpc_method: str, rid: str) -> bytes:
    try:
        return xmlrpc.dumps_response(result)
    except (TypeError, ValueError, LimitExceeded):
        log.exception("cannot encode the result of %s", rpc_method, extra={"request_id": rid})
        return _fault_body(Fault(INTERNAL_ERROR, f"internal error (request id {rid})"))
