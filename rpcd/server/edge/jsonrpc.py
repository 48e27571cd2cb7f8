"""JSON-RPC 2.0 over HTTP: ``POST /jsonrpc`` with batches and notifications, same faults.

A batch runs its calls in order (like ``system.multicall``) and is bounded by
``max_multicall`` entries and, multicalls' entries included, by ``max_calls_per_request``
calls (``rpcd.server.core.budget``). A request of notifications only is answered with 204 and no
body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from rpcd.codecs import jsonrpc
from rpcd.codecs.jsonrpc import InvalidJsonRpcRequest, JsonRpcRequest
from rpcd.errors import INVALID_REQUEST, CodecError, Fault, LimitExceeded
from rpcd.server.core.auth import AuthRequired
from rpcd.server.core.budget import calls_in, check_budget
from rpcd.server.core.calls import CallState, canonical
from rpcd.server.core.dispatch import Dispatcher
from rpcd.server.edge.cookies import set_session_cookies
from rpcd.server.edge.http import auth_error
from rpcd.server.edge.request import Endpoint, Scope, unencodable

__all__ = ["PATH", "JsonRpcEndpoint"]

PATH = "/jsonrpc"
CONTENT_TYPE = "application/json"


def _encode(response: dict[str, Any]) -> bytes:
    """One response object (already JSON-native, from make_result/make_error) as bytes."""
    return json.dumps(response, separators=(",", ":")).encode("ascii")


async def _one(
    dispatcher: Dispatcher, ctx: CallState, req: JsonRpcRequest, logins: list[Any]
) -> dict[str, Any] | None:
    """The response object for one request (None for a notification); the result of a
    ``system.login`` or ``system.logout`` is also appended to ``logins`` (cookies are set
    or expired for it)."""
    try:
        result = await dispatcher.call(ctx, req.method, req.params)
    except AuthRequired:
        raise
    except Fault as fault:
        if req.is_notification:
            return None
        return jsonrpc.make_error(req.id, fault.code, fault.message, fault.data)
    if req.is_notification:
        return None
    try:
        if canonical(req.method) in ("system.login", "system.logout"):
            logins.append((req.method, result))
        return jsonrpc.make_result(req.id, result)
    except (TypeError, ValueError, LimitExceeded):
        failed = unencodable(req.method, ctx.request_id)
        return jsonrpc.make_error(req.id, failed.code, failed.message)


def _costs(batch: list[JsonRpcRequest | InvalidJsonRpcRequest]) -> Iterator[int]:
    """Each batch entry's calls (``budget.calls_in``); an invalid entry counts one."""
    for item in batch:
        yield 1 if isinstance(item, InvalidJsonRpcRequest) else calls_in(item.method, item.params)


class JsonRpcEndpoint(Endpoint):
    """The JSON-RPC request handler (one per app)."""

    CONTENT_TYPES = frozenset(
        {"application/json", "application/json-rpc", "application/jsonrequest"}
    )

    async def answer(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        logins: list[Any] = []
        data = await self._answer(request, scope, logins)
        if not data:
            return web.Response(status=204)
        response = web.Response(body=data, headers={"Content-Type": CONTENT_TYPE})
        for method, result in logins[-1:]:
            ttl = self.authenticator.sessions.ttl
            set_session_cookies(response, request, method, result, ttl)
        return response

    async def _answer(self, request: web.Request, scope: Scope, logins: list[Any]) -> bytes:
        """The response body (empty: notifications only, 204); HTTP errors are raised."""
        data, loaded, principal = await self.caller(request, scope)
        settings = self.settings
        try:
            parsed = jsonrpc.loads_request(
                data, max_depth=settings.max_xml_depth, max_number_chars=settings.max_number_chars
            )
        except CodecError as exc:
            self.parse_error("jsonrpc", exc.code)
            return jsonrpc.dumps_error(getattr(exc, "id", None), exc.code, str(exc))
        ctx = CallState(loaded, principal, scope.rid, protocol="jsonrpc", request=request)
        dispatcher = self.dispatcher
        try:
            if isinstance(parsed, JsonRpcRequest):
                scope.rpc_method = parsed.method[:100]
                single = await _one(dispatcher, ctx, parsed, logins)
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
                response = await _one(dispatcher, ctx, item, logins)
                if response is not None:
                    responses.append(response)
            return jsonrpc.dumps_batch(responses)
        except AuthRequired as exc:
            raise auth_error(exc) from None
