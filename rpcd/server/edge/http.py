"""What every HTTP endpoint shares: request ids, body reading with limits, the caller's context."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import secrets
from collections.abc import Iterator

from aiohttp import web

from rpcd.server.core.auth import AUTH_CHALLENGE, AuthRequired, Throttled
from rpcd.server.core.calls import CallState
from rpcd.server.edge.keys import AUTHENTICATOR, HOLDER, PEER, RID

__all__ = [
    "auth_error",
    "call_context",
    "check_content_type",
    "given_or_new_request_id",
    "new_request_id",
    "read_body",
    "request_id",
    "safe_request_id",
    "unauthorized",
    "unauthorized_json",
]

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: True-ish when a caller's ``X-Request-ID`` may be used as ours.
safe_request_id = _SAFE_ID.match

# New request ids: 16 hex digits, a per-process random 32-bit prefix (top bit set, so the
# width never changes; drawn again in a forked child) followed by a 32-bit counter (which
# carries into the prefix after 2**32 requests: still unique within the process), written by
# ``hex``. Not ``uuid4``: it reads os.urandom on every request (docs/performance.md).
# Ids are unique within a process and, with 31 random bits per process, practically across
# replicas; they are not secrets.


def _new_counter() -> Iterator[int]:
    return itertools.count(((1 << 31) | secrets.randbits(31)) << 32 | 1)


_counter = _new_counter()


def _reseed() -> None:
    global _counter
    _counter = _new_counter()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """A fresh id (16 lowercase hex digits): ``hex`` of the counter, without its ``0x``."""
    return hex(next(_counter))[2:]


def request_id(request: web.Request) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one; fixed for the request."""
    rid: str | None = request.get(RID)
    if rid is not None:
        return rid
    rid = request[RID] = given_or_new_request_id(request)
    return rid


def given_or_new_request_id(request: web.Request) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one (not remembered: the
    request skeleton binds it for the request)."""
    given = request.headers.get("X-Request-ID")
    return given if given and safe_request_id(given) else new_request_id()


def check_content_type(request: web.Request, content_types: frozenset[str], limit: int) -> None:
    """415 for another content type, 413 for a declared length over ``limit``.

    ``Request.content_type`` parses the header on every request; a header exactly equal to
    one of ``content_types`` (what clients send) is accepted without parsing.
    """
    raw = request.headers.get("Content-Type")
    if raw not in content_types and request.content_type not in content_types:
        raise web.HTTPUnsupportedMediaType(
            text=f"send Content-Type {' or '.join(sorted(content_types))}\n"
        )
    length = request.content_length
    if length is not None and length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body as one ``bytes``, 413 past ``limit`` (also without a Content-Length),
    408 when it has not all arrived within ``timeout`` seconds (``body_timeout``: a client
    trickling its body cannot hold a connection and a handler's slot for longer).

    ``Request.read`` copies every chunk into a bytearray and that into bytes; here a body that
    arrived whole (any small call, the usual case) is taken as it is, in one chunk without a
    copy, and one still arriving is joined once at the end.
    """
    content = request.content
    if content.is_eof():  # the parser saw the whole body already
        data = content.read_nowait()
        if len(data) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
        return data
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
                chunks.append(chunk)
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"request body not received within {timeout:g} s (body_timeout): "
            "send it faster, or ask the operator to raise RPCD_BODY_TIMEOUT\n",
            headers={"Connection": "close"},
        ) from None
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


async def call_context(request: web.Request) -> CallState:
    """Take the current catalog once, and authenticate the caller against it."""
    loaded = request.app[HOLDER].current
    try:
        principal = await request.app[AUTHENTICATOR].authenticate(request, loaded.peers)
    except AuthRequired as exc:
        raise auth_error(exc, as_json=True) from None
    if principal is not None:
        request[PEER] = principal.peer.id
    return CallState(loaded, principal, request_id(request), protocol="http", request=request)


def auth_error(exc: AuthRequired, *, as_json: bool = False) -> web.HTTPException:
    """The HTTP answer to ``exc``: 429 with ``Retry-After`` when ``Throttled``, else 401."""
    if isinstance(exc, Throttled):
        text = json.dumps({"error": exc.message}, indent=2) if as_json else exc.message + "\n"
        return web.HTTPTooManyRequests(
            text=text,
            content_type="application/json" if as_json else "text/plain",
            headers={"Retry-After": str(exc.retry_after)},
        )
    return unauthorized_json(exc.message) if as_json else unauthorized(exc.message)


def unauthorized(message: str = "authentication required") -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text=message + "\n", headers={"WWW-Authenticate": AUTH_CHALLENGE})


def unauthorized_json(message: str = "authentication required") -> web.HTTPUnauthorized:
    """The JSON API's 401: ``{"error": ...}`` like its other errors, with the challenge."""
    return web.HTTPUnauthorized(
        text=json.dumps({"error": message}, indent=2),
        content_type="application/json",
        headers={"WWW-Authenticate": AUTH_CHALLENGE},
    )
