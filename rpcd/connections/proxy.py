"""Outbound HTTP proxies: which proxy a call goes through, and the ``CONNECT`` tunnel.

Which proxy (``proxy_for``): a connection's own ``proxy`` table wins; ``proxy = false`` means
direct; otherwise the site's ``[proxy]`` of rpcd.toml unless the endpoint's host is in its
``no_proxy``; otherwise, only when the operator turned on ``outbound_proxy_from_env``, the
standard ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` variables (read once, when the
transport opens). Host patterns are compared by suffix, without regular expressions: linear
in their length.

How: an ``http://`` target is sent to the proxy in absolute form (``GET http://host/path``)
with ``Proxy-Authorization``; an ``https://`` target gets a ``CONNECT host:port`` tunnel, then
the TLS handshake runs through it with the certificate checked against the *target* host (the
proxy never sees the request, the credentials or the answer). The proxy's answer to
``CONNECT`` is bounded like any answer's head (``HeadLimits``: its bytes, lines and line
length), and anything but a 2xx closes the tunnel with an error that names the proxy and its
status, never its credentials.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from yarl import URL

from rpcd.config.endpoints import host_matches
from rpcd.config.models import ProxyServer, SiteProxy
from rpcd.connections.headlimits import AnswerOverLimit, HeadLimits, HeadScanner
from rpcd.secrets import SecretStore

__all__ = [
    "EnvProxies",
    "ProxyError",
    "ProxyHop",
    "open_tunnel",
    "proxy_for",
]

MAX_ENV_ENTRIES = 256  # NO_PROXY entries read at most (the rest are ignored, and logged once)
MAX_ENV_CHARS = 8192  # an environment variable longer than this is not read


class ProxyError(ConnectionError):
    """The proxy could not be reached, refused the tunnel, or answered something else."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


@dataclass(frozen=True, slots=True)
class ProxyHop:
    """One proxy as the pool uses it: where it is and the ``Proxy-Authorization`` value (never
    shown: ``repr`` and messages name the host and port only)."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"proxy {host}:{self.port}"


def hop_of(server: ProxyServer | URL, secrets: SecretStore | None) -> ProxyHop:
    """The hop of a configured proxy (credentials resolved from ``secrets``) or of an
    environment URL (which carries none: env credentials are not read)."""
    url = server if isinstance(server, URL) else URL(server.url)
    authorization = None
    if isinstance(server, ProxyServer) and server.username and server.password:
        if secrets is None:
            raise ProxyError("the proxy's credentials are not available")
        user = secrets.get(server.username).get_secret_value()
        password = secrets.get(server.password).get_secret_value()
        blob = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {blob}"
    return ProxyHop(url.raw_host or "", url.port or 80, authorization)


def proxy_for(
    url: URL,
    own: ProxyServer | bool | None,
    site: SiteProxy | None,
    env: EnvProxies | None,
    secrets: SecretStore | None,
) -> ProxyHop | None:
    """The proxy a call to ``url`` goes through, or ``None`` for a direct call (see the module
    docstring for the order)."""
    if own is False:
        return None
    if isinstance(own, ProxyServer):
        return hop_of(own, secrets)
    host = (url.raw_host or "").lower()
    if site is not None:
        if site.no_proxy and host_matches(_bracketed(host), site.no_proxy):
            return None
        return hop_of(site, secrets)
    if env is not None:
        return env.hop(url.scheme, host)
    return None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True)
class EnvProxies:
    """``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (upper or lower case), read once."""

    https: ProxyHop | None = None
    http: ProxyHop | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EnvProxies:
        def get(name: str) -> str:
            value = environ.get(name) or environ.get(name.lower()) or ""
            return value.strip() if len(value) <= MAX_ENV_CHARS else ""

        no_proxy = tuple(
            entry.strip().lower()
            for entry in get("NO_PROXY").split(",", MAX_ENV_ENTRIES)[:MAX_ENV_ENTRIES]
            if entry.strip()
        )
        return cls(_env_hop(get("HTTPS_PROXY")), _env_hop(get("HTTP_PROXY")), no_proxy)

    def hop(self, scheme: str, host: str) -> ProxyHop | None:
        chosen = self.https if scheme == "https" else self.http
        if chosen is None or self._excluded(host):
            return None
        return chosen

    def _excluded(self, host: str) -> bool:
        """curl's NO_PROXY: ``*`` for every host; ``name`` or ``.name`` for the name and any
        name under it; an IP address as written."""
        for entry in self.no_proxy:
            if entry == "*":
                return True
            domain = entry.lstrip(".").split(":", 1)[0] if not entry.startswith("[") else entry
            domain = domain.strip("[]")
            if host == domain or host.endswith("." + domain):
                return True
        return False


def _env_hop(value: str) -> ProxyHop | None:
    """A proxy URL from the environment (``http://host:port``; a bare ``host:port`` too).
    Credentials in it are not used: proxy credentials come from secret references only."""
    if not value:
        return None
    if "://" not in value:
        value = "http://" + value
    try:
        url = URL(value)
    except ValueError:
        return None
    if url.scheme != "http" or not url.raw_host:
        return None
    return ProxyHop(url.raw_host, url.port or 80)


# ------------------------------------------------------------------------------ the tunnel


class _TunnelReply(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT``: its head only, within ``HeadLimits``."""

    def __init__(self, limits: HeadLimits) -> None:
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._scanner = HeadScanner(limits)
        self._head = bytearray()
        self.extra = False

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            end = self._scanner.scan(data, 0)
        except AnswerOverLimit as exc:
            self.done.set_exception(ProxyError(f"the proxy's answer to CONNECT: {exc}"))
            return
        if end < 0:
            self._head += data
            return
        self.extra = end != len(data)  # bytes after the head: a body, or not a tunnel
        self._head += data[:end]
        self.done.set_result(bytes(self._head))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ProxyError("the proxy closed the connection during CONNECT"))


