"""Prometheus metrics of one daemon: ``GET /metrics`` in the text exposition format.

Every app has its *own* ``CollectorRegistry`` (never the process-global one), so two apps in
one process (tests, or a future multi-listener) never mix their counts.

Label cardinality is bounded by the configuration, never by callers:

- ``method`` is the called method's name only when the caller may call it (a published
  method it is granted, a ``system.*`` method, or one of the anonymous ones);
  ``"unauthenticated"`` for a caller without valid credentials and ``"unknown"`` for a
  method that does not exist or is not granted to the caller (``dispatch._label``), so
  neither an outsider's guesses nor a peer's probing show which names exist;
- ``protocol`` is ``xmlrpc`` or ``jsonrpc``;
- ``code`` is a fault code; at most ``MAX_FAULT_CODES`` distinct codes get their own label
  (a remote service can send any integer), the rest are ``"other"``;
- ``connection`` is a connection id of the catalog (the runner only ever tries those).

How it plugs in: ``install(app)`` adds the registry and the ``/metrics`` route and hands the
metrics to the app's ``Dispatcher``, which counts every RPC call (each call of a multicall or
batch too) on the event loop (``rpcd.server.call_metrics``), and to its proxy caller for the
outbound series. ``record_outbound(outcome)`` is for code without that reference: it finds the
app's metrics through a context variable (``metrics_middleware`` binds it, for other apps).

``/metrics`` is open unless ``metrics_token`` (or ``metrics_token_file``) is set: then it
answers only ``Authorization: Bearer <token>`` (compared in constant time), else 401.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rpcd.server.call_metrics import CallStats

__all__ = [
    "MAX_FAULT_CODES",
    "METRICS",
    "Metrics",
    "install",
    "metrics_handler",
    "metrics_middleware",
    "record_outbound",
]

#: Distinct fault codes that get their own label value; further codes are "other".
MAX_FAULT_CODES = 64

#: The ``reason`` label values of ``rpcd_auth_failures_total`` (anything else is "other").
AUTH_FAILURE_REASONS = ("password", "token", "session", "cert", "malformed")

#: The ``reason`` label values of ``rpcd_connections_closed_total``.
CONNECTION_CLOSE_REASONS = ("header_timeout", "send_timeout", "evicted", "refused")

#: Latency buckets (seconds): RPC handlers from sub-millisecond to the handler timeout.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_PROTOCOLS = {
    "/RPC2": "xmlrpc",
    "/xmlrpc": "xmlrpc",
    "/xmlrpc.php": "xmlrpc",
    "/jsonrpc": "jsonrpc",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    """The daemon's metric families, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The per-call series: plain ints counted on the loop, turned into families on scrape.
        self.calls = CallStats(BUCKETS, self.code_label)
        r.register(self.calls)
        self.logins = Counter(
            "rpcd_logins", "system.login attempts by result (ok, failed)", ["result"], registry=r
        )
        self.sessions_active = Gauge(
            "rpcd_sessions_active",
            "Sessions issued by this replica, not expired and not logged out here",
            registry=r,
        )
        self.sessions_active.set_function(self._count_sessions)
        self.reloads = Counter(
            "rpcd_reloads", "Catalog reloads by result (ok, failed)", ["result"], registry=r
        )
        self.catalog_info = Gauge(
            "rpcd_catalog_info",
            "The live catalog (value 1), by content hash",
            ["content_hash"],
            registry=r,
        )
        self.last_reload = Gauge(
            "rpcd_last_reload_timestamp_seconds",
            "Unix time of the last reload attempt",
            ["result"],
            registry=r,
        )
        self.outbound = Counter(
            "rpcd_outbound_calls",
            "Outbound call attempts by connection and result (ok, error)",
            ["connection", "result"],
            registry=r,
        )
        self.auth_failures = Counter(
            "rpcd_auth_failures",
            "Failed authentications by what was presented "
            "(password: a wrong password or an unknown user name; token, session, cert, malformed)",
            ["reason"],
            registry=r,
        )
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        self.auth_throttled_total = Counter(
            "rpcd_auth_throttled",
            "Password checks refused with 429: too many failures from the client address "
            "or for the user name",
            registry=r,
        )
        self.connections_closed = Counter(
            "rpcd_connections_closed",
            "Connections the daemon closed or refused, by reason (header_timeout, send_timeout, "
            "evicted: closed for room at max_connections, refused: at max_connections, all busy)",
            ["reason"],
            registry=r,
        )
        for reason in CONNECTION_CLOSE_REASONS:
            self.connections_closed.labels(reason)
        self.connections_open = Gauge(
            "rpcd_connections_open", "Client connections open now", registry=r
        )
        self.outbound_duration = Histogram(
            "rpcd_outbound_duration_seconds",
            "Time of one outbound call attempt, by connection",
            ["connection"],
            buckets=BUCKETS,
            registry=r,
        )
        self._codes: set[str] = set()
        self._sessions: dict[str, float] = {}  # nonce -> expires (unix time)
        self._catalog_hash: str | None = None

    # -- RPC calls ---------------------------------------------------------------------------

    def code_label(self, code: int) -> str:
        label = str(code)
        if label in self._codes:
            return label
        if len(self._codes) >= MAX_FAULT_CODES:
            return "other"
        self._codes.add(label)
        return label

    def observe_call(
        self, protocol: str, method: str, seconds: float, fault_code: int | None = None
    ) -> None:
        """One RPC call: ``method`` must already be a bounded label (``dispatch._label``).

        Called on the event loop only (``CallStats`` takes no lock). The dispatcher calls
        ``self.calls.observe`` directly (``dispatch._observer``): keep this a plain hand-over."""
        self.calls.observe(protocol, method, seconds, fault_code)

    # -- sessions ----------------------------------------------------------------------------

    def login(self, ok: bool, nonce: str | None = None, expires: float | None = None) -> None:
        self.logins.labels("ok" if ok else "failed").inc()
        if ok and nonce is not None and expires is not None:
            self._sessions[nonce] = expires

    def logout(self, nonce: str) -> None:
        self._sessions.pop(nonce, None)

    def _count_sessions(self) -> float:
        now = time.time()
        for nonce, expires in list(self._sessions.items()):
            if expires <= now:
                del self._sessions[nonce]
        return float(len(self._sessions))

    # -- authentication ----------------------------------------------------------------------

    def auth_failed(self, reason: str) -> None:
        self.auth_failures.labels(reason if reason in AUTH_FAILURE_REASONS else "other").inc()

    def auth_throttled(self) -> None:
        self.auth_throttled_total.inc()

    # -- connections -------------------------------------------------------------------------

    def connection_closed(self, reason: str) -> None:
        self.connections_closed.labels(reason).inc()

    def watch_connections(self, count: Callable[[], float]) -> None:
        """``rpcd_connections_open`` reads ``count()`` on every scrape."""
        self.connections_open.set_function(count)

    # -- reloads and catalog -----------------------------------------------------------------

    def reload(self, ok: bool) -> None:
        result = "ok" if ok else "failed"
        self.reloads.labels(result).inc()
        self.last_reload.labels(result).set(time.time())

    def set_catalog(self, content_hash: str) -> None:
        """Mark ``content_hash`` as the live catalog (one series at a time)."""
        if self._catalog_hash == content_hash:
            return
        if self._catalog_hash is not None:
            self.catalog_info.remove(self._catalog_hash)
        self.catalog_info.labels(content_hash).set(1)
        self._catalog_hash = content_hash

    # -- outbound ----------------------------------------------------------------------------

    def observe_outbound(self, outcome: Any) -> None:
        """Every attempt of a ``rpcd.connections.runner.CallOutcome``."""
        for attempt in getattr(outcome, "attempts", ()):
            connection = str(attempt.connection)
            self.outbound.labels(connection, "ok" if attempt.ok else "error").inc()
            self.outbound_duration.labels(connection).observe(float(attempt.latency_ms) / 1000)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)
