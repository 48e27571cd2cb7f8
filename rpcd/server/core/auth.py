"""Who is calling: bearer token, HTTP Basic (password or session), or client certificate.

Every inbound credential is checked against hashes from ``services.d``: a bearer token or a
client certificate by looking its sha256 digest up in a dict (see ``PeerIndex``), a password
with scrypt, a session by its HMAC (compared in constant time). A request
without valid credentials is anonymous (``None``): the dispatcher then allows only
``system.login``, ``system.getCapabilities`` and ``system.listMethods`` and answers anything
else with HTTP 401 and ``WWW-Authenticate`` (``AuthRequired``).

Password verification (scrypt, about 50 ms and 16 MiB each) runs in a worker thread, and a
success is remembered for ``auth_cache_ttl`` seconds, keyed by a sha256 over user name,
password and the stored hash: a peer that sends Basic credentials on every call would otherwise
pay scrypt per request (a ceiling of ~20 calls/s per core, and an easy way to exhaust the
daemon). The key holds no password, and a changed ``password_hash`` misses the cache. Failures
are never cached, so guessing still costs scrypt every time.

A user name no peer has is verified all the same, against ``PeerIndex.unmatchable`` (a hash
with the cost parameters of the peers' own), so a failure takes the same scrypt work whether
the name exists or not. Failed password checks are limited per client address and per user
name (``rpcd.server.core.throttle``): past the limit a check is refused with ``Throttled`` (HTTP
429 with ``Retry-After``) before any scrypt runs. Every failed authentication is counted by
what was presented (``rpcd_auth_failures_total{reason}``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from rpcd.config.models import Peer
from rpcd.errors import Fault
from rpcd.secrets_hash import unmatchable_like, verify_scrypt
from rpcd.server.core.sessions import SessionClaims, SessionManager
from rpcd.server.core.throttle import PasswordThrottle

__all__ = [
    "AUTH_CHALLENGE",
    "NOT_BEARER",
    "AuthRequired",
    "Authenticator",
    "NotBearer",
    "PeerIndex",
    "Principal",
    "Throttled",
]

AUTH_CHALLENGE = 'Basic realm="rpcd", charset="UTF-8"'
_sha256 = hashlib.sha256


class NotBearer(enum.Enum):
    """``Authenticator.bearer``'s answer for a header that is not a bearer token."""

    NOT_BEARER = "not bearer"


NOT_BEARER = NotBearer.NOT_BEARER
_CACHE_SIZE = 1024


class AuthRequired(Fault):
    """No valid credentials for this call: the HTTP layer answers 401 + WWW-Authenticate."""

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(401, message)


class Throttled(AuthRequired):
    """Too many failed password checks from this address or for this user name: HTTP 429."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        Fault.__init__(
            self,
            429,
            "too many failed password attempts from this address or for this user name: "
            f"try again in {self.retry_after} s",
        )


class AuthCounter(Protocol):
    """What the authenticator counts on (``rpcd.server.ops.metrics.Metrics``)."""

    def auth_failed(self, reason: str) -> None: ...

    def auth_throttled(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated peer, how it proved itself, and its session if it used one."""

    peer: Peer
    method: str  # token | password | session | cert
    session: SessionClaims | None = None

    @property
    def institutions(self) -> tuple[str, ...]:
        """The institutions the caller acts for: the peer's, or the one its session's
        ``system.login`` chose with ``domain``."""
        if self.session is not None and self.session.institution is not None:
            return (self.session.institution,)
        return self.peer.institutions


@dataclass(frozen=True)
class PeerIndex:
    """The catalog's peers arranged for authentication (built once per catalog).

    Token and certificate peers are found by the sha256 digest of what the caller presents,
    in a dict, like any API-key store: one lookup, whatever the number of peers (comparing
    the digest with every peer's in constant time costs a ``compare_digest`` per peer per
    request). This leaks nothing a timing attack could use: the caller chooses the token,
    not its digest, and sha256 is preimage-resistant, so the time a lookup takes (the digest's
    hash bucket, how many leading bytes a colliding key shares) says nothing about any
    stored digest that the attacker could steer a next guess by. The stored values are
    digests of high-entropy tokens, never the tokens themselves.

    Each entry carries its ``Principal``, made once here: a request that authenticates gets
    the shared, immutable object instead of building one. A reload builds a new index, so
    nothing outlives the catalog it came from.
    """

    peers: Mapping[str, Peer]
    tokens: Mapping[bytes, Principal]
    users: Mapping[str, Peer]
    certs: Mapping[bytes, Principal]
    #: What a user name no peer has is verified against: same cost, matches no password.
    unmatchable: str = field(default_factory=lambda: unmatchable_like(()))

    @classmethod
    def build(cls, peers: Mapping[str, Peer]) -> PeerIndex:
        tokens = {
            bytes.fromhex(p.token_sha256): Principal(p, "token")
            for p in peers.values()
            if p.token_sha256
        }
        users = {p.username: p for p in peers.values() if p.username and p.password_hash}
        certs = {
            bytes.fromhex(p.fingerprint_sha256): Principal(p, "cert")
            for p in peers.values()
            if p.fingerprint_sha256
        }
        unmatchable = unmatchable_like(p.password_hash for p in users.values() if p.password_hash)
        return cls(peers, tokens, users, certs, unmatchable)

    def token_principal(self, token: str) -> Principal | None:
        """The token peer whose stored digest is this token's sha256, if any."""
        return self.tokens.get(_sha256(token.encode("utf-8", "surrogatepass")).digest())

    def cert_principal(self, der: bytes) -> Principal | None:
        """The certificate peer whose stored fingerprint is this certificate's sha256."""
        return self.certs.get(_sha256(der).digest())


