"""The process's one outbound HTTP client: a pool of keep-alive HTTP/1.1 connections.

The wire work is ``rpcd.connections.http1`` (asyncio transports, the httptools parser; why not
aiohttp's ``ClientSession`` is said there). Here: what of a request stays the same from
call to call is made once (``Prepared``: the request line and header block as bytes, the
origin), a call adds Content-Length and the body and sends it in one write; the answer's
body is inflated when the peer compressed it (gzip, deflate: the request offers both), the
size limit counting decoded bytes, so a compression bomb stops at the limit; every failure
becomes a ``ConnectionCallError`` that names the connection and host, never the path, query
or headers (a token may be in any of them).

The per-connection timeout is ``asyncio.timeout`` around the exchange. No cookies are kept
(calls are stateless; a jar would carry one peer's cookies into the next call), no ``.netrc``
is read, the proxy variables of the environment only when ``outbound_proxy_from_env`` says so
(proxies: ``rpcd.connections.proxy``), and redirects are not followed (an RPC endpoint
that moved is a configuration error to report, not a POST to repeat elsewhere).

TLS verification is always on. Each connection gets an ``SSLContext`` built once and cached:
the system store plus the connection's ``ca_bundle`` (trust is only ever added), plus the client
certificate for ``cert`` auth. ``ssl`` loads a certificate only from files: a ``file`` or
systemd ``credential`` reference is loaded in place; a certificate from an environment variable
is written to a fresh private directory (0700, files 0600), loaded, and deleted at once, so the
key rests on disk only for the moment ``load_cert_chain`` reads it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import shutil
import ssl
import tempfile
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any

from multidict import CIMultiDict
from yarl import URL

from rpcd import __version__
from rpcd.connections.auth import CertAuth
from rpcd.connections.headlimits import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_LINE_BYTES,
)
from rpcd.connections.health import HealthBoard
from rpcd.connections.http1 import (
    AnswerOverLimit,
    CannotConnect,
    HeadLimits,
    HTTPPool,
    MalformedResponse,
    Origin,
    ResponseTooLarge,
    ServerDisconnected,
    refuse_unsafe_url,
    request_head,
)
from rpcd.connections.proxy import EnvProxies, ProxyHop
from rpcd.connections.request import OutboundRequest, Response
from rpcd.errors import ConnectionCallError
from rpcd.settings import Settings

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "EndpointFailure",
    "Prepared",
    "Response",
    "Transport",
    "TransportSettings",
]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """The outbound client's limits and pool sizes (docs/operations.md, docs/security.md)."""

    #: An answer's body, decoded (after gzip / deflate).
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: An answer's whole head: status line, header lines, blank line (interim 1xx included).
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    #: Header lines of one head; trailer fields of a chunked answer are counted the same way.
    max_headers: int = DEFAULT_MAX_HEADERS
    #: One line of the answer: the status line (reason phrase), a header line, a chunk-size
    #: line with its extensions, a trailer.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    pool_limit: int = 256
    pool_limit_per_host: int = 64
    keepalive_timeout: float = 30.0
    user_agent: str = f"rpcd/{__version__}"
    #: Read ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` from the environment (for
    #: connections that neither the site's ``[proxy]`` nor their own ``proxy`` covers).
    proxy_from_env: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportSettings:
        """The operator's ``outbound_*`` settings (``RPCD_OUTBOUND_*``, the settings file)."""
        chosen = {
            f.name: getattr(settings, f"outbound_{f.name}")
            for f in fields(cls)
            if f"outbound_{f.name}" in Settings.model_fields
        }
        return cls(**chosen)

    def head_limits(self) -> HeadLimits:
        return HeadLimits(self.max_header_bytes, self.max_headers, self.max_line_bytes)


