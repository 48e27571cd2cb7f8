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

How it plugs in: the app (``rpcd.server.edge.app``) makes one ``Metrics``, serves it on
``GET /metrics`` (``rpcd.server.edge.api``) and hands the metrics to its ``Dispatcher``, which
counts every RPC call (each call of a multicall or batch too) on the event loop
(``rpcd.server.ops.call_metrics``), to its authenticator, and to the outbound calls.

``/metrics`` is open unless ``metrics_token`` (or ``metrics_token_file``) is set: then it
answers only ``Authorization: Bearer <token>`` (compared in constant time), else 401.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rpcd.server.ops.call_metrics import CallStats

__all__ = [
    "MAX_FAULT_CODES",
    "Metrics",
]

#: Distinct fault codes that get their own label value; further codes are "other".
MAX_FAULT_CODES = 64

#: The ``reason`` label values of ``rpcd_auth_failures_total`` (anything else is "other").
AUTH_FAILURE_REASONS = ("password", "token", "session", "cert", "malformed")

#: The ``reason`` label values of ``rpcd_connections_closed_total``.
CONNECTION_CLOSE_REASONS = ("header_timeout", "send_timeout", "evicted", "refused")

#: Latency buckets (seconds): RPC handlers from sub-millisecond to the handler timeout.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _by_reason(
    name: str, documentation: str, reasons: tuple[str, ...], registry: CollectorRegistry
) -> Counter:
    """A counter labelled by ``reason``, every reason shown from the start (at 0)."""
    counter = Counter(name, documentation, ["reason"], registry=registry)
    for reason in reasons:
        counter.labels(reason)
    return counter


class Metrics:
    """The daemon's metric families, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The per-call series: plain ints counted on the loop, turned into families on scrape.
        self.calls = CallStats(BUCKETS, self.code_label)
        r.register(self.calls)
        #: One RPC call (protocol, method label, seconds, fault code or None), on the loop only:
        #: ``method`` must already be a bounded label (``dispatch._label``).
        self.observe_call: Callable[..., None] = self.calls.observe
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
        self.auth_failures = _by_reason(
            "rpcd_auth_failures",
            "Failed authentications by what was presented "
            "(password: a wrong password or an unknown user name; token, session, cert, malformed)",
            AUTH_FAILURE_REASONS,
            r,
        )
        self.auth_throttled_total = Counter(
            "rpcd_auth_throttled",
            "Password checks refused with 429: too many failures from the client address "
            "or for the user name",
            registry=r,
        )
        self.connections_closed = _by_reason(
            "rpcd_connections_closed",
            "Connections the daemon closed or refused, by reason (header_timeout, send_timeout, "
            "evicted: closed for room at max_connections, refused: at max_connections, all busy)",
            CONNECTION_CLOSE_REASONS,
            r,
        )
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
        self.endpoint_up = Gauge(
            "rpcd_outbound_endpoint_up",
            "1 when an endpoint's latest call got an answer from it, 0 when it could not be "
            "reached, did not answer in time or answered 5xx (the call moved on to a standby)",
            ["connection", "endpoint"],
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
            endpoint = getattr(attempt, "endpoint", None)
            if endpoint is not None:
                up = not getattr(attempt, "endpoint_down", False)
                self.endpoint_up.labels(connection, str(endpoint)).set(1 if up else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