#: sha256 of the token ``GET /metrics`` asks for; absent when the endpoint is open.
TOKEN_DIGEST = web.AppKey("metrics_token_digest", bytes)

#: The metrics of the app serving the current request (set by ``metrics_middleware``).
_current: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar(
    "rpcd_metrics", default=None
)


def record_outbound(outcome: Any) -> None:
    """Count an outbound ``CallOutcome`` on the current request's metrics (no-op outside one)."""
    metrics = _current.get()
    if metrics is not None:
        metrics.observe_outbound(outcome)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Make the app's metrics visible to ``record_outbound`` during the request."""
    metrics_token = _current.set(request.app.get(METRICS))
    try:
        return await handler(request)
    finally:
        _current.reset(metrics_token)


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics``: the Prometheus text exposition of this app's registry."""
    digest = request.app.get(TOKEN_DIGEST)
    if digest is not None and not _bearer_matches(request.headers.get("Authorization", ""), digest):
        raise web.HTTPUnauthorized(
            text="GET /metrics needs Authorization: Bearer <the metrics token> "
            "(the daemon's metrics_token or metrics_token_file setting)\n",
            headers={"WWW-Authenticate": 'Bearer realm="rpcd metrics"'},
        )
    metrics = request.app[METRICS]
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _bearer_matches(header: str, digest: bytes) -> bool:
    """Whether ``header`` is ``Bearer <token>`` for the token of ``digest``: the digests are
    compared in constant time, so neither the token's length nor a prefix shows in timing."""
    scheme, _, value = header.partition(" ")
    given = hashlib.sha256(value.strip().encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(given, digest) and scheme.lower() == "bearer"


def install(
    app: web.Application,
    metrics: Metrics | None = None,
    *,
    middleware: bool = True,
    token: bytes | None = None,
) -> Metrics:
    """Metrics for ``app``: registry, ``GET /metrics``, the dispatcher's and proxy's counts.

    Call before the app starts (middlewares and routes freeze then). The dispatcher is taken
    from ``app`` when it has one (``rpcd.server.keys.DISPATCHER``). ``middleware=True`` adds
    ``metrics_middleware`` for ``record_outbound`` callers that have no reference to the app;
    the daemon (``rpcd.server.app``) passes its metrics explicitly and needs none. With a
    ``token``, ``GET /metrics`` asks for it as a bearer token.
    """
    metrics = metrics or Metrics()
    app[METRICS] = metrics
    if token is not None:
        app[TOKEN_DIGEST] = hashlib.sha256(token).digest()
    if middleware:
        app.middlewares.append(metrics_middleware)
    from rpcd.server.guard import guarded

    app.router.add_get("/metrics", guarded(metrics_handler))
    from rpcd.server.keys import AUTHENTICATOR, DISPATCHER, HOLDER

    if AUTHENTICATOR in app:
        app[AUTHENTICATOR].metrics = metrics  # failed and throttled authentications

    if DISPATCHER in app:
        app[DISPATCHER].metrics = metrics  # the dispatcher counts every call itself
        proxy = app[DISPATCHER].proxy_call
        if proxy is not None and hasattr(proxy, "metrics"):
            proxy.metrics = metrics
    if HOLDER in app:
        metrics.set_catalog(app[HOLDER].current.catalog.content_hash)
    return metrics


def protocol_for(path: str) -> str:
    """The ``protocol`` label of a request path (``"http"`` for the non-RPC endpoints)."""
    return _PROTOCOLS.get(path, "http")
