"""The console's signed session cookie and the CSRF tokens bound to it.

The cookie is a ``rpcd.server.core.sessions`` session (HMAC-SHA256 over peer id, issue and
expiry times and a nonce), signed with a key derived from the daemon's ``session_key`` for the
console alone: a console cookie is no RPC session and an RPC session is no console cookie.
It is ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui``, and ``Secure`` when the request came
over TLS (to rpcd, or to a proxy in ``trusted_proxies`` that says so in
``X-Forwarded-Proto``). Logout revokes its nonce (on this replica; see ``sessions.py`` for
what that means with several replicas) and clears the cookie.

Every POST carries a CSRF token: HMAC of the session's nonce (signed in), or of a random
pre-sign-in cookie's value (the sign-in form itself), under a second derived key; it is
compared in constant time.
"""

from __future__ import annotations

import base64
import hmac
import os

from aiohttp import web

from rpcd.server.core.sessions import SessionClaims, SessionManager
from rpcd.server.core.throttle import trusted_networks, via_trusted_proxy
from rpcd.settings import Settings

__all__ = ["COOKIE", "LOGIN_COOKIE", "ConsoleSessions"]

COOKIE = "rpcd_console"
LOGIN_COOKIE = "rpcd_console_login"
PATH = "/ui"
#: Characters of a session cookie value rpcd issues is well under this; longer is refused.
MAX_COOKIE_CHARS = 700
#: Seconds the pre-sign-in cookie lives (the time to fill in the sign-in form).
LOGIN_COOKIE_TTL = 900


class ConsoleSessions:
    """Issue, verify and end console sessions; make and check CSRF tokens."""

    def __init__(self, key: bytes, ttl: float, trusted_proxies: tuple[str, ...] = ()) -> None:
        self.sessions = SessionManager(hmac.digest(key, b"rpcd console session v1", "sha256"), ttl)
        self._csrf_key = hmac.digest(key, b"rpcd console csrf v1", "sha256")
        self.trusted_proxies = trusted_networks(trusted_proxies)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleSessions:
        """Keyed by the daemon's session key, or a random per-process key when none is set
        (the daemon already warns about that for its RPC sessions)."""
        key = settings.session_key_bytes() or SessionManager.random_key()
        return cls(key, settings.session_ttl, settings.trusted_proxies)

    def issue(self, peer_id: str) -> str:
        """A cookie value for a new session of ``peer_id``."""
        sessionid, kp3 = self.sessions.issue(peer_id)
        return f"{sessionid}~{kp3}"

    def verify(self, value: str | None) -> SessionClaims | None:
        """The claims of a valid cookie value, or None."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        sessionid, sep, kp3 = value.partition("~")
        if not sep:
            return None
        return self.sessions.verify(sessionid, kp3)

    def revoke(self, claims: SessionClaims) -> None:
        self.sessions.revoke(claims)

    def csrf(self, nonce: str, purpose: str = "session") -> str:
        """The CSRF token of a session nonce (or of the pre-sign-in cookie: ``login``)."""
        message = f"{purpose}\0{nonce}".encode()
        return hmac.digest(self._csrf_key, message, "sha256").hex()

    def csrf_ok(self, nonce: str, given: str | None, purpose: str = "session") -> bool:
        expected = self.csrf(nonce, purpose)
        return hmac.compare_digest(expected.encode(), (given or "").encode("utf-8", "replace"))

    @staticmethod
    def new_login_nonce() -> str:
        return base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")

    def set_cookie(
        self,
        response: web.StreamResponse,
        request: web.BaseRequest,
        name: str,
        value: str,
        ttl: float,
    ) -> None:
        """Set a console cookie: HttpOnly, SameSite=Strict, Path=/ui, Secure over TLS."""
        response.set_cookie(
            name,
            value,
            max_age=int(ttl),
            path=PATH,
            httponly=True,
            secure=self.over_tls(request),
            samesite="Strict",
        )

    def over_tls(self, request: web.BaseRequest) -> bool:
        """Whether the browser reached us over TLS: rpcd's own, or a trusted proxy's
        (``trusted_proxies``) that says ``X-Forwarded-Proto: https``."""
        if request.secure:
            return True
        proto = request.headers.get("X-Forwarded-Proto", "")
        return proto.strip().lower() == "https" and via_trusted_proxy(request, self.trusted_proxies)

    @staticmethod
    def clear_cookie(response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path=PATH)
