"""One connection's probe: its class's probe call, as ``rpcd check`` and the console run it.

A probe is the class's declared ``probe`` function with its params, sent over the connection
like any call (same auth, same transport, same masking of remote text). The result says only
whether it answered, how long it took and, when it failed, the masked reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rpcd.config import Catalog, ResolvedConnection
from rpcd.connections.resolve import BoundConnection
from rpcd.connections.runner import describe_error
from rpcd.connections.transport import Transport
from rpcd.secrets import SecretStore

__all__ = ["ProbeResult", "probe_connection", "probe_endpoints"]


@dataclass(frozen=True)
class ProbeResult:
    """``ok`` is None when the class declares no probe (nothing was sent). ``connection`` is
    ``class/id``, followed by ``[n/count]`` for one endpoint of a connection with standbys;
    ``endpoint`` is the endpoint probed ("" when nothing was sent)."""

    connection: str
    ok: bool | None
    error: str
    latency_ms: float | None
    at: float
    endpoint: str = ""

    def to_row(self) -> dict[str, Any]:
        """The row ``rpcd check`` prints or writes as JSON."""
        return {
            "connection": self.connection,
            "endpoint": self.endpoint,
            "ok": self.ok,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


async def probe_endpoints(
    catalog: Catalog,
    store: SecretStore,
    transport: Transport,
    resolved: ResolvedConnection,
) -> list[ProbeResult]:
    """Run ``resolved``'s class probe on each of its endpoints (a standby's health shows
    before it is needed); never raises for a failing remote."""
    klass = catalog.classes[resolved.class_id]
    at = time.time()
    if klass.probe is None:
        return [
            ProbeResult(resolved.full_id, None, "skipped: the class declares no probe", None, at)
        ]
    conn = BoundConnection(resolved, secrets=store, transport=transport, site_proxy=catalog.proxy)
    try:
        tries = await conn.call_endpoints(klass.probe.function, klass.probe.params, every=True)
    except Exception as exc:  # before any request: parameters, credentials
        return [ProbeResult(resolved.full_id, False, describe_error(exc).message, None, at)]
    count = len(tries)
    return [
        ProbeResult(
            resolved.full_id if count == 1 else f"{resolved.full_id} [{index + 1}/{count}]",
            one.error is None,
            "" if one.error is None else describe_error(one.error).message,
            round(one.latency * 1000, 1),
            at,
            one.endpoint,
        )
        for index, one in enumerate(tries)
    ]


async def probe_connection(
    catalog: Catalog,
    store: SecretStore,
    transport: Transport,
    resolved: ResolvedConnection,
) -> ProbeResult:
    """One result for the whole connection (the console's): ok when every endpoint answered;
    the failing endpoints named in ``error``; the primary's latency."""
    results = await probe_endpoints(catalog, store, transport, resolved)
    if len(results) == 1:
        return results[0]
    failed = [r for r in results if r.ok is False]
    error = "; ".join(f"{r.endpoint}: {r.error}" for r in failed)
    first = results[0]
    endpoints = ", ".join(r.endpoint for r in results)
    return ProbeResult(resolved.full_id, not failed, error, first.latency_ms, first.at, endpoints)
