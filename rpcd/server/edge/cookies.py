"""The session cookies ``system.login`` sets, for eGroupWare clients that keep cookies.

eGroupWare's document: "If your xmlrpc clients / layer supports cookies (receives them and
sends them back) there is nothing you need to do". So a successful ``system.login`` answer
also sets ``sessionid`` and ``kp3`` cookies (HttpOnly, SameSite=Strict, Secure over TLS,
living as long as the session); ``rpcd.server.core.auth`` reads them back. A successful
``system.logout`` expires them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rpcd.server.core.auth import SESSION_NAMES
from rpcd.server.core.calls import canonical

__all__ = ["set_session_cookies"]


def set_session_cookies(
    response: web.StreamResponse, request: web.BaseRequest, method: str, result: Any, ttl: float
) -> None:
    """Set the cookies of a successful ``system.login`` on ``response``, expire them after a
    ``system.logout`` (else nothing)."""
    name = canonical(method)
    if name == "system.logout":
        for cookie in SESSION_NAMES:
            response.del_cookie(cookie, path="/")
        return
    if name != "system.login" or not isinstance(result, dict):
        return
    for name in SESSION_NAMES:
        value = result.get(name)
        if isinstance(value, str):
            response.set_cookie(
                name,
                value,
                max_age=int(ttl),
                path="/",
                httponly=True,
                samesite="Strict",
                secure=request.secure,
            )
