"""XML-RPC over HTTP: ``POST /RPC2`` (also ``/xmlrpc`` and ``/xmlrpc.php``)."""

from __future__ import annotations

import logging

from aiohttp import web

from rpcd.codecs import xmlrpc
from rpcd.errors import INTERNAL_ERROR, CodecError, Fault, LimitExceeded
from rpcd.server.auth import AuthRequired
from rpcd.server.http import body, call_context, request_id, unauthorized
from rpcd.server.keys import DISPATCHER, SETTINGS

__all__ = ["PATHS", "handle"]

PATHS = ("/RPC2", "/xmlrpc", "/xmlrpc.php")
CONTENT_TYPES = frozenset({"text/xml", "application/xml"})

log = logging.getLogger("rpcd.server")


def _xml(data: bytes) -> web.Response:
    return web.Response(body=data, content_type="text/xml", charset="utf-8")


def _fault(fault: Fault | CodecError) -> web.Response:
    if isinstance(fault, Fault):
        return _xml(xmlrpc.dumps_fault(fault.code, fault.message))
    return _xml(xmlrpc.dumps_fault(fault.code, str(fault)))


async def handle(request: web.Request) -> web.Response:
    data = await body(request, CONTENT_TYPES)
    ctx = await call_context(request)
    settings = request.app[SETTINGS]
    try:
        method, params = xmlrpc.loads_call(data, max_depth=settings.max_xml_depth)
    except CodecError as exc:
        return _fault(exc)
    request["rpcd.method"] = method[:100]
    try:
        result = await request.app[DISPATCHER].call(ctx, method, params)
    except AuthRequired as exc:
        raise unauthorized(exc.message) from None
    except Fault as fault:
        return _fault(fault)
    try:
        return _xml(xmlrpc.dumps_response(result))
    except (TypeError, ValueError, LimitExceeded):
        log.exception(
            "cannot encode the result of %s",
            method[:100],
            extra={"request_id": request_id(request)},
        )
        return _fault(Fault(INTERNAL_ERROR, f"internal error (request id {request_id(request)})"))
