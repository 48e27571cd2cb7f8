"""The JSON admin and call API (``/v1``), the probes, and ``GET /metrics``.

Authenticated peers only; a non-admin peer sees and uses only its own institutions. Secrets
appear as references (``env:NAME``), never values. ``GET /v1/openapi.json`` serves the API's
OpenAPI 3.1 document, ``openapi.json`` beside this module (the one description of these
routes; tests/test_serving_openapi.py holds the daemon to it with schemathesis).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rpcd.config.models import Peer
from rpcd.errors import Fault
from rpcd.server.core.outbound import run_call
from rpcd.server.edge.http import call_context, read_body, unauthorized_json
from rpcd.server.edge.keys import (
    HOLDER,
    METRICS,
    METRICS_TOKEN_DIGEST,
    RELOADER,
    SETTINGS,
    TRANSPORT,
)
from rpcd.server.edge.request import guarded

__all__ = ["metrics", "reload", "routes"]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, indent=2))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _peer(request: web.Request) -> Peer:
    ctx = await call_context(request)
    if ctx.principal is None:
        raise unauthorized_json()
    return ctx.principal.peer


def _forbidden(peer: Peer, institutions: list[str]) -> list[str]:
    return [] if peer.admin else [i for i in institutions if i not in peer.institutions]


async def connections(request: web.Request) -> web.Response:
    """``GET /v1/connections?class=C&institution=I``: connections, secrets as references."""
    peer = await _peer(request)
    catalog = request.app[HOLDER].current.catalog
    class_id = request.query.get("class")
    wanted = request.query.getall("institution", [])
    if _forbidden(peer, wanted):
        return _error(403, "you may only ask for your own institutions")
    scope = set(wanted) if wanted else (None if peer.admin else set(peer.institutions))
    out = []
    for conn in sorted(catalog.connections.values(), key=lambda c: (c.class_id, c.priority, c.id)):
        if class_id is not None and conn.class_id != class_id:
            continue
        if scope is not None and not conn.is_global and scope.isdisjoint(conn.institutions):
            continue
        item = conn.model_dump(mode="json", by_alias=True, exclude_none=True)
        item["credentials"] = {k: str(v) for k, v in conn.credentials.items()}
        item["full_id"] = conn.full_id
        out.append(item)
    return _json({"connections_enabled": catalog.connections_enabled, "connections": out})


async def call(request: web.Request) -> web.Response:
    """``POST /v1/call/{class}`` with ``{function, params, institutions}``: the runner's outcome."""
    peer = await _peer(request)
    loaded = request.app[HOLDER].current
    class_id = request.match_info["class"]
    settings = request.app[SETTINGS]
    data = await read_body(request, settings.max_body_bytes, settings.body_timeout)
    try:
        body = json.loads(data)
    except ValueError:
        return _error(400, "send a JSON object {function, params, institutions}")
    if not isinstance(body, dict) or not isinstance(body.get("function"), str):
        return _error(400, "send a JSON object {function, params, institutions}")
    institutions = body.get("institutions", list(peer.institutions))
    if not isinstance(institutions, list) or not all(isinstance(i, str) for i in institutions):
        return _error(400, "institutions is a list of institution ids")
    if _forbidden(peer, institutions):
        return _error(403, "you may only call for your own institutions")
    if class_id not in loaded.catalog.classes:
        return _error(404, f"no connection class {class_id!r}")
    try:
        outcome = await run_call(
            loaded,
            request.app.get(TRANSPORT),
            class_id,
            body["function"],
            body.get("params", {}),
            institutions,
            request.app.get(METRICS),
        )
    except Fault as fault:
        return _error(503, fault.message)
    return _json(outcome.to_dict())


async def status(request: web.Request) -> web.Response:
    """``GET /v1/status``: which catalog is serving."""
    await _peer(request)
    loaded = request.app[HOLDER].current
    reloader = request.app.get(RELOADER)
    last = None if reloader is None else reloader.status()
    return _json({"revision": loaded.revision, "reload": last})


@functools.cache
def openapi_document() -> bytes:
    """The OpenAPI document of ``/v1`` and the probes, as shipped in the package."""
    return resources.files(__package__).joinpath("openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """``GET /v1/openapi.json``: the API's description (no credentials needed)."""
    return web.Response(body=openapi_document(), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    holder = request.app.get(HOLDER)
    if holder is None:
        return web.Response(status=503, text="no catalog loaded\n")
    return web.Response(text=f"ready {holder.current.catalog.content_hash[:12]}\n")


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the Prometheus text exposition of this app's registry."""
    digest = request.app.get(METRICS_TOKEN_DIGEST)
    if digest is not None and not _bearer_matches(request.headers.get("Authorization", ""), digest):
        raise web.HTTPUnauthorized(
            text="GET /metrics needs Authorization: Bearer <the metrics token> "
            "(the daemon's metrics_token or metrics_token_file setting)\n",
            headers={"WWW-Authenticate": 'Bearer realm="rpcd metrics"'},
        )
    exposition = request.app[METRICS].exposition()
    return web.Response(body=exposition, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _bearer_matches(header: str, digest: bytes) -> bool:
    """Whether ``header`` is ``Bearer <token>`` for the token of ``digest``: the digests are
    compared in constant time, so neither the token's length nor a prefix shows in timing."""
    scheme, _, value = header.partition(" ")
    given = hashlib.sha256(value.strip().encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(given, digest) and scheme.lower() == "bearer"


async def reload(request: web.Request) -> web.Response:
    """``POST /v1/reload`` (admin peers): run a reload and answer with its result.

    200 with ``result: ok``; 409 with ``result: failed`` and the findings when the tree is
    invalid (the old catalog keeps serving); 401 / 403 for a caller that is not an admin.
    """
    ctx = await call_context(request)
    if ctx.principal is None:
        raise unauthorized_json()
    if not ctx.principal.peer.admin:
        return web.json_response({"error": "reload is for admin peers"}, status=403)
    result = await request.app[RELOADER].reload()
    return web.json_response(result.to_dict(), status=200 if result.ok else 409)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/connections", guarded(connections)),
        web.post("/v1/call/{class}", guarded(call)),
        web.get("/v1/status", guarded(status)),
        web.get("/v1/openapi.json", guarded(openapi)),
        web.get("/healthz", guarded(healthz)),
        web.get("/readyz", guarded(readyz)),
    ]
