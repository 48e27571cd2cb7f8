"""Outbound authentication, one small class per ``auth`` kind.

Each piece holds its secrets as ``SecretStr`` and touches a request only through two hooks:
``sign`` (after the body is built: headers, query, form, OAuth signature) and ``wsse_token``
(SOAP's UsernameToken goes inside the envelope); ``CertAuth``'s client certificate is read by
the transport for TLS. ``repr`` never shows a value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import ClassVar, Literal, cast

from oauthlib import oauth1
from pydantic import SecretStr

from rpcd.codecs.soap import UsernameToken
from rpcd.config import ResolvedConnection
from rpcd.connections.request import ClientCert, OutboundRequest
from rpcd.secrets import SecretStore, credential_path

__all__ = [
    "Auth",
    "BasicAuth",
    "CertAuth",
    "OAuth1Auth",
    "TokenAuth",
    "WsseAuth",
    "make_auth",
]

FORM = "application/x-www-form-urlencoded"


class Auth:
    """No authentication; the base of every kind."""

    kind: ClassVar[str] = "none"
    # Whether ``sign`` must see every request. False: what it adds to a request without a
    # form (headers, query) is the same every time, so a connection may sign a request's
    # target once and reuse it (``BoundConnection``); True for OAuth (nonce, timestamp, body).
    per_call: ClassVar[bool] = False

    def sign(self, request: OutboundRequest) -> None:
        """Add credentials to a fully built request."""

    def wsse_token(self) -> UsernameToken | None:
        return None

    def derived_secrets(self) -> tuple[str, ...]:
        """Values computed from the credentials and sent as they are on every request (a
        remote may echo them, so they are masked like the credentials themselves). Values
        made fresh per request (an OAuth signature, a WS-Security digest) are not listed."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TokenAuth(Auth):
    """A token as a query/form parameter (Moodle's ``wstoken``) or in a header.

    In a header, ``Authorization`` gets ``Bearer <token>``, any other header the bare token.
    As a parameter it goes into the form body when there is one (kept out of access logs),
    else into the query string.
    """

    kind = "token"

    def __init__(self, token: SecretStr, *, param: str | None, header: str | None) -> None:
        if (param is None) == (header is None):
            raise ValueError("token auth needs exactly one of a parameter or a header")
        self._token, self.param, self.header = token, param, header
        self._bearer = header is not None and header.lower() == "authorization"

    def sign(self, request: OutboundRequest) -> None:
        token = self._token.get_secret_value()
        if self.header is not None:
            request.headers[self.header] = "Bearer " + token if self._bearer else token
        elif request.form is not None:
            request.form.append((str(self.param), token))
        else:
            request.query.append((str(self.param), token))

    def __repr__(self) -> str:
        where = f"header={self.header!r}" if self.header else f"param={self.param!r}"
        return f"TokenAuth({where})"


class BasicAuth(Auth):
    """HTTP Basic (RFC 7617, UTF-8)."""

    kind = "userpass"

    def __init__(self, username: SecretStr, password: SecretStr) -> None:
        self._username, self._password = username, password

    def sign(self, request: OutboundRequest) -> None:
        request.headers["Authorization"] = "Basic " + self._blob()

    def derived_secrets(self) -> tuple[str, ...]:
        return (self._blob(),)

    def _blob(self) -> str:
        pair = f"{self._username.get_secret_value()}:{self._password.get_secret_value()}"
        return base64.b64encode(pair.encode()).decode()


OAuthPlacement = Literal["header", "query", "body"]
_OAUTH_TYPES: dict[str, str] = {
    "header": oauth1.SIGNATURE_TYPE_AUTH_HEADER,
    "query": oauth1.SIGNATURE_TYPE_QUERY,
    "body": oauth1.SIGNATURE_TYPE_BODY,
}


