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

__all__ = ["ProbeResult", "probe_connection"]


@dataclass(frozen=True)
class ProbeResult:
    """``ok`` is None when the class declares no probe (nothing was sent)."""

    connection: str
    ok: bool | None
    error: str
    latency_ms: float | None
    at: float

    def to_row(self) -> dict[str, Any]:
        """The row ``rpcd check`` prints or writes as JSON."""
        return {
            "connection": self.connection,
            "ok": self.ok,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


async def probe_connection(
    catalog: Catalog,
    store: SecretStore,
    transport: Transport,
    resolved: ResolvedConnection,
) -> ProbeResult:
    """Run ``resolved``'s class probe once; never raises for a failing remote."""
    klass = catalog.classes[resolved.class_id]
    at = time.time()
    if klass.probe is None:
        return ProbeResult(resolved.full_id, None, "skipped: the class declares no probe", None, at)
    conn = BoundConnection(resolved, secrets=store, transport=transport)
    ok, error = True, ""
    try:
        await conn.call(klass.probe.function, klass.probe.params)
    except Exception as exc:
        ok, error = False, describe_error(exc).message
    latency = None if conn.last_latency is None else round(conn.last_latency * 1000, 1)
    return ProbeResult(resolved.full_id, ok, error, latency, at)
