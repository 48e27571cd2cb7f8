"""Stateless signed sessions for ``system.login`` (eGroupWare's sessionid + kp3), no database.

    sessionid = base64url(payload) "." base64url(HMAC-SHA256(k_sig, payload))
    payload   = JSON {"p": peer id, "i": issued, "e": expires, "n": random nonce,
                      "d": the institution chosen by login's ``domain`` (only when given)}
    kp3       = hex(HMAC-SHA256(k_kp3, sessionid))[:32]

``k_sig`` and ``k_kp3`` are derived from the session key, so every replica started with the
same key accepts every session any of them issued, until ``expires``. Clients send them back as
HTTP Basic ``base64(sessionid:kp3)``. kp3 adds no secret of its own (it is derived from the
sessionid); it exists because eGroupWare-style clients expect the pair.

Logout adds the nonce to a *local* revocation set until the session's expiry. Another replica
does not see that set: **a logged-out session stays valid on other replicas until it expires**,
at most ``session_ttl`` after login (default 30 minutes, capped at 12 hours by the settings).
Keep ``session_ttl`` short where that matters; rotating the key ends every session everywhere.

Without a configured key the daemon uses a random per-process key (and warns): sessions then
die with the process and are not shared between replicas.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SessionClaims", "SessionManager"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class SessionClaims:
    peer_id: str
    issued: float
    expires: float
    nonce: str
    #: The institution ``system.login``'s ``domain`` chose (None: all of the peer's).
    institution: str | None = None


class SessionManager:
    """Issues and verifies sessions; keeps the local revocation set."""

    def __init__(self, key: bytes, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._sig_key = hmac.digest(key, b"rpcd session signature v1", "sha256")
        self._kp3_key = hmac.digest(key, b"rpcd session kp3 v1", "sha256")
        self._ttl = ttl
        self._clock = clock
        self._revoked: dict[str, float] = {}  # nonce -> expires

    @staticmethod
    def random_key() -> bytes:
        return os.urandom(32)

    @property
    def ttl(self) -> float:
        return self._ttl

    def _kp3(self, sessionid: str) -> str:
        return hmac.digest(self._kp3_key, sessionid.encode("ascii"), "sha256").hex()[:32]

    def issue(self, peer_id: str, institution: str | None = None) -> tuple[str, str]:
        """A new ``(sessionid, kp3)`` for ``peer_id`` (acting for ``institution`` only, when
        given), valid for ``ttl`` seconds."""
        now = self._clock()
        payload: dict[str, object] = {
            "p": peer_id,
            "i": int(now),
            "e": int(now + self._ttl),
            "n": _b64(os.urandom(12)),
        }
        if institution is not None:
            payload["d"] = institution
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        sig = hmac.digest(self._sig_key, raw, "sha256")
        sessionid = f"{_b64(raw)}.{_b64(sig)}"
        return sessionid, self._kp3(sessionid)

    def verify(self, sessionid: str, kp3: str) -> SessionClaims | None:
        """The claims of a valid, unexpired, not locally revoked session; else None."""
        if len(sessionid) > 512 or not sessionid.isascii() or sessionid.count(".") != 1:
            return None
        raw_b64, _, sig_b64 = sessionid.partition(".")
        try:
            raw, sig = _unb64(raw_b64), _unb64(sig_b64)
        except (binascii.Error, ValueError):
            return None
        expected = hmac.digest(self._sig_key, raw, "sha256")
        kp3_ok = hmac.compare_digest(self._kp3(sessionid).encode(), kp3.encode("utf-8", "replace"))
        if not hmac.compare_digest(expected, sig) or not kp3_ok:
            return None
        try:
            data = json.loads(raw)
            domain = data.get("d")
            claims = SessionClaims(
                str(data["p"]),
                float(data["i"]),
                float(data["e"]),
                str(data["n"]),
                None if domain is None else str(domain),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if claims.expires <= self._clock() or claims.nonce in self._revoked:
            return None
        return claims

    def revoke(self, claims: SessionClaims) -> None:
        """End a session on this replica (until its expiry, after which it is invalid anyway)."""
        now = self._clock()
        for nonce, expires in list(self._revoked.items()):
            if expires <= now:
                del self._revoked[nonce]
        self._revoked[claims.nonce] = claims.expires

    @staticmethod
    def looks_like_session(user: str) -> bool:
        """Cheap pre-check so Basic user names are not all parsed as sessions."""
        return "." in user and len(user) > 40
