"""Hashes for inbound credentials: sha256 for random tokens, scrypt for passwords.

Peers in services.d hold only these. Verification is constant time, and a user name that
no peer has is verified too, against a hash no password matches (``unmatchable_like``) with
the same cost parameters: an unknown user costs the same scrypt work as a wrong password, so
the time of a failed login does not tell which user names exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections import Counter
from collections.abc import Iterable

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def verify_token(token: str, expected_hex: str) -> bool:
    return hmac.compare_digest(token_sha256(token), expected_hex)


def scrypt_hash(
    password: str,
    *,
    salt: bytes | None = None,
    n: int = SCRYPT_N,
    r: int = SCRYPT_R,
    p: int = SCRYPT_P,
) -> str:
    """``scrypt:N:r:p:salt:hash`` (base64), the format peers' ``password_hash`` takes."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt:{n}:{r}:{p}:{b64(salt).decode()}:{b64(digest).decode()}"


def scrypt_params(encoded: str) -> tuple[int, int, int, int, int] | None:
    """``(n, r, p, salt bytes, hash bytes)`` of a ``scrypt:`` hash; None if it is not one."""
    try:
        kind, n, r, p, salt_b64, hash_b64 = encoded.split(":")
        if kind != "scrypt":
            return None
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        return int(n), int(r), int(p), len(salt), len(digest)
    except ValueError:
        return None


def unmatchable_like(hashes: Iterable[str]) -> str:
    """A scrypt hash no password matches (random salt and digest), with the cost parameters
    most of ``hashes`` share (the defaults when there are none): what an unknown user name is
    verified against."""
    counts = Counter(params for h in hashes if (params := scrypt_params(h)) is not None)
    n, r, p, salt_len, hash_len = (
        counts.most_common(1)[0][0] if counts else (SCRYPT_N, SCRYPT_R, SCRYPT_P, 16, 32)
    )
    b64 = base64.b64encode
    salt, digest = os.urandom(max(salt_len, 1)), os.urandom(max(hash_len, 1))
    return f"scrypt:{n}:{r}:{p}:{b64(salt).decode()}:{b64(digest).decode()}"


def verify_scrypt(password: str, encoded: str) -> bool:
    try:
        _, n, r, p, salt_b64, hash_b64 = encoded.split(":")
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=2**26,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)
