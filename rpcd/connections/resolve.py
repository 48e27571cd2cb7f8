"""``connections_for``: the applicable connections of a class, ready to call.

Which connections apply (enabled, global or sharing an institution, by priority then id, none
when the master switch is off) is ``rpcd.routing.applicable``, shared with ``rpcd diff``. This
module binds them to the transport and their secrets as ``BoundConnection`` objects:
introspection plus ``call`` (through the protocol clients of ``rpcd.connections.clients``),
and no way to read a secret back out.

``connections_for`` runs on every call the daemon forwards, so its result is cached per
transport, (catalog, secret store) generation and (class, institutions): both objects are
immutable (a reload builds new ones), so a new catalog or store is a new generation and the
old one ages out. Building a ``BoundConnection`` (auth pieces, secrets looked up) then happens
once per generation instead of once per call.
"""

from __future__ import annotations

import ssl
import time
import weakref
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from yarl import URL

from rpcd.config import Catalog, ResolvedConnection
from rpcd.config.models import SiteProxy, Value
from rpcd.connections.auth import Auth, CertAuth, make_auth
from rpcd.connections.clients import CLIENTS, TARGET_CLIENTS, TargetClient
from rpcd.connections.masking import connection_masker
from rpcd.connections.proxy import ProxyError, ProxyHop, proxy_for
from rpcd.connections.request import ParameterError
from rpcd.connections.standby import EndpointTry, moves_on
from rpcd.connections.transport import EndpointFailure, Prepared, Transport
from rpcd.errors import ConnectionCallError, RpcdError, SecretError
from rpcd.routing import applicable
from rpcd.secrets import SecretStore

__all__ = ["BoundConnection", "connections_for"]


class _Endpoint:
    """One URL of a connection (its primary or a standby): the connection as the protocol
    clients read it (``endpoint`` set to this URL), its proxy, its signed targets."""

    __slots__ = ("conn", "https", "prepared", "proxy", "shown")

    def __init__(self, conn: ResolvedConnection, shown: str, proxy: ProxyHop | None) -> None:
        self.conn, self.shown, self.proxy = conn, shown, proxy
        self.https = conn.endpoint.startswith("https:")
        self.prepared: dict[str, Prepared] = {}  # XML-RPC and SOAP: per function