class Transport:
    """Owns the connection pool; ``async with Transport.open() as t`` (one per process)."""

    def __init__(self, pool: HTTPPool, settings: TransportSettings) -> None:
        self._pool = pool
        self.settings = settings
        self._ssl: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
        #: Each endpoint's last outcome (``rpcd check``, the metrics).
        self.health = HealthBoard()
        #: The environment's proxies, read once (only when the settings say so).
        self.env_proxies = EnvProxies.from_environ(os.environ) if settings.proxy_from_env else None

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: TransportSettings | None = None) -> AsyncIterator[Transport]:
        settings = settings or TransportSettings()
        pool = HTTPPool(
            limit=settings.pool_limit,
            limit_per_host=settings.pool_limit_per_host,
            keepalive_timeout=settings.keepalive_timeout,
            head_limits=settings.head_limits(),
        )
        try:
            yield cls(pool, settings)
        finally:
            await pool.close()

    # ------------------------------------------------------------------------------ TLS

    def ssl_context(self, ca_bundle: str | None, cert: CertAuth | None) -> ssl.SSLContext:
        """The verified context for this trust + client certificate, built once."""
        cert_key: str | None = None
        if cert is not None:
            info = cert.client_cert()
            pem_cert, pem_key = cert.pem()
            # The fingerprint makes a rotated certificate (after a reload) a new context.
            fingerprint = hashlib.sha256(f"{pem_cert}\0{pem_key}".encode()).hexdigest()
            cert_key = f"{info.certificate}|{info.private_key}|{fingerprint}"
        key = (ca_bundle, cert_key)
        ctx = self._ssl.get(key)
        if ctx is None:
            ctx = _build_context(ca_bundle, cert)
            self._ssl[key] = ctx
        return ctx

    # -------------------------------------------------------------------------- sending

    def prepare(
        self, request: OutboundRequest, label: str = "", proxy: ProxyHop | None = None
    ) -> Prepared:
        """What of ``request`` stays the same from call to call (method, URL, headers) as the
        bytes that go on the wire, sent through ``proxy`` if given: see ``Prepared``."""
        headers = CIMultiDict(request.headers)
        for name, value in self._default_headers:
            if name not in headers:
                headers[name] = value
        if request.form is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            refuse_unsafe_url(request.url)
        except ValueError as exc:
            raise ConnectionCallError(f"{label + ': ' if label else ''}{exc}") from None
        url = request.target()
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ConnectionCallError(f"{label + ': ' if label else ''}invalid URL")
        try:
            return Prepared(request.method, url, headers, proxy)
        except ValueError as exc:  # a control character in the request: no request at all
            raise ConnectionCallError(f"{_where(label, request.method, url)}: {exc}") from None

    @functools.cached_property
    def _default_headers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("User-Agent", self.settings.user_agent),
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
        )

    async def send(
        self,
        prepared: Prepared,
        body: bytes | None,
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        max_bytes: int | None = None,
        label: str = "",
    ) -> Response:
        """Send ``body`` to a target from ``prepare`` (made for this call, or once and kept);
        network/TLS/timeout/size failures are ``ConnectionCallError``.

        Messages name the connection and host only: a URL may carry a token in its query.
        """
        limit = self.settings.max_response_bytes if max_bytes is None else max_bytes
        if prepared.https:
            if ssl_context is None:
                ssl_context = self.ssl_context(None, None)
            origin: Origin = (prepared.host, prepared.port, ssl_context, prepared.proxy)
        else:
            origin = prepared.origin
        if body is None:
            data = prepared.head + (b"Content-Length: 0\r\n\r\n" if prepared.has_body else b"\r\n")
        else:
            data = b"%sContent-Length: %d\r\n\r\n%s" % (prepared.head, len(body), body)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                answer = await self._pool.request(origin, prepared.method, data, limit)
            headers = answer.headers
            if answer.status == 407 and prepared.proxy is not None and not prepared.https:
                raise self._failure(label, prepared, _proxy_auth_reason(prepared.proxy), "connect")
            encoding = headers.get("Content-Encoding")
            content = answer.body
            if encoding is not None and encoding.strip().lower() not in ("", "identity"):
                content = _inflate(content, encoding, limit)
            return Response(
                answer.status, answer.reason, headers.get("Content-Type"), headers, content
            )
        except AnswerOverLimit as exc:
            raise self._failure(label, prepared, str(exc), "exchange") from None
        except ResponseTooLarge as exc:
            if exc.announced is not None:
                reason = f"response of {exc.announced} bytes is over the {limit}-byte limit"
            else:
                reason = f"response is over the {limit}-byte limit"
            raise self._failure(label, prepared, reason, "exchange") from None
        except CannotConnect as exc:
            raise self._failure(label, prepared, _connect_reason(exc.cause), "connect") from None
        except (OSError, MalformedResponse, _InflateError) as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                why = f"no answer within {timeout:g} s"
                raise self._failure(label, prepared, why, "timeout") from None
            reason = _exchange_reason(exc)
            if prepared.https and isinstance(exc, ServerDisconnected | ConnectionResetError):
                # TLS 1.3 servers refuse a missing/untrusted client certificate after the
                # handshake, so the client only sees the connection drop (a clean close or a
                # reset, depending on timing).
                reason += " (TLS: the server may require a client certificate)"
            broken = isinstance(exc, ServerDisconnected | ConnectionResetError)
            raise self._failure(label, prepared, reason, "exchange", broken=broken) from None

    @staticmethod
    def _failure(
        label: str, prepared: Prepared, reason: str, stage: str, *, broken: bool = False
    ) -> EndpointFailure:
        where = _where(label, prepared.method, prepared.url)
        if prepared.proxy is not None:
            where += f" via {prepared.proxy.shown}"
        return EndpointFailure(f"{where}: {reason}", stage, broken=broken)


