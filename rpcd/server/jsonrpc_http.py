"""JSON-RPC 2.0 over HTTP: ``POST /jsonrpc`` with batches and notifications, same faults.

A batch runs its calls in order (like ``system.multicall``) and is bounded by
``max_multicall`` entries and, multicalls' entries included, by ``max_calls_per_request``
calls (``rpcd.server.budget``). A request of notifications only is answered with 204 and no
body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from rpcd.codecs import jsonrpc
from rpcd.codecs.jsonrpc import InvalidJsonRpcRequest, JsonRpcRequest
from rpcd.errors import INTERNAL_ERROR, INVALID_REQUEST, CodecError, Fault, LimitExceeded
from rpcd.server import guard
from rpcd.server.auth import NOT_BEARER, Authenticator, AuthRequired
from rpcd.server.budget import calls_in, check_budget
from rpcd.server.dispatch import NOT_INLINE, CallContext, Dispatcher
from rpcd.server.endpoint import Endpoint
from rpcd.server.http import auth_error, check_content_type, read_body

__all__ = ["PATH", "JsonRpcEndpoint"]

PATH = "/jsonrpc"
CONTENT_TYPES = frozenset({"application/json", "application/json-rpc", "application/jsonrequest"})
CONTENT_TYPE = "application/json"

log = logging.getLogger("rpcd.server")


def _encode(response: dict[str, Any]) -> bytes:
    """One response object (already JSON-native, from make_result/make_error) as bytes."""
    return json.dumps(response, separators=(",", ":")).encode("ascii")


def _json(data: bytes, rid: str) -> web.Response:
    if not data:
        return web.Response(status=204, headers={"X-Request-ID": rid})
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE, "X-Request-ID": rid})


async def _one(
    dispatcher: Dispatcher, ctx: CallContext, req: JsonRpcRequest
) -> dict[str, Any] | None:
    """The response object for one request (None for a notification)."""
    try:
        result = dispatcher.call_inline(ctx, req.method, req.params)
        if result is NOT_INLINE:
            result = await dispatcher.call(ctx, req.method, req.params)
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


def _costs(batch: list[JsonRpcRequest | InvalidJsonRpcRequest]) -> Iterator[int]:
    """Each batch entry's calls (``budget.calls_in``); an invalid entry counts one."""
    for item in batch:
        yield 1 if isinstance(item, InvalidJsonRpcRequest) else calls_in(item.method, item.params)


class JsonRpcEndpoint(Endpoint):
    """The JSON-RPC request handler (one per app)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        scope = guard.begin(request)
        status = 500
        try:
            data = await self._answer(request, scope)
            status = 200 if data else 204
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = scope.rid
            raise
        except Exception:
            return guard.error_response(scope, request)
        finally:
            guard.finish(scope, request, status)
        return _json(data, scope.rid)

    async def _answer(self, request: web.Request, scope: guard.Scope) -> bytes:
        """The response body (empty: notifications only, 204); HTTP errors are raised."""
        settings = self.settings
        check_content_type(request, CONTENT_TYPES, settings.max_body_bytes)
        data = await read_body(request, settings.max_body_bytes, settings.body_timeout)
        loaded = self.holder.current
        principal = Authenticator.bearer(request.headers.get("Authorization", ""), loaded.peers)
        if principal is NOT_BEARER:
            try:
                principal = await self.authenticator.authenticate(request, loaded.peers)
            except AuthRequired as exc:  # Throttled: 429
                raise auth_error(exc) from None
        elif principal is None:
            self.authenticator.failed("token")
        if principal is not None:
            scope.peer = principal.peer.id
        try:
            parsed = jsonrpc.loads_request(
                data, max_depth=settings.max_xml_depth, max_number_chars=settings.max_number_chars
            )
        except CodecError as exc:
            if self.metrics is not None:
                self.metrics.observe_call("jsonrpc", "unknown", 0.0, exc.code)
            return jsonrpc.dumps_error(getattr(exc, "id", None), exc.code, str(exc))
        ctx = CallContext(loaded, principal, scope.rid, protocol="jsonrpc", request=request)
        dispatcher = self.dispatcher
        try:
            if isinstance(parsed, JsonRpcRequest):
                scope.rpc_method = parsed.method[:100]
                single = await _one(dispatcher, ctx, parsed)
                return _encode(single) if single is not None else b""
            if len(parsed) > settings.max_multicall:
                message = f"a batch takes at most {settings.max_multicall} calls, got {len(parsed)}"
                return jsonrpc.dumps_error(None, INVALID_REQUEST, message)
            try:  # the whole batch, multicalls' entries included, before any call runs
                check_budget(_costs(parsed), settings.max_calls_per_request)
            except Fault as fault:
                return jsonrpc.dumps_error(None, fault.code, fault.message)
            scope.rpc_method = "batch"
            responses: list[dict[str, Any]] = []
            for item in parsed:
                if isinstance(item, InvalidJsonRpcRequest):
                    responses.append(jsonrpc.make_error(item.id, item.code, str(item)))
                    continue
                response = await _one(dispatcher, ctx, item)
                if response is not None:
                    responses.append(response)
            return jsonrpc.dumps_batch(responses)
        except AuthRequired as exc:
            raise auth_error(exc) from None
