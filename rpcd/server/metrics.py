"""Prometheus metrics of one daemon: ``GET /metrics`` in the text exposition format.

Every app has its *own* ``CollectorRegistry`` (never the process-global one), so two apps in
one process (tests, or a future multi-listener) never mix their counts.

Label cardinality is bounded by the configuration, never by callers:

- ``method`` is a published or ``system.*`` method of the live catalog, or ``"unknown"`` —
  never the raw name a caller sent;
- ``protocol`` is ``xmlrpc`` or ``jsonrpc``;
- ``code`` is a fault code; at most ``MAX_FAULT_CODES`` distinct codes get their own label
  (a remote service can send any integer), the rest are ``"other"``;
- ``connection`` is a connection id of the catalog (the runner only ever tries those).

How it plugs in: ``install(app)`` adds the registry, the ``/metrics`` route, a middleware that
marks the protocol of the request, and wraps the app's ``Dispatcher.call`` so every RPC call
(each call of a multicall or batch too) is counted. ``record_outbound(outcome)`` is the one
line the outbound runner calls; it finds the app's metrics through a context variable set by
the middleware, so it needs no reference to the app.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rpcd.errors import Fault

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
        self.requests = Counter(
            "rpcd_requests",
            "RPC calls (each call of a multicall or batch counts)",
            ["protocol", "method"],
            registry=r,
        )
        self.faults = Counter(
            "rpcd_faults", "RPC calls answered with a fault", ["code"], registry=r
        )
        self.duration = Histogram(
            "rpcd_request_duration_seconds",
            "Time to run one RPC call, by method",
            ["method"],
            buckets=BUCKETS,
            registry=r,
        )
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
        self.outbound_duration = Histogram(
            "rpcd_outbound_duration_seconds",
            "Time of one outbound call attempt, by connection",
            ["connection"],
            buckets=BUCKETS,
            registry=r,
        )
        self._codes: set[str] = set()
        # Label children of the per-call series; bounded like the labels (see the docstring).
        self._call_children: dict[tuple[str, str], tuple[Any, Any]] = {}
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
        """One RPC call: ``method`` must already be a bounded label (see ``method_label``)."""
        children = self._call_children.get((protocol, method))
        if children is None:  # ``.labels()`` takes a lock and builds tuples: once per label set
            children = (self.requests.labels(protocol, method), self.duration.labels(method))
            self._call_children[(protocol, method)] = children
        children[0].inc()
        children[1].observe(seconds)
        if fault_code is not None:
            self.faults.labels(self.code_label(fault_code)).inc()

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

#: The metrics of the app serving the current request, and its protocol (set by the middleware).
_current: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar(
    "rpcd_metrics", default=None
)
_protocol: contextvars.ContextVar[str] = contextvars.ContextVar("rpcd_protocol", default="other")


def record_outbound(outcome: Any) -> None:
    """Count an outbound ``CallOutcome`` on the current request's metrics (no-op outside one)."""
    metrics = _current.get()
    if metrics is not None:
        metrics.observe_outbound(outcome)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Make the app's metrics and the request's protocol visible to the dispatcher wrapper."""
    metrics_token = _current.set(request.app.get(METRICS))
    protocol_token = _protocol.set(_PROTOCOLS.get(request.path, "http"))
    try:
        return await handler(request)
    finally:
        _protocol.reset(protocol_token)
        _current.reset(metrics_token)


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics``: the Prometheus text exposition of this app's registry."""
    metrics = request.app[METRICS]
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def method_label(name: str, known: Callable[[str], bool]) -> str:
    """The label for a called method: its canonical name if ``known``, else ``"unknown"``."""
    canonical = name.replace("/", ".") if "/" in name else name
    return canonical if known(canonical) else "unknown"


def instrument_dispatcher(dispatcher: Any, metrics: Metrics) -> None:
    """Wrap ``dispatcher.call`` (on this instance) so every call is counted and timed."""
    from rpcd.server.system import SYSTEM_METHODS

    inner = dispatcher.call
    if getattr(inner, "__rpcd_metrics__", False):
        return
    perf_counter = time.perf_counter
    observe = metrics.observe_call
    session_labels = ("system.login", "system.logout")

    async def call(ctx: Any, name: str, params: Any) -> Any:
        canonical = name.replace("/", ".") if "/" in name else name
        label = (
            canonical
            if canonical in ctx.loaded.methods or canonical in SYSTEM_METHODS
            else "unknown"
        )  # = method_label(name, ...), inlined
        session = label in session_labels
        before = _session_before(dispatcher, ctx, label, params) if session else None
        started = perf_counter()
        code: int | None = None
        try:
            result = await inner(ctx, name, params)
        except Fault as fault:
            code = fault.code
            if label == "system.login":
                metrics.login(False)
            raise
        except Exception:
            code = -32603
            raise
        finally:
            observe(_protocol.get(), label, perf_counter() - started, code)
        if session:
            _session_after(dispatcher, metrics, label, result, before)
        return result

    call.__rpcd_metrics__ = True  # type: ignore[attr-defined]
    dispatcher.call = call


def _session_before(dispatcher: Any, ctx: Any, label: str, params: Any) -> str | None:
    """For system.logout: the nonce of the session being ended (it is still valid now)."""
    if label != "system.logout" or ctx.principal is None:
        return None
    arg = params[0] if isinstance(params, list) and len(params) == 1 else params
    if isinstance(arg, dict):
        sid, kp3 = arg.get("sessionid"), arg.get("kp3")
        if isinstance(sid, str) and isinstance(kp3, str):
            claims = dispatcher.authenticator.sessions.verify(sid, kp3)
            return None if claims is None else str(claims.nonce)
        return None
    session = ctx.principal.session
    return None if session is None else str(session.nonce)


def _session_after(
    dispatcher: Any, metrics: Metrics, label: str, result: Any, before: str | None
) -> None:
    if label == "system.logout" and before is not None:
        metrics.logout(before)
    elif label == "system.login" and isinstance(result, dict):
        sid, kp3 = result.get("sessionid"), result.get("kp3")
        claims = None
        if isinstance(sid, str) and isinstance(kp3, str):
            claims = dispatcher.authenticator.sessions.verify(sid, kp3)
        if claims is None:
            metrics.login(True)
        else:
            metrics.login(True, str(claims.nonce), float(claims.expires))


def install(
    app: web.Application, metrics: Metrics | None = None, *, middleware: bool = True
) -> Metrics:
    """Metrics for ``app``: registry, ``GET /metrics``, middleware, dispatcher wrapper.

    Call before the app starts (middlewares and routes freeze then). The dispatcher is taken
    from ``app`` when it has one (``rpcd.server.keys.DISPATCHER``). ``middleware=False`` when
    another middleware of the app sets the context variables itself (``bind``): the daemon's
    one middleware in ``rpcd.server.app`` does.
    """
    metrics = metrics or Metrics()
    app[METRICS] = metrics
    if middleware:
        app.middlewares.append(metrics_middleware)
    app.router.add_get("/metrics", metrics_handler)
    from rpcd.server.keys import DISPATCHER, HOLDER

    if DISPATCHER in app:
        instrument_dispatcher(app[DISPATCHER], metrics)
    if HOLDER in app:
        metrics.set_catalog(app[HOLDER].current.catalog.content_hash)
    return metrics


#: For a middleware that binds the request itself (``install(..., middleware=False)``).
CURRENT_METRICS = _current
CURRENT_PROTOCOL = _protocol


def protocol_for(path: str) -> str:
    """The ``protocol`` label of a request path (``"http"`` for the non-RPC endpoints)."""
    return _PROTOCOLS.get(path, "http")