class EndpointFailure(ConnectionCallError):
    """A call that got no answer from one endpoint, and at which stage (what the standby
    logic of ``BoundConnection`` decides on): ``connect`` (no connection was made: TCP, TLS,
    the proxy; nothing was sent), ``timeout`` (no answer in time), ``exchange`` (the connection
    broke or the answer was unreadable or over a limit: the request may have been received)."""

    def __init__(self, message: str, stage: str, *, broken: bool = False) -> None:
        super().__init__(message)
        self.stage = stage
        self.broken = broken  # the connection closed or reset before the answer was complete


def _proxy_auth_reason(hop: ProxyHop) -> str:
    if hop.authorization is None:
        return f"the {hop.shown} asks for authentication (HTTP 407): give it credentials"
    return f"the {hop.shown} refused the credentials (HTTP 407): check its username and password"


class Prepared:
    """A request's method, URL and headers, made once and sent many times.

    ``head`` is the request line and header block as bytes (no Content-Length, no blank line);
    ``origin`` the pool's key for plain http. ``BoundConnection`` keeps one per function for XML-RPC
    and SOAP, whose URL and headers (credentials included) do not depend on the call's
    parameters; it lives as long as the BoundConnection, that is one catalog and secret generation,
    and its ``repr`` shows neither query nor headers (either may carry a credential).
    """

    __slots__ = (
        "has_body",
        "head",
        "headers",
        "host",
        "https",
        "method",
        "origin",
        "port",
        "proxy",
        "url",
    )

    def __init__(
        self, method: str, url: URL, headers: CIMultiDict[str], proxy: ProxyHop | None = None
    ) -> None:
        self.method, self.url, self.headers, self.proxy = method, url, headers, proxy
        self.https = url.scheme == "https"
        self.host = url.raw_host or ""
        self.port = url.port or (443 if self.https else 80)
        self.origin: Origin = (self.host, self.port, None, proxy)
        self.has_body = method not in ("GET", "HEAD", "DELETE", "OPTIONS")
        target = url.raw_path_qs or "/"
        authority = url.host_port_subcomponent or self.host
        if proxy is not None and not self.https:  # absolute form, and the proxy's credentials
            target = f"http://{authority}{target}"
            if proxy.authorization is not None:
                headers = CIMultiDict(headers)
                headers["Proxy-Authorization"] = proxy.authorization
        self.head = request_head(method, target, authority, headers)

    def __repr__(self) -> str:
        return f"Prepared({self.method} {self.url.scheme}://{self.url.host}{self.url.path})"

    def __reduce__(self) -> Any:  # a pickle would carry the credentials
        raise TypeError("Prepared requests cannot be pickled")


