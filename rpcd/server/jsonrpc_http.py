"""JSON-RPC 2.0 over HTTP: ``POST /jsonrpc`` with batches and notifications, same faults.

A batch runs its calls in order (like ``system.multicall``) and is bounded by
``max_multicall``. A request of notifications only is answered with 204 and no body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from rpcd.codecs import jsonrpc
from rpcd.codecs.jsonrpc import InvalidJsonRpcRequest, JsonRpcRequest
from rpcd.errors import INTERNAL_ERROR, INVALID_REQUEST, CodecError, Fault, LimitExceeded
from rpcd.server.auth import AuthRequired
from rpcd.server.dispatch import CallContext
from rpcd.server.http import body, call_context, unauthorized
from rpcd.server.keys import DISPATCHER, SETTINGS

__all__ = ["PATH", "handle"]

PATH = "/jsonrpc"
CONTENT_TYPES = frozenset({"application/json", "application/json-rpc", "application/jsonrequest"})

log = logging.getLogger("rpcd.server")


def _encode(response: dict[str, Any]) -> bytes:
    """One response object (already JSON-native, from make_result/make_error) as bytes."""
    return json.dumps(response, separators=(",", ":")).encode("ascii")


def _json(data: bytes) -> web.Response:
    if not data:
        return web.Response(status=204)
    return web.Response(body=data, content_type="application/json")


async def _one(
    request: web.Request, ctx: CallContext, req: JsonRpcRequest
) -> dict[str, Any] | None:
    """The response object for one request (None for a notification)."""
    try:
        result = await request.app[DISPATCHER].call(ctx, req.method, req.params)
    except AuthRequired:
        raise
    except Fault as fault:
        return (
            None if req.is_notification else jsonrpc.make_error(req.id, fault.code, fault.message)
        )
    if req.is_notification:
        return None
    try:
        return jsonrpc.make_result(req.id, result)
    except (TypeError, ValueError, LimitExceeded):
        log.exception(
            "cannot encode the result of %s", req.method[:100], extra={"request_id": ctx.request_id}
        )
        return jsonrpc.make_error(
            req.id, INTERNAL_ERROR, f"internal error (request id {ctx.request_id})"
        )


async def handle(request: web.Request) -> web.Response:
    data = await body(request, CONTENT_TYPES)
    ctx = await call_context(request)
    settings = request.app[SETTINGS]
    try:
        parsed = jsonrpc.loads_request(data, max_depth=settings.max_xml_depth)
    except CodecError as exc:
        return _json(jsonrpc.dumps_error(getattr(exc, "id", None), exc.code, str(exc)))
    try:
        if isinstance(parsed, JsonRpcRequest):
            request["rpcd.method"] = parsed.method[:100]
            single = await _one(request, ctx, parsed)
            return _json(_encode(single) if single is not None else b"")
        if len(parsed) > settings.max_multicall:
            message = f"a batch takes at most {settings.max_multicall} calls, got {len(parsed)}"
            return _json(jsonrpc.dumps_error(None, INVALID_REQUEST, message))
        request["rpcd.method"] = "batch"
        responses: list[dict[str, Any]] = []
        for item in parsed:
            if isinstance(item, InvalidJsonRpcRequest):
                responses.append(jsonrpc.make_error(item.id, item.code, str(item)))
                continue
            response = await _one(request, ctx, item)
            if response is not None:
                responses.append(response)
        return _json(jsonrpc.dumps_batch(responses))
    except AuthRequired as exc:
        raise unauthorized(exc.message) from None