def connect_status(head: bytes) -> tuple[int, str]:
    """Status code and reason of the proxy's answer head (its first line), parsed without a
    regular expression; ``ProxyError`` when it is not an HTTP/1.x status line."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProxyError("the proxy's answer to CONNECT is not HTTP")
    if len(parts[1]) != 3:
        raise ProxyError("the proxy's answer to CONNECT has no valid status code")
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return int(parts[1]), "".join(c for c in reason[:80] if c.isprintable())


P = TypeVar("P", bound=asyncio.BaseProtocol)


async def open_tunnel(
    hop: ProxyHop,
    host: str,
    port: int,
    context: ssl.SSLContext,
    protocol_factory: Callable[[], P],
    limits: HeadLimits,
) -> P:
    """A TLS connection to ``host:port`` through ``hop``'s ``CONNECT`` tunnel, the
    certificate checked against ``host``; the protocol from ``protocol_factory`` gets the TLS
    transport (``connection_made``), as ``loop.create_connection`` would give it."""
    loop = asyncio.get_running_loop()
    try:
        raw, reply = await loop.create_connection(lambda: _TunnelReply(limits), hop.host, hop.port)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ProxyError(f"cannot connect to the {hop.shown} ({why})") from None
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if hop.authorization is not None:
            lines.append(f"Proxy-Authorization: {hop.authorization}")
        raw.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        status, reason = connect_status(await reply.done)
        if status in (401, 407):  # a CONNECT answer is the proxy's own (some send 401)
            if hop.authorization is None:
                why = "asks for authentication"
                fix = "give the proxy a username and password (secret references)"
            else:
                why, fix = "refused the credentials", "check the proxy's username and password"
            raise ProxyError(f"the {hop.shown} {why} (HTTP {status} {reason}): {fix}")
        if not 200 <= status < 300:
            raise ProxyError(f"the {hop.shown} refused the tunnel (HTTP {status} {reason})")
        if reply.extra:  # before our TLS handshake: whatever it is, it is not the target's
            raise ProxyError(f"the {hop.shown} sent data before the tunnel opened")
        protocol = protocol_factory()
        tls = await loop.start_tls(raw, protocol, context, server_hostname=host)
        if tls is None:  # the loop closed it: nothing to talk to
            raise ProxyError(f"the TLS connection through the {hop.shown} closed")
        protocol.connection_made(tls)
        return protocol
    except BaseException:
        raw.abort()
        raise