class _SuccessCache:
    """Recently verified passwords, keyed by a hash (never the password), bounded and expiring."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    @staticmethod
    def key(username: str, password: str, stored_hash: str) -> bytes:
        h = hashlib.sha256()
        for part in (username, password, stored_hash):
            data = part.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(4, "big") + data)
        return h.digest()

    def hit(self, key: bytes) -> bool:
        expires = self._entries.get(key)
        if expires is None:
            return False
        if expires <= time.monotonic():
            del self._entries[key]
            return False
        return True

    def add(self, key: bytes) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = time.monotonic() + self._ttl
        self._entries.move_to_end(key)
        while len(self._entries) > _CACHE_SIZE:
            self._entries.popitem(last=False)


class Authenticator:
    """Turns a request's credentials into a ``Principal`` (or None: anonymous)."""

    def __init__(
        self,
        sessions: SessionManager,
        cache_ttl: float,
        throttle: PasswordThrottle | None = None,
    ) -> None:
        self.sessions = sessions
        self._cache = _SuccessCache(cache_ttl)
        self.throttle = throttle
        self.metrics: AuthCounter | None = None  # set by the app (``edge.app.create_app``)

    def failed(self, reason: str) -> None:
        """Count a failed authentication (``password``, ``token``, ``session``, ``cert`` or
        ``malformed``)."""
        if self.metrics is not None:
            self.metrics.auth_failed(reason)

    async def check_password(
        self,
        index: PeerIndex,
        username: str,
        password: str,
        request: web.BaseRequest | None = None,
    ) -> Peer | None:
        """The userpass peer these credentials belong to, verified with scrypt (or the cache);
        None when they are wrong, the same scrypt work for an unknown user name. ``Throttled``
        when too many checks failed lately for ``request``'s client or for ``username``."""
        throttle = self.throttle
        keys = throttle.keys(request, username) if throttle is not None else ()
        if throttle is not None:
            wait = throttle.retry_after(keys)
            if wait > 0:
                if self.metrics is not None:
                    self.metrics.auth_throttled()
                raise Throttled(wait)
        peer = index.users.get(username)
        stored = peer.password_hash if peer is not None else None
        key = b""
        if stored:
            key = self._cache.key(username, password, stored)
            if self._cache.hit(key):
                return peer
        ok = await asyncio.to_thread(verify_scrypt, password, stored or index.unmatchable)
        if ok and stored:
            self._cache.add(key)
            return peer
        if throttle is not None:
            throttle.failed(keys)
        self.failed("password")
        return None

    def check_session(self, index: PeerIndex, sessionid: str, kp3: str) -> Principal | None:
        claims = self.sessions.verify(sessionid, kp3)
        if claims is None:
            return None
        peer = index.peers.get(claims.peer_id)  # a peer removed by a reload loses its sessions
        return Principal(peer, "session", claims) if peer is not None else None

    async def authenticate(self, request: web.Request, index: PeerIndex) -> Principal | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and value:
            principal = index.token_principal(value)
            if principal is None:
                self.failed("token")
            return principal
        if scheme == "basic" and value:
            return await self._basic(index, value, request)
        carried = _carried_session(request)
        if carried is not None:  # eGroupWare's cookies, phpGroupWare's URL params
            session = self.check_session(index, *carried)
            if session is None:
                self.failed("session")
            return session
        der = _client_certificate(request)
        if der is not None:
            principal = index.cert_principal(der)
            if principal is None:
                self.failed("cert")
            return principal
        return None

    @staticmethod
    def bearer(header: str, index: PeerIndex) -> Principal | NotBearer | None:
        """The token peer of an ``Authorization: Bearer`` header, without a coroutine; or
        ``NOT_BEARER`` for any other header (then ``authenticate`` decides). The same
        lookup as ``PeerIndex.token_principal``, in one frame (the hot path)."""
        if header.startswith("Bearer "):  # what clients send: no case folding needed
            value = header[7:].strip()
        else:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer":
                return NOT_BEARER
            value = value.strip()
        if not value:
            return NOT_BEARER
        return index.tokens.get(_sha256(value.encode("utf-8", "surrogatepass")).digest())

    async def _basic(
        self, index: PeerIndex, value: str, request: web.BaseRequest
    ) -> Principal | None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self.failed("malformed")
            return None
        user, sep, secret = decoded.partition(":")
        if not sep:
            self.failed("malformed")
            return None
        if self.sessions.looks_like_session(user):
            session = self.check_session(index, user, secret)
            if session is None:
                self.failed("session")
            return session
        peer = await self.check_password(index, user, secret, request)
        return Principal(peer, "password") if peer is not None else None


#: The names eGroupWare and phpGroupWare give a session's two halves, in a cookie or the URL.
SESSION_NAMES = ("sessionid", "kp3")


def _carried_session(request: web.Request) -> tuple[str, str] | None:
    """A session sent as cookies (``sessionid`` and ``kp3``: what ``system.login`` sets, and
    what eGroupWare clients with a cookie jar send back) or as URL query params
    (``?sessionid=…&kp3=…``: phpGroupWare clients that cannot send Basic credentials)."""
    for source in (request.cookies, request.query):
        sid, kp3 = (source.get(name) for name in SESSION_NAMES)
        if sid and kp3:
            return sid, kp3
    return None


def _client_certificate(request: web.Request) -> bytes | None:
    """The DER bytes of a verified client certificate, when rpcd terminates TLS."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der
