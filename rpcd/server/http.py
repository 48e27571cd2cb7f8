"""What every HTTP endpoint shares: request ids, body reading with limits, the caller's context."""

from __future__ import annotations

import itertools
import os
import re
import secrets

from aiohttp import web

from rpcd.server.auth import AUTH_CHALLENGE
from rpcd.server.dispatch import CallContext
from rpcd.server.keys import AUTHENTICATOR, HOLDER, SETTINGS

__all__ = ["REQUEST_ID", "body", "call_context", "new_request_id", "request_id", "unauthorized"]

REQUEST_ID = "rpcd.request_id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# New request ids: a random per-process prefix (8 hex digits, drawn again in a forked child)
# and a counter (8 hex digits, more past 2**32), 16 characters like the uuid4 prefix they
# replace. ``uuid.uuid4()`` reads os.urandom on every request: 10 % of the daemon's time under
# load in a py-spy profile; this is one f-string. Ids are unique within a process and, with
# 32 random bits per process, practically across replicas; they are not secrets.
_prefix = secrets.token_hex(4)
_counter = itertools.count(1)


def _reseed() -> None:
    global _prefix, _counter
    _prefix = secrets.token_hex(4)
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    return f"{_prefix}{next(_counter):08x}"


def request_id(request: web.Request) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one; fixed for the request."""
    rid = request.get(REQUEST_ID)
    if rid is not None:
        return rid  # type: ignore[no-any-return]
    given = request.headers.get("X-Request-ID")
    rid = given if given and _SAFE_ID.match(given) else new_request_id()
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
