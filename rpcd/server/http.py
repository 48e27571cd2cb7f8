"""What every HTTP endpoint shares: request ids, body reading with limits, the caller's context."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from rpcd.server.auth import AUTH_CHALLENGE
from rpcd.server.dispatch import CallContext
from rpcd.server.keys import AUTHENTICATOR, HOLDER, SETTINGS

__all__ = ["REQUEST_ID", "body", "call_context", "request_id", "unauthorized"]

REQUEST_ID = "rpcd.request_id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id(request: web.Request) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one; fixed for the request."""
    rid = request.get(REQUEST_ID)
    if isinstance(rid, str):
        return rid
    given = request.headers.get("X-Request-ID", "")
    rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex[:16]
    request[REQUEST_ID] = rid
    return rid


async def body(request: web.Request, content_types: frozenset[str]) -> bytes:
    """The request body, after the content type (415) and size (413) checks."""
    if request.content_type not in content_types:
        raise web.HTTPUnsupportedMediaType(
            text=f"send Content-Type {' or '.join(sorted(content_types))}\n"
        )
    limit = request.app[SETTINGS].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
    return await request.read()  # the app's client_max_size is the same limit (413 beyond)


async def call_context(request: web.Request) -> CallContext:
    """Take the current catalog once, and authenticate the caller against it."""
    loaded = request.app[HOLDER].current
    principal = await request.app[AUTHENTICATOR].authenticate(request, loaded.peers)
    if principal is not None:
        request["rpcd.peer"] = principal.peer.id
    return CallContext(loaded, principal, request_id(request))


def unauthorized(message: str = "authentication required") -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text=message + "\n", headers={"WWW-Authenticate": AUTH_CHALLENGE})
