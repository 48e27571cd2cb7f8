"""Hashes for inbound credentials: sha256 for random tokens, scrypt for passwords.

Peers in services.d hold only these. Verification is constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

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