def _where(label: str, method: str, url: URL) -> str:
    """Connection, method and host for a message (never the path or query: a token may be
    there). Built only when something failed; a method or host that the request builder
    refused for a control character is shown escaped."""
    where = f"{label + ': ' if label else ''}{_shown(method)} {url.scheme}://{_shown(url.host)}"
    if url.port and not url.is_default_port():
        where += f":{url.port}"
    return where


def _shown(text: str | None) -> str:
    text = text or ""
    return text if text.isprintable() else ascii(text)[1:-1]


class _InflateError(Exception):
    """A compressed body that does not inflate, or a coding this client did not offer."""


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded per ``Content-Encoding`` (gzip, deflate), at most ``limit`` bytes:
    inflating stops at the limit, so a small bomb never becomes a large buffer.

    The body must be exactly one complete stream: a truncated one (no end marker, or for
    gzip no CRC and length trailer) or bytes after its end (a second gzip member, garbage
    after a deflate stream) are errors, never a silently shortened or partial answer. gzip(1)
    and CPython's ``gzip.decompress`` would decode further members; an HTTP answer is one
    member in practice, and anything after the first is refused rather than guessed at.
    """
    coding = encoding.strip().lower()
    if coding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send
        raw = len(body) < 2 or (body[0] & 0x0F != 8 or (body[0] << 8 | body[1]) % 31 != 0)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    else:
        raise _InflateError(f"the response uses Content-Encoding {coding[:40]!r}, not offered")
    try:
        content = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise _InflateError(f"the {coding} response body does not inflate") from None
    if len(content) > limit or inflater.unconsumed_tail:
        raise ResponseTooLarge(None)
    if not inflater.eof:
        raise _InflateError(f"the {coding} response body is truncated")
    if inflater.unused_data:
        raise _InflateError(
            f"the {coding} response body has bytes after the end of its compressed stream"
        )
    return content


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return type(exc).__name__


def _connect_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({_ssl_reason(exc)})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({_ssl_reason(exc)})"
    return f"cannot connect ({exc.strerror or type(exc).__name__})"


def _exchange_reason(exc: BaseException) -> str:
    """A short reason that never quotes the request (a token may be in it)."""
    if isinstance(exc, ServerDisconnected):
        if exc.answered:
            return "the server closed the connection before the answer was complete"
        return "the server closed the connection without answering"
    if isinstance(exc, MalformedResponse):
        return (
            f"the answer is not valid HTTP ({exc})" if str(exc) else "the answer is not valid HTTP"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({_ssl_reason(exc)})"
    if isinstance(exc, OSError):
        return f"connection error ({exc.strerror or type(exc).__name__})"
    return str(exc)


def _build_context(ca_bundle: str | None, cert: CertAuth | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # CERT_REQUIRED + hostname check, system store
    if ca_bundle:
        try:
            ctx.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionCallError(
                f"ca_bundle {ca_bundle}: cannot load ({_ssl_reason(exc)})"
            ) from None
    if cert is not None:
        _load_client_cert(ctx, cert)
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, cert: CertAuth) -> None:
    info = cert.client_cert()
    what = f"client certificate {info.certificate} / key {info.private_key}"
    try:
        if info.cert_path and info.key_path:
            ctx.load_cert_chain(info.cert_path, info.key_path)
            return
        directory = tempfile.mkdtemp(prefix="rpcd-cert-")  # mode 0700
        try:
            pem_cert, pem_key = cert.pem()
            cert_file = _write_private(directory, "cert.pem", info.cert_path, pem_cert)
            key_file = _write_private(directory, "key.pem", info.key_path, pem_key)
            ctx.load_cert_chain(cert_file, key_file)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionCallError(f"{what}: cannot load ({_ssl_reason(exc)})") from None


def _write_private(directory: str, name: str, existing: str | None, text: str) -> str:
    if existing:
        return existing
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return path