class OAuth1Auth(Auth):
    """OAuth 1.0a, HMAC-SHA1, two-legged (consumer key and secret, no token).

    Signs the exact URL and form body that will be sent, so it must run last. ``placement``
    puts the oauth_* parameters in the Authorization header (default), the query string, or
    the form body (form requests only).
    """

    kind = "oauth1"
    per_call = True

    def __init__(
        self,
        consumer_key: SecretStr,
        consumer_secret: SecretStr,
        *,
        placement: OAuthPlacement = "header",
    ) -> None:
        if placement not in _OAUTH_TYPES:
            raise ValueError(f"OAuth placement must be one of {sorted(_OAUTH_TYPES)}")
        self._key, self._secret, self.placement = consumer_key, consumer_secret, placement

    def sign(self, request: OutboundRequest) -> None:
        client = oauth1.Client(
            self._key.get_secret_value(),
            client_secret=self._secret.get_secret_value(),
            signature_method=oauth1.SIGNATURE_HMAC_SHA1,
            signature_type=_OAUTH_TYPES[self.placement],
        )
        is_form = request.form is not None
        if self.placement == "body" and not is_form:
            raise ValueError(
                "OAuth body placement needs a form-encoded request (payload url, POST)"
            )
        headers = dict(request.headers)
        body: str | None = None
        if is_form:
            headers["Content-Type"] = FORM
            body = (request.payload() or b"").decode("ascii")
        uri, signed_headers, signed_body = client.sign(
            request.full_url(), http_method=request.method, body=body, headers=headers
        )
        request.url, request.query = uri, []
        request.headers = {str(k): str(v) for k, v in signed_headers.items()}
        if is_form:
            request.form = None
            request.body = (signed_body or "").encode("ascii")

    def __repr__(self) -> str:
        return f"OAuth1Auth(placement={self.placement!r})"


class WsseAuth(Auth):
    """WS-Security UsernameToken in the SOAP header; a fresh nonce and Created per call."""

    kind = "wsse"

    def __init__(
        self, username: SecretStr, password: SecretStr, *, password_type: Literal["digest", "text"]
    ) -> None:
        self._username, self._password, self.password_type = username, password, password_type

    def wsse_token(self) -> UsernameToken:
        return UsernameToken(
            self._username.get_secret_value(), self._password, password_type=self.password_type
        )

    def __repr__(self) -> str:
        return f"WsseAuth(password_type={self.password_type!r})"


class CertAuth(Auth):
    """TLS client certificate; the transport builds (and caches) the SSL context from it."""

    kind = "cert"

    def __init__(self, cert: ClientCert, certificate: SecretStr, private_key: SecretStr) -> None:
        self._cert, self._certificate, self._private_key = cert, certificate, private_key

    def client_cert(self) -> ClientCert:
        return self._cert

    def pem(self) -> tuple[str, str]:
        """Certificate and key PEM text, for the transport when they are not files."""
        return self._certificate.get_secret_value(), self._private_key.get_secret_value()

    def __repr__(self) -> str:
        return f"CertAuth(certificate={self._cert.certificate!r})"


def _token(conn: ResolvedConnection, get: Callable[[str], SecretStr]) -> Auth:
    return TokenAuth(get("token"), param=conn.token_param, header=conn.token_header)


def _basic(conn: ResolvedConnection, get: Callable[[str], SecretStr]) -> Auth:
    return BasicAuth(get("username"), get("password"))


def _oauth(conn: ResolvedConnection, get: Callable[[str], SecretStr]) -> Auth:
    # The catalog fills in the default and validation limits the values; OAuth1Auth checks too.
    placement = cast(OAuthPlacement, conn.oauth_placement or "header")
    return OAuth1Auth(get("consumer_key"), get("consumer_secret"), placement=placement)


def _wsse(conn: ResolvedConnection, get: Callable[[str], SecretStr]) -> Auth:
    kind: Literal["digest", "text"] = "text" if conn.wsse_password_type == "text" else "digest"
    return WsseAuth(get("username"), get("password"), password_type=kind)


def _cert(conn: ResolvedConnection, get: Callable[[str], SecretStr]) -> Auth:
    cert_ref, key_ref = conn.credentials["certificate"], conn.credentials["private_key"]
    certificate, private_key = get("certificate"), get("private_key")
    cert_path, key_path = credential_path(cert_ref), credential_path(key_ref)
    info = ClientCert(
        str(cert_ref),
        str(key_ref),
        str(cert_path) if cert_path else None,
        str(key_path) if key_path else None,
    )
    return CertAuth(info, certificate, private_key)


AUTH_FACTORIES: dict[str, Callable[[ResolvedConnection, Callable[[str], SecretStr]], Auth]] = {
    "token": _token,
    "userpass": _basic,
    "oauth1": _oauth,
    "wsse": _wsse,
    "cert": _cert,
}


def make_auth(conn: ResolvedConnection, secrets: SecretStore) -> Auth:
    """The auth piece for a connection. ``SecretError`` (naming the reference) if unresolved."""
    factory = AUTH_FACTORIES.get(conn.auth)
    if factory is None:
        raise ValueError(f"connection {conn.full_id}: unknown auth {conn.auth!r}")
    return factory(conn, lambda key: secrets.get(conn.credentials[key]))