class BoundConnection:
    """One connection instance bound to the process transport.

    Read-only introspection (the Mahara spec's list) and ``await call(function, params)``.
    ``repr``/``str``/``describe()`` show secret *references* at most, never values.
    Objects from ``connections_for`` are shared by concurrent callers (they hold no per-call
    state); ``last_latency`` is that of the latest call to finish.
    """

    __slots__ = (
        "_auth",
        "_cert",
        "_client",
        "_conn",
        "_endpoints",
        "_full_id",
        "_mask",
        "_ssl",
        "_targets",
        "_transport",
        "_unavailable",
        "last_latency",
    )

    def __init__(
        self,
        conn: ResolvedConnection,
        *,
        secrets: SecretStore,
        transport: Transport,
        site_proxy: SiteProxy | None = None,
    ) -> None:
        self._conn = conn
        self._transport = transport
        self._auth: Auth | None = None
        self._unavailable: str | None = None
        self._client = CLIENTS[conn.type]
        self._full_id = conn.full_id
        self._ssl: ssl.SSLContext | None = None  # built on the first https call, then kept
        self.last_latency: float | None = None  # of the latest call (shared when cached)
        try:
            self._auth = make_auth(conn, secrets)
        except SecretError as exc:  # the connection exists, but cannot be called
            self._unavailable = f"{conn.full_id}: {exc}"
        self._cert = isinstance(self._auth, CertAuth)
        # A signed target is kept per function unless the auth signs every request (OAuth).
        per_call = self._auth is None or self._auth.per_call
        self._targets = None if per_call else TARGET_CLIENTS.get(conn.type)
        self._endpoints = self._bind_endpoints(conn, secrets, transport, site_proxy)
        # What the remote may echo of the credentials, masked in every error and result.
        derived = list(self._auth.derived_secrets()) if self._auth is not None else []
        for endpoint in self._endpoints:  # the proxy's, too: a proxy may echo a request
            if endpoint.proxy is not None and endpoint.proxy.authorization is not None:
                derived += _proxy_secrets(endpoint.proxy, conn, site_proxy, secrets)
        self._mask = connection_masker(conn, secrets, derived)

    def _bind_endpoints(
        self,
        conn: ResolvedConnection,
        secrets: SecretStore,
        transport: Transport,
        site_proxy: SiteProxy | None,
    ) -> tuple[_Endpoint, ...]:
        """Each URL in order, with the proxy it goes through; a proxy whose credentials do
        not resolve leaves the connection uncallable (like its own credentials would)."""
        bound = []
        shown = conn.shown_endpoints()
        for index, url in enumerate(conn.urls):
            variant = conn if url == conn.endpoint else conn.model_copy(update={"endpoint": url})
            hop = None
            try:
                hop = proxy_for(URL(url), conn.proxy, site_proxy, transport.env_proxies, secrets)
            except (SecretError, ProxyError, ValueError) as exc:
                self._unavailable = f"{conn.full_id}: proxy: {exc}"
            bound.append(_Endpoint(variant, shown[index], hop))
        return tuple(bound)

    # ----------------------------------------------------------------- introspection

    @property
    def class_id(self) -> str:
        return self._conn.class_id

    @property
    def id(self) -> str:
        return self._conn.id

    @property
    def full_id(self) -> str:
        return self._full_id

    @property
    def name(self) -> str | None:
        return self._conn.name

    @property
    def is_global(self) -> bool:
        return self._conn.is_global

    @property
    def institution_specific(self) -> bool:
        return not self._conn.is_global

    @property
    def institutions(self) -> tuple[str, ...]:
        return self._conn.institutions

    @property
    def priority(self) -> int:
        return self._conn.priority

    @property
    def version(self) -> str | None:
        return self._conn.version

    @property
    def protocol(self) -> str:
        """``REST``, ``XML-RPC`` or ``SOAP``."""
        return self._conn.type

    type = protocol

    @property
    def encoding(self) -> str:
        """The payload encoding: ``url``, ``json``, ``xml`` or ``soap``."""
        return self._conn.payload

    payload = encoding

    @property
    def auth_type(self) -> str:
        return self._conn.auth

    @property
    def parameters(self) -> Mapping[str, Value]:
        return MappingProxyType(self._conn.parameters)

    @property
    def config(self) -> Mapping[str, Value]:
        return MappingProxyType(self._conn.config)

    @property
    def endpoint(self) -> str:
        return self._conn.endpoint

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every endpoint as shown to people, in the order tried (primary, then standbys)."""
        return tuple(e.shown for e in self._endpoints)

    @property
    def fatal(self) -> bool:
        return self._conn.fatal

    @property
    def timeout(self) -> float:
        return self._conn.timeout

    @property
    def callable(self) -> bool:
        """False when a secret of this connection could not be resolved."""
        return self._unavailable is None

    def describe(self) -> dict[str, Any]:
        """Introspection as plain data (credentials as references such as ``env:NAME``)."""
        c = self._conn
        return {
            "class": c.class_id,
            "id": c.id,
            "full_id": c.full_id,
            "name": c.name,
            "global": c.is_global,
            "institutions": list(c.institutions),
            "priority": c.priority,
            "version": c.version,
            "protocol": c.type,
            "encoding": c.payload,
            "auth": c.auth,
            "credentials": {k: str(v) for k, v in c.credentials.items()},
            "parameters": c.shown_parameters(),
            "http_method": c.http_method,
            "endpoint": c.shown_endpoint(),
            "endpoints": list(self.endpoints),
            "proxied": [e.proxy.shown if e.proxy else None for e in self._endpoints],
            "fatal": c.fatal,
            "timeout": c.timeout,
            "callable": self.callable,
        }

    def __repr__(self) -> str:
        c = self._conn
        shown = c.shown_endpoint()
        return f"<BoundConnection {c.full_id} {c.type}/{c.payload} auth={c.auth} {shown}>"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # a pickle would carry the secrets
        raise TypeError("BoundConnection objects cannot be pickled")

    # -------------------------------------------------------------------------- call

    async def call(self, function: str, params: Any = None) -> Any:
        """Call ``function`` on the remote. Raises ``ParameterError`` (before any request),
        ``ConnectionCallError`` (no answer), ``RemoteFault`` (the remote's error) or a
        ``CodecError`` (an answer that could not be read).

        The endpoints are tried in order as ``call_endpoints`` says; the error raised is
        that of the last one tried. Every text of those errors and every string of the result
        has this connection's credentials masked (``rpcd.connections.masking``): a remote may
        quote the request."""
        tries = await self.call_endpoints(function, params)
        last = tries[-1]
        if last.error is not None:
            raise last.error
        return last.result

    async def call_endpoints(
        self, function: str, params: Any = None, *, every: bool = False
    ) -> list[EndpointTry]:
        """Call ``function`` on the primary endpoint, then on each standby while the failure
        is one that moves on (``standby.moves_on``: no connection, no answer in time, a 5xx
        without the protocol's fault, a broken idempotent exchange). Returns every try in
        order; the last one holds the result or the error that stopped. Errors before any
        request (parameters, credentials) are raised.

        ``every``: call each endpoint once whatever the others did (``rpcd check``'s probe of
        each endpoint's health; a probe is a harmless call)."""
        if not isinstance(function, str) or not function:
            raise ParameterError("the function name must be a non-empty string")
        auth, client = self._auth, self._client
        try:
            # Parameter shapes are checked first, then the credentials, then the request.
            args = client.check_params(params)
            if auth is None or self._unavailable is not None:  # a credential or proxy secret
                raise self._no_credentials()
        except RpcdError as exc:
            raise self._mask.exception(exc) from None
        tries: list[EndpointTry] = []
        last = len(self._endpoints) - 1
        for index, endpoint in enumerate(self._endpoints):
            one, moving_on = await self._try(endpoint, function, args, auth)
            tries.append(one)
            if every:
                continue
            if one.error is None or not moving_on or index == last:
                break
        return tries

    async def _try(
        self, endpoint: _Endpoint, function: str, args: Any, auth: Auth
    ) -> tuple[EndpointTry, bool]:
        """One endpoint's try, recorded on the health board; and whether a failure moves on."""
        started = time.perf_counter()
        method = ""
        health = self._transport.health
        try:
            prepared, body = self._request(endpoint, function, args, auth)
            method = prepared.method
            ssl_context = self._ssl
            if ssl_context is None and (endpoint.https or self._cert):
                ssl_context = self._ssl_context(endpoint, auth)
            try:
                response = await self._transport.send(
                    prepared,
                    body,
                    timeout=self._conn.timeout,
                    ssl_context=ssl_context,
                    label=self._full_id,
                )
            finally:
                self.last_latency = time.perf_counter() - started
            decoded = self._client.decode(endpoint.conn, response)
            result = self._mask.result(decoded, response.body)
        except RpcdError as exc:
            error = self._mask.exception(exc)
            error.__cause__, error.__suppress_context__ = None, True  # the remote's texts
            on = moves_on(error, method)
            health.record(self._full_id, endpoint.shown, ok=not (on or _no_answer(error)))
            return EndpointTry(endpoint.shown, None, error, time.perf_counter() - started), on
        health.record(self._full_id, endpoint.shown, ok=True)
        return EndpointTry(endpoint.shown, result, None, time.perf_counter() - started), False

    def _request(
        self, endpoint: _Endpoint, function: str, args: Any, auth: Auth
    ) -> tuple[Prepared, bytes | None]:
        """This call's request as the transport sends it: the signed target kept per function
        where the protocol and the auth allow (see ``_prepare``), else built and signed now."""
        targets = self._targets
        conn = endpoint.conn
        if targets is not None:
            body = targets.body(conn, function, args, auth)
            prepared = endpoint.prepared.get(function)
            return prepared or self._prepare(endpoint, targets, function, auth), body
        request = self._client.build(conn, function, args, auth)
        auth.sign(request)
        prepared = self._transport.prepare(request, self._full_id, endpoint.proxy)
        return prepared, request.payload()

    def _prepare(
        self, endpoint: _Endpoint, targets: TargetClient, function: str, auth: Auth
    ) -> Prepared:
        """The signed target of ``function`` (XML-RPC, SOAP), made once and kept: the
        endpoint parsed, the headers and credentials in place; only the body changes."""
        request = targets.target(endpoint.conn, function)
        auth.sign(request)
        prepared = self._transport.prepare(request, self._full_id, endpoint.proxy)
        if len(endpoint.prepared) >= _PREPARED_KEPT:  # function names come from callers
            endpoint.prepared.clear()
        endpoint.prepared[function] = prepared
        return prepared

    def _ssl_context(self, endpoint: _Endpoint, auth: Auth) -> ssl.SSLContext | None:
        ssl_context = self._ssl
        if ssl_context is None and endpoint.https:
            cert = auth if isinstance(auth, CertAuth) else None
            ssl_context = self._ssl = self._transport.ssl_context(self._conn.ca_bundle, cert)
        elif not endpoint.https and isinstance(auth, CertAuth):
            raise ConnectionCallError(f"{self.full_id}: certificate auth needs an https endpoint")
        return ssl_context

    def _no_credentials(self) -> ConnectionCallError:
        return ConnectionCallError(self._unavailable or f"{self.full_id}: no credentials")


def connections_for(
    catalog: Catalog,
    class_id: str,
    institutions: Sequence[str],
    *,
    secrets: SecretStore,
    transport: Transport,
) -> list[BoundConnection]:
    """The enabled connections of ``class_id`` for a user in ``institutions``, in call order.

    Global connections and those sharing an institution, by priority then id; empty when
    the master switch is off or the class has none (callers must cope with that).
    """
    return list(routes(catalog, class_id, institutions, secrets=secrets, transport=transport))


def routes(
    catalog: Catalog,
    class_id: str,
    institutions: Sequence[str],
    *,
    secrets: SecretStore,
    transport: Transport,
) -> tuple[BoundConnection, ...]:
    """``connections_for`` as the cached tuple itself (no copy: the runner only reads it)."""
    if isinstance(institutions, str):
        institutions = [institutions]
    cache = _CACHES.get(transport)
    if cache is None:
        cache = _CACHES[transport] = {}
    gen_key = (id(catalog), id(secrets))
    generation = cache.get(gen_key)
    if generation is None or generation.catalog is not catalog or generation.secrets is not secrets:
        generation = _Generation(catalog, secrets)
        if len(cache) >= _GENERATIONS_KEPT:
            del cache[next(iter(cache))]  # the oldest (a reload leaves the old one behind)
        cache[gen_key] = generation
    key = (class_id, tuple(institutions))
    found = generation.routes.get(key)
    if found is None:
        found = tuple(
            BoundConnection(conn, secrets=secrets, transport=transport, site_proxy=catalog.proxy)
            for conn in applicable(catalog, class_id, institutions)
        )
        if len(generation.routes) >= _ROUTES_KEPT:
            generation.routes.clear()
        generation.routes[key] = found
    return found


def _no_answer(error: RpcdError) -> bool:
    """The endpoint gave no answer (a connection, timeout or exchange failure)."""
    return isinstance(error, EndpointFailure)


def _proxy_secrets(
    hop: ProxyHop, conn: ResolvedConnection, site: SiteProxy | None, secrets: SecretStore
) -> list[str]:
    """What a proxy may echo of its credentials: the Basic blob and the password."""
    blob = hop.authorization or ""
    found = [blob, blob.split(" ", 1)[-1]]
    for server in (conn.proxy, site):
        if server and server.password is not None and server.password in secrets:
            found.append(secrets.get(server.password).get_secret_value())
    return found


#: Per transport (the pool the objects are bound to, so they live no longer than it): the
#: ``_Generation`` of each (catalog, secret store) pair in use.
_CACHES: weakref.WeakKeyDictionary[Transport, dict[tuple[int, int], _Generation]] = (
    weakref.WeakKeyDictionary()
)
_PREPARED_KEPT = 256  # signed targets per connection (one per function) before starting over
_GENERATIONS_KEPT = 4  # catalog/secret-store pairs in use at once (a reload overlaps two)
_ROUTES_KEPT = 4096  # (class, institutions) lists per generation before starting over


class _Generation:
    """The BoundConnection objects made for one catalog and one secret store.

    Both are never mutated (a reload builds new ones), so what ``connections_for`` returned
    for them stays right until either is replaced; entries hold both, so the ``id`` keys
    cannot be reused while cached.
    """

    __slots__ = ("catalog", "routes", "secrets")

    def __init__(self, catalog: Catalog, secrets: SecretStore) -> None:
        self.catalog, self.secrets = catalog, secrets
        self.routes: dict[tuple[str, tuple[str, ...]], tuple[BoundConnection, ...]] = {}
