"""Sign-in to the console with a peer's own credentials, under the RPC endpoints' limits.

A ``userpass`` peer gives its user name and password: checked by the daemon's
``Authenticator.check_password`` (scrypt in a thread, the success cache, and the same
failed-password throttle per client address and per user name as HTTP Basic and
``system.login``; past it, ``Throttled``). A ``token`` peer gives its token, looked up by
its digest like a bearer token (a failure is counted as one). A ``cert`` peer signs in with
the verified client certificate of its TLS connection, when rpcd terminates TLS.
"""

from __future__ import annotations

from aiohttp import web

from rpcd.config.models import Peer
from rpcd.server.core.auth import Authenticator, PeerIndex

__all__ = ["MAX_SECRET_CHARS", "MAX_USER_CHARS", "sign_in"]

#: Characters of a user name, and of a password or token, a sign-in may send.
MAX_USER_CHARS = 256
MAX_SECRET_CHARS = 1024


async def sign_in(
    authenticator: Authenticator,
    index: PeerIndex,
    fields: dict[str, str],
    request: web.Request,
) -> Peer | str:
    """The peer these credentials prove, or the message to show; ``Throttled`` propagates."""
    method = fields.get("method", "password")
    if method == "certificate":
        principal = await authenticator.authenticate(request, index)
        if principal is None or principal.method != "cert":
            return (
                "no client certificate of a peer came with this connection: sign in with a "
                "user name and password or a token instead"
            )
        return principal.peer
    if method == "token":
        token = fields.get("token", "")
        if not token or len(token) > MAX_SECRET_CHARS:
            return "enter your peer token"
        found = index.token_principal(token)
        if found is None:
            authenticator.failed("token")
            return "that token belongs to no peer"
        return found.peer
    user, password = fields.get("username", ""), fields.get("password", "")
    if not user or not password:
        return "enter a user name and a password (or choose token sign-in)"
    if len(user) > MAX_USER_CHARS or len(password) > MAX_SECRET_CHARS:
        return "the user name or password is too long"
    peer = await authenticator.check_password(index, user, password, request)
    if peer is None:
        return "wrong user name or password"
    return peer
